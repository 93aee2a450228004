package lab

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/domainfile/domaintest"
	"github.com/mapt-go/mapt/testenv"
)

//go:embed kea-pd-route.sh
var pdRouteScript []byte

// The seed's page: s serves it as index.html.
const Page = `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head><title>MAP-T</title></head>
<body><p>It works: IPv4 over an IPv6-only access network, through MAP-T.</p></body>
</html>
`

// Options choose the lab's MAP domain.
type Options struct {
	// PSIDOffset is the rule's a: 0 (the seed: one range of 2048 ports)
	// or 6 (63 ranges of 32 ports, with the same 13 EA bits).
	PSIDOffset int
	// FMR sets the F flag on the rule: CEs then reach each other directly
	// (mesh, RFC 7597 s5.3) instead of through the BR (hub and spoke).
	FMR bool
	// RenewTimer is Kea's T1 in seconds (default 1000; tests shorten it);
	// T2, the preferred and the valid lifetime are 2, 3 and 4 times it.
	// They are the lab's: its domain file gives them to br kea-config.
	RenewTimer int
	// OneToOne serves 1:1 rules (EA length 0) instead of the seed's rule:
	// CE 11b is bound by its DUID to 2001:db8:12:3400::/56 (198.51.100.18,
	// PSID 0x34), and CE 774 gets the one prefix of the unbound rule
	// 2001:db8:12:3500::/56 (198.51.100.18, PSID 0x35) from its pool.
	OneToOne bool
	// Bin is the directory holding ce-agent and br.
	Bin string
	// ExtraRules is YAML appended to the domain's rule list.
	ExtraRules string
	// KeaConfig, when set, edits Kea's Dhcp6 configuration after the
	// lab's own additions (tests use it to make the server misbehave).
	KeaConfig func(dhcp6 map[string]any)
	// AgentArgs are extra `ce-agent run` flags.
	AgentArgs []string
	// RelayArgs are extra `br run` flags.
	RelayArgs []string
}

// CE is one customer edge of the lab.
type CE struct {
	Name   string
	NS     *testenv.NS
	Client *testenv.NS
	Agent  *testenv.Proc
	Socket string
	MAC    string
	Prefix string // the prefix Kea reserves for it
}

// Lab is the running lab.
type Lab struct {
	*testenv.Seed
	Opts    Options
	Dir     string
	Domain  string // the domain file
	KeaConf string
	Kea     *testenv.Proc // kea-dhcp6 on the BR
	Relay   *testenv.Proc // br run
	Web     *testenv.Proc
	CEs     []*CE
	WebRoot string
}

// labCE is one CE of the lab: its WAN MAC is fixed so that Kea's
// reservations (by DUID-LL, which ce-agent derives from the WAN MAC) give
// it prefix; reserved is false for a CE that takes its prefix from a pool.
type labCE struct {
	name, mac, prefix string
	reserved          bool
}

// labCEs are the CEs of the lab with o.
func labCEs(o Options) []labCE {
	if o.OneToOne {
		return []labCE{
			{"ce11b", "02:00:00:00:01:1b", "2001:db8:12:3400::/56", true},
			{"ce774", "02:00:00:00:07:74", "2001:db8:12:3500::/56", false},
		}
	}
	return []labCE{
		{"ce11b", "02:00:00:00:01:1b", "2001:db8:ce:11b::/64", true},
		{"ce774", "02:00:00:00:07:74", "2001:db8:ce:774::/64", true},
	}
}

// DomainYAML is the lab's domain file: its MAP rules, and its DHCPv6
// settings for br kea-config (the lab's short timers, its reservations).
func DomainYAML(o Options) string {
	renew := o.RenewTimer
	if renew == 0 {
		renew = 1000
	}
	rules := domaintest.SeedRuleFMR(o.PSIDOffset, o.FMR)
	if o.OneToOne {
		rules = domaintest.OneToOneRules
	}
	var res strings.Builder
	for _, c := range labCEs(o) {
		if c.reserved {
			fmt.Fprintf(&res, "        - duid: 00:03:00:01:%s\n          prefix: %s\n", c.mac, c.prefix)
		}
	}
	return fmt.Sprintf(`# The lab's MAP-T domain: the seed's BMR/FMR and DMR.
br:
  ipv6-interface: eth0
  ipv4-interface: eth1
  metrics: 127.0.0.1:9724
  source-check: neighbor   # CEs are on the BR's link
domains:
%s    kea:
      subnet: 2001:db8:6::/64
      interface: eth0
      renew-timer: %d        # the lab's short timers
      rebind-timer: %d
      preferred-lifetime: %d
      valid-lifetime: %d
      reservations:          # by DUID-LL, from the CEs' WAN MACs
%s`, domaintest.Domain("seed", domaintest.DMR, rules, o.ExtraRules), renew, 2*renew, 3*renew, 4*renew, res.String())
}

// Up builds the lab and starts every process; it does not wait for the
// CEs to provision (WaitProvisioned does).
func Up(t testenv.T, o Options) *Lab {
	t.Helper()
	testenv.Require(t, "ip", "kea-dhcp6", "python3")
	if o.RenewTimer == 0 {
		o.RenewTimer = 1000
	}
	seed := testenv.NewSeed(t)
	l := &Lab{Seed: seed, Opts: o, Dir: seed.Lab.Dir()}
	l.Domain = filepath.Join(l.Dir, "domain.yaml")
	must(t, os.WriteFile(l.Domain, []byte(DomainYAML(o)), 0o644))
	for i, c := range labCEs(o) {
		ns, client := seed.CE11b, seed.C1
		if i == 1 {
			ns, client = seed.CE774, seed.C2
		}
		ns.MustExec("ip", "link", "set", "dev", "wan", "address", c.mac)
		// Strict reverse-path filtering, as many distributions set it:
		// ce-agent must turn it off on the WAN (internal/rpfilter), or
		// nothing comes back.
		ns.Sysctl("net.ipv4.conf.all.rp_filter", "1")
		l.CEs = append(l.CEs, &CE{Name: c.name, NS: ns, Client: client, MAC: c.mac, Prefix: c.prefix,
			Socket: filepath.Join(l.Dir, c.name+".sock")})
	}
	l.startKea(t)
	l.StartRelay(o.Bin, o.RelayArgs...)
	for _, c := range l.CEs {
		l.StartAgent(c, o.AgentArgs...)
	}
	l.startWeb(t)
	return l
}

func must(t testenv.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startKea runs Kea on the BR with the configuration `br kea-config`
// prints from the lab's domain file (rules, timers, reservations), plus
// what belongs to the host: lease file, logging and the route hook.
func (l *Lab) startKea(t testenv.T) {
	t.Helper()
	l.writeKeaConf(t)
	// Kea keeps its pid file and control socket under this directory.
	l.Kea = l.BR.Start("env", "KEA_PIDFILE_DIR="+l.Dir, "KEA_LOCKFILE_DIR="+l.Dir, "kea-dhcp6", "-c", l.KeaConf)
}

// ChangeDomain rewrites the domain file (br follows it live) and Kea's
// configuration from it (Kea reloads on SIGHUP): the ISP changes its MAP
// rules in its one source of truth. CEs learn it at their next renewal.
func (l *Lab) ChangeDomain(t testenv.T, o Options) {
	t.Helper()
	o.Bin, o.RenewTimer, o.KeaConfig = l.Opts.Bin, l.Opts.RenewTimer, l.Opts.KeaConfig
	l.Opts = o
	tmp := l.Domain + ".new"
	must(t, os.WriteFile(tmp, []byte(DomainYAML(o)), 0o644))
	must(t, os.Rename(tmp, l.Domain))
	l.writeKeaConf(t)
	must(t, l.Kea.Signal(syscall.SIGHUP))
}

func (l *Lab) writeKeaConf(t testenv.T) {
	t.Helper()
	leases := filepath.Join(l.Dir, "kea-leases6.csv")
	out, err := exec.Command(filepath.Join(l.Opts.Bin, "br"), "kea-config", "--config", l.Domain, "--lease-file", leases).Output()
	if err != nil {
		t.Fatalf("lab: br kea-config: %v", err)
	}
	var conf map[string]any
	must(t, json.Unmarshal(out, &conf))
	d6 := conf["Dhcp6"].(map[string]any)
	hook := filepath.Join(l.Dir, "kea-pd-route.sh")
	must(t, os.WriteFile(hook, pdRouteScript, 0o755))
	d6["hooks-libraries"] = []any{map[string]any{
		"library":    "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_run_script.so",
		"parameters": map[string]any{"name": hook, "sync": false},
	}}
	d6["loggers"] = []any{map[string]any{"name": "kea-dhcp6", "severity": "INFO",
		"output_options": []any{map[string]any{"output": "stdout"}}}}
	if l.Opts.KeaConfig != nil {
		l.Opts.KeaConfig(d6)
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	must(t, err)
	l.KeaConf = filepath.Join(l.Dir, "kea-dhcp6.json")
	must(t, os.WriteFile(l.KeaConf, b, 0o644))
	if out, err := exec.Command("kea-dhcp6", "-t", l.KeaConf).CombinedOutput(); err != nil {
		t.Fatalf("lab: kea-dhcp6 -t: %v\n%s", err, out)
	}
}

// StartRelay starts the BR (bin/br, run on the lab's domain file).
func (l *Lab) StartRelay(bin string, extra ...string) {
	l.Relay = l.BR.Start(append([]string{filepath.Join(bin, "br"), "run", "--config", l.Domain}, extra...)...)
}

// StartAgent starts a CE's agent. No MAP configuration at all: it picks
// its WAN and asks DHCPv6 for everything else.
func (l *Lab) StartAgent(c *CE, extra ...string) {
	args := append([]string{filepath.Join(l.Opts.Bin, "ce-agent"), "run",
		"--state-dir", filepath.Join(l.Dir, c.Name), "--status-socket", c.Socket}, extra...)
	c.Agent = c.NS.Start(args...)
}

// startWeb serves the seed's page from s.
func (l *Lab) startWeb(t testenv.T) {
	t.Helper()
	l.WebRoot = filepath.Join(l.Dir, "www")
	must(t, os.MkdirAll(l.WebRoot, 0o755))
	must(t, os.WriteFile(filepath.Join(l.WebRoot, "index.html"), []byte(Page), 0o644))
	l.Web = l.S.Start("python3", "-m", "http.server", "--bind", testenv.SeedServer, "--directory", l.WebRoot, "80")
}

// WaitProvisioned waits until every CE reports a binding.
func (l *Lab) WaitProvisioned(timeout time.Duration) error {
	for _, c := range l.CEs {
		var last string
		ok := testenv.WaitFor(timeout, func() bool {
			s, err := agent.ReadStatus(c.Socket)
			if err != nil {
				last = err.Error()
				return c.Agent.Exited()
			}
			last = s.State
			return s.State == "bound" || c.Agent.Exited()
		})
		if !ok || c.Agent.Exited() {
			return fmt.Errorf("lab: %s did not provision (state %s):\n%s\nkea:\n%s", c.Name, last, c.Agent.Output(), tail(l.Kea.Output(), 30))
		}
	}
	return nil
}

// Status returns a CE's status.
func (l *Lab) Status(c *CE) (*agent.Status, error) { return agent.ReadStatus(c.Socket) }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
