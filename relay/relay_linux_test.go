package relay_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/domainfile/domaintest"
	"github.com/mapt-go/mapt/testenv"
)

const seedRule = "2001:db8:ce::/51,192.0.2.0/24,13,a=0"

var domainYAML = "br:\n  ipv6-interface: eth0\n  ipv4-interface: eth1\n  metrics: 127.0.0.1:9724\ndomains:\n" +
	domaintest.Domain("seed", domaintest.DMR, domaintest.SeedRule(0))

const page = `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html><body>MAP-T works</body></html>
`

// mapLab is the seed network with a BR and two CEs in static mode.
type mapLab struct {
	*testenv.Seed
	br         *testenv.Proc
	domainFile string
	brBin      string
}

func startLab(t *testing.T) *mapLab { return startLabWith(t, domainYAML) }

// ceConf is how one CE of the lab runs: its static rule, DMR and prefix.
type ceConf struct{ rule, dmr, prefix string }

var seedCEs = [2]ceConf{
	{seedRule, "64:ff9b::/96", "2001:db8:ce:11b::/64"},
	{seedRule, "64:ff9b::/96", "2001:db8:ce:774::/64"},
}

func startLabWith(t *testing.T, domain string) *mapLab { return startLabCEs(t, domain, seedCEs) }

// startLabCEs starts the BR with the domain file and CE 11b and CE 774
// with the given configurations.
func startLabCEs(t *testing.T, domain string, ces [2]ceConf) *mapLab {
	return startLabBR(t, domain, ces)
}

// startLabBR is startLabCEs with more `br run` flags.
func startLabBR(t *testing.T, domain string, ces [2]ceConf, brArgs ...string) *mapLab {
	testenv.Require(t, "ip", "nft", "ping")
	seed := testenv.NewSeed(t)
	l := &mapLab{Seed: seed, domainFile: filepath.Join(seed.Lab.Dir(), "domain.yaml")}
	if err := os.WriteFile(l.domainFile, []byte(domain), 0o644); err != nil {
		t.Fatal(err)
	}
	l.brBin = testenv.BuildBinary(t, "./cmd/br")
	ceBin := testenv.BuildBinary(t, "./cmd/ce-agent")
	l.br = l.startBR(brArgs...)
	seed.RouteDelegated(ces[0].prefix, testenv.SeedCE11bWAN)
	seed.RouteDelegated(ces[1].prefix, testenv.SeedCE774WAN)
	for i, ns := range []*testenv.NS{seed.CE11b, seed.CE774} {
		ce := struct {
			ns *testenv.NS
			ceConf
		}{ns, ces[i]}
		sock := filepath.Join(seed.Lab.Dir(), ce.ns.Short+".sock")
		p := ce.ns.Start(ceBin, "run", "--wan", "wan", "--rule", ce.rule, "--dmr", ce.dmr, "--prefix", ce.prefix,
			"--state-dir", filepath.Join(seed.Lab.Dir(), ce.ns.Short), "--status-socket", sock)
		if !testenv.WaitFor(15*time.Second, func() bool {
			s, err := agent.ReadStatus(sock)
			return err == nil && s.State == "bound" || p.Exited()
		}) || p.Exited() {
			t.Fatalf("%s did not bind:\n%s", ce.ns.Short, p.Output())
		}
	}
	if !testenv.WaitFor(10*time.Second, func() bool { _, err := l.metrics(); return err == nil || l.br.Exited() }) || l.br.Exited() {
		t.Fatalf("br did not start:\n%s", l.br.Output())
	}
	// The Internet side: a web server and a UDP echo on s.
	ln := seed.S.Listen("tcp", ":80")
	mux := http.NewServeMux()
	mux.HandleFunc("/index.html", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, page) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, len(buf))
			w.Write(buf[:k])
			n -= k
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	seed.S.EchoUDP("udp", ":7")
	return l
}

// startBR starts `br run` on the lab's domain file with more flags.
func (l *mapLab) startBR(args ...string) *testenv.Proc {
	return l.BR.Start(append([]string{l.brBin, "run", "--config", l.domainFile, "--log-level", "debug"}, args...)...)
}

// httpGet fetches a URL from inside a namespace.
func httpGet(ns *testenv.NS, url string) (string, error) {
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return ns.Dial(network, "", addr, 10*time.Second)
		},
	}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metrics scrapes the BR's endpoint (on the BR's own loopback).
func (l *mapLab) metrics() (map[string]float64, error) {
	return l.BR.Scrape("http://127.0.0.1:9724/metrics")
}

func udpEcho(t *testing.T, ns *testenv.NS, msg string) {
	t.Helper()
	c, err := ns.Dial("udp", "", testenv.SeedServer+":7", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for try := 0; try < 3; try++ {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err == nil {
			if string(buf[:n]) != msg {
				t.Fatalf("%s: udp echo %q, want %q", ns.Short, buf[:n], msg)
			}
			return
		}
	}
	t.Fatalf("%s: no udp echo", ns.Short)
}

// TestBRTraffic runs HTTP, UDP and ping from both clients through their
// CEs and the BR, checks the BR's anti-spoofing and the metrics.
func TestBRTraffic(t *testing.T) {
	l := startLab(t)
	for _, c := range []*testenv.NS{l.C1, l.C2} {
		body, err := httpGet(c, "http://"+testenv.SeedServer+"/index.html")
		if err != nil || !strings.HasPrefix(body, `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"`) {
			t.Fatalf("%s: http: %q %v\nbr:\n%s", c.Short, body, err, l.br.Output())
		}
		udpEcho(t, c, "hello from "+c.Short)
		c.MustExec("ping", "-c", "2", "-i", "0.2", "-W", "3", testenv.SeedServer)
	}
	// A bulk download, > 1 MB, through both translators.
	body, err := httpGet(l.C1, "http://"+testenv.SeedServer+"/big?n=4000000")
	if err != nil || len(body) != 4000000 {
		t.Fatalf("bulk: %d bytes, %v", len(body), err)
	}

	m, err := l.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m[`mapt_br_translated_packets_total{direction="6to4",domain="seed"}`] < 10 || m[`mapt_br_translated_packets_total{direction="4to6",domain="seed"}`] < 10 {
		t.Fatalf("metrics: %v", m)
	}
	// Bytes: the 4 MB download alone is more than 4e6 bytes 4->6.
	if m[`mapt_br_translated_bytes_total{direction="4to6",domain="seed"}`] < 4e6 || m[`mapt_br_translated_bytes_total{direction="6to4",domain="seed"}`] < 1000 {
		t.Fatalf("byte metrics: %v", m)
	}
	if m["mapt_br_rules"] != 1 || m["mapt_br_last_reload_success"] != 1 {
		t.Fatalf("rule/reload metrics: %v", m)
	}
	// The fast path is on by default: most translated packets skip the
	// BR's stack (the download's GSO packets included).
	if f, tr := m[`mapt_br_fast_path_packets_total{domain="seed"}`], m[`mapt_br_translated_packets_total{direction="4to6",domain="seed"}`]; f < tr/2 {
		t.Fatalf("fast path packets %v of %v translated 4to6", f, tr)
	}
	if _, drop := m[`mapt_br_dropped_packets_total{domain="seed",reason="br_fast"}`]; drop {
		t.Fatal("br_fast is reported as a drop reason")
	}

	// CE 11b sends from a port outside its PSID (1000 is PSID 0's): the BR
	// drops and counts it (RFC 7599 s8.3).
	before := m[`mapt_br_dropped_packets_total{domain="seed",reason="src_port"}`]
	mapAddr := "2001:db8:ce:11b:0:c000:208:1b"
	l.CE11b.MustExec("ip", "-6", "addr", "add", mapAddr+"/128", "dev", "wan", "nodad")
	cap := l.S.Capture("eth0", "udp port 7")
	c, err := l.CE11b.Dial("udp6", "["+mapAddr+"]:1000", "[64:ff9b::cb00:7138]:7", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c.Write([]byte("spoofed port"))
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(cap.Packets()); n != 0 {
		t.Fatalf("%d spoofed packets reached s", n)
	}
	m, _ = l.metrics()
	if got := m[`mapt_br_dropped_packets_total{domain="seed",reason="src_port"}`]; got < before+3 {
		t.Fatalf("src_port drops %v -> %v", before, got)
	}
	// The BR answers them with ICMPv6 errors of its own (RFC 7599 s8.3),
	// rate-limited: counted apart from the drops.
	if sent, limited := m[`mapt_br_icmp_errors_total{domain="seed",result="sent"}`], m[`mapt_br_icmp_errors_total{domain="seed",result="rate_limited"}`]; sent < 1 || sent+limited < 3 {
		t.Fatalf("icmp errors: %v sent, %v rate-limited", sent, limited)
	}
	for k := range m {
		if strings.Contains(k, `reason="icmp_sent"`) || strings.Contains(k, `reason="icmp_limited"`) || strings.Contains(k, `reason="br_via_stack"`) {
			t.Fatalf("%s counted as a drop", k)
		}
	}
	l.CE11b.MustExec("ip", "-6", "addr", "del", mapAddr+"/128", "dev", "wan")
}

// sendAs sends UDP from CE 11b's namespace with a given MAP address and
// port as its source, to s through the DMR, and reports whether s got it.
func sendAs(t *testing.T, l *mapLab, src string, port int) bool {
	t.Helper()
	l.CE11b.MustExec("ip", "-6", "addr", "add", src+"/128", "dev", "wan", "nodad")
	defer l.CE11b.MustExec("ip", "-6", "addr", "del", src+"/128", "dev", "wan")
	capture := l.S.Capture("eth0", "udp port 9")
	c, err := l.CE11b.Dial("udp6", fmt.Sprintf("[%s]:%d", src, port), "[64:ff9b::cb00:7138]:9", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c.Write([]byte("who am I"))
		time.Sleep(50 * time.Millisecond)
	}
	c.Close()
	return len(capture.Packets()) > 0
}

// TestBRSourceCheck has CE 11b send with CE 774's MAP address and a port
// of CE 774's set: the s8.3 port check cannot tell, the source check
// (source-check: neighbor) can, because the BR routes CE 774's prefix to
// another neighbour. Without it, the packet would pass.
func TestBRSourceCheck(t *testing.T) {
	const ce774 = "2001:db8:ce:774:0:c000:23b:14"
	l := startLab(t)
	if !sendAs(t, l, ce774, 41000) {
		t.Fatal("control: without the source check the spoofed packet should pass (the port is CE 774's)")
	}
	l = startLabWith(t, strings.Replace(domainYAML, "  metrics:", "  source-check: neighbor\n  metrics:", 1))
	// Legitimate traffic from both CEs; the replies make the BR resolve
	// both next hops.
	for _, c := range []*testenv.NS{l.C1, l.C2} {
		udpEcho(t, c, "legitimate "+c.Short)
	}
	if sendAs(t, l, ce774, 41000) {
		t.Fatal("CE 11b posing as CE 774 reached s")
	}
	m, err := l.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m[`mapt_br_dropped_packets_total{domain="",reason="savi_other_mac"}`] < 3 {
		t.Fatalf("source check drops: %v", m)
	}
}

// TestBROwnErrors checks the BR's own ICMP errors, which go through its
// local TUN device and br_local: a 1500-byte DF packet from s grows to
// 1520 bytes as IPv6, too big for the CE side, and s must learn MTU 1480;
// a CE's packet whose TTL runs out at the BR comes back as Time Exceeded.
func TestBROwnErrors(t *testing.T) {
	l := startLab(t)
	// Echo id 41006 belongs to CE 774 (ports 40960-43007).
	out, _ := l.S.Exec("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", "-e", "41006", "192.0.2.59")
	if !strings.Contains(out, "mtu = 1480") {
		t.Fatalf("1500-byte DF ping from s: want Frag needed with mtu 1480, got:\n%s", out)
	}
	out, _ = l.C1.Exec("ping", "-c", "1", "-W", "2", "-t", "2", testenv.SeedServer)
	if !strings.Contains(out, "Time to live exceeded") {
		t.Fatalf("TTL 2 ping from c1: want Time to live exceeded from the BR, got:\n%s", out)
	}
	if m, _ := l.metrics(); m[`mapt_br_dropped_packets_total{domain="seed",reason="ttl_expired"}`] != 1 {
		t.Fatalf("ttl_expired metric: %v", m)
	}
	if out := l.BR.MustExec("ip", "route", "show", "dev", "maptbr0"); !strings.Contains(out, "192.0.2.0/24") {
		t.Fatalf("no route to the rule's IPv4 prefix through the local device: %s", out)
	}
}

// TestBRFragmentsInbound sends a 3000-byte datagram from s to a CE: s
// fragments it to 1500 bytes, 28 too many for the CE side once
// translated, so the BR has its stack fragment the pieces further to its
// local device and translates them there (RFC 7915 s4 SHOULD).
func TestBRFragmentsInbound(t *testing.T) {
	l := startLab(t)
	sink := l.CE774.ListenPacket("udp", "192.0.2.59:41001")
	c, err := l.S.Dial("udp", "", "192.0.2.59:41001", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	buf := make([]byte, 4000)
	for try := 0; try < 3; try++ {
		c.Write(payload)
		sink.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, _, err := sink.ReadFrom(buf); err == nil {
			if n != len(payload) || string(buf[:n]) != string(payload) {
				t.Fatalf("CE 774 got %d bytes, corrupted or cut", n)
			}
			return
		}
	}
	m, _ := l.metrics()
	t.Fatalf("the 3000-byte datagram never reached CE 774; metrics %v", m)
}

// TestBRTwoDMRs serves two domains with different DMRs from one file:
// one translator each, chained on the same hooks (TCX). CE 11b is in the
// seed domain (DMR 64:ff9b::/96), CE 774 in another one (DMR
// 2001:db8:ffff::/96, IPv4 198.51.100.0/24). Both reach s, and c1 reaches
// CE 774's address across the two domains through the BR.
func TestBRTwoDMRs(t *testing.T) {
	const other = "2001:db8:cf::/51,198.51.100.0/24,13,a=0"
	domains := domainYAML + `  - name: other
    dmr: 2001:db8:ffff::/96
    rules:
      - ipv6-prefix: 2001:db8:cf::/51
        ipv4-prefix: 198.51.100.0/24
        ea-len: 13
        psid-offset: 0
`
	l := startLabCEs(t, domains, [2]ceConf{seedCEs[0], {other, "2001:db8:ffff::/96", "2001:db8:cf:774::/64"}})
	l.S.Route("198.51.100.0/24", "via", "203.0.113.1")
	for _, c := range []*testenv.NS{l.C1, l.C2} {
		if body, err := httpGet(c, "http://"+testenv.SeedServer+"/index.html"); err != nil || !strings.Contains(body, "MAP-T works") {
			t.Fatalf("%s: http %v\nbr:\n%s", c.Short, err, l.br.Output())
		}
		udpEcho(t, c, "two dmrs "+c.Short)
	}
	// CE 774 is 198.51.100.59 with ports 40960-43007 in its domain.
	l.CE774.ServeTCP("tcp", "198.51.100.59:41000", func(c net.Conn) { io.WriteString(c, "other domain\n") })
	c, err := l.C1.Dial("tcp", "", "198.51.100.59:41000", 10*time.Second)
	if err != nil {
		t.Fatalf("across domains: %v\nbr:\n%s", err, l.br.Output())
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "other domain\n" {
		t.Fatalf("across domains: %q %v", b, err)
	}
	m, _ := l.metrics()
	if m["mapt_br_rules"] != 2 {
		t.Fatalf("rules: %v", m)
	}
	// One translator per DMR, each with its own series.
	for _, domain := range []string{"seed", "other"} {
		for _, dir := range []string{"6to4", "4to6"} {
			if v := m[`mapt_br_translated_packets_total{direction="`+dir+`",domain="`+domain+`"}`]; v < 3 {
				t.Errorf("domain %s %s: %v packets", domain, dir, v)
			}
		}
		if m[`mapt_br_translator_attached{domain="`+domain+`"}`] != 1 {
			t.Errorf("domain %s not attached: %v", domain, m)
		}
	}
}

// TestBRHairpin reaches a server on CE 774's own address from c1: the
// packets cross the BR, which translates them twice (RFC 7599 s8.4 with
// hub-and-spoke: no FMR on the CEs).
func TestBRHairpin(t *testing.T) {
	l := startLab(t)
	// 41000 is in CE 774's port set (40960-43007).
	l.CE774.EchoTCP("tcp", "192.0.2.59:41000")
	c, err := l.C1.Dial("tcp", "", "192.0.2.59:41000", 10*time.Second)
	if err != nil {
		t.Fatalf("hairpin dial: %v\nbr:\n%s", err, l.br.Output())
	}
	fmt.Fprintf(c, "ping through the BR\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping through the BR\n" {
		t.Fatalf("hairpin echo %q %v", line, err)
	}
	m, _ := l.metrics()
	if m[`mapt_br_translated_packets_total{direction="hairpin",domain="seed"}`] < 2 {
		t.Fatalf("hairpin metric: %v", m)
	}
}

// TestBRReload changes the domain file under traffic: a valid file is
// swapped in, a broken one is rejected and the old one keeps working.
func TestBRReload(t *testing.T) {
	l := startLab(t)
	get := func() {
		t.Helper()
		if body, err := httpGet(l.C1, "http://"+testenv.SeedServer+"/index.html"); err != nil || !strings.Contains(body, "MAP-T works") {
			t.Fatalf("http: %v\nbr:\n%s", err, l.br.Output())
		}
	}
	get()
	// A second domain rule, written by rename as editors do.
	more := domainYAML + "      - ipv6-prefix: 2001:db8:cf::/48\n        ipv4-prefix: 198.51.100.0/24\n        ea-len: 8\n"
	tmp := l.domainFile + ".tmp"
	os.WriteFile(tmp, []byte(more), 0o644)
	os.Rename(tmp, l.domainFile)
	if !testenv.WaitFor(5*time.Second, func() bool { m, _ := l.metrics(); return m["mapt_br_rules"] == 2 }) {
		t.Fatalf("reload not applied:\n%s", l.br.Output())
	}
	if out := l.BR.MustExec("ip", "route", "show", "dev", "maptbr0"); !strings.Contains(out, "198.51.100.0/24") {
		t.Fatalf("reload: no route for the new rule's prefix: %s", out)
	}
	get()
	// A broken file: rejected, logged with file, line and field.
	os.WriteFile(l.domainFile, []byte(strings.Replace(domainYAML, "psid-offset: 0", "psid-offset: 12", 1)), 0o644)
	if !testenv.WaitFor(5*time.Second, func() bool { m, _ := l.metrics(); return m["mapt_br_last_reload_success"] == 0 }) {
		t.Fatalf("broken file not noticed:\n%s", l.br.Output())
	}
	if !strings.Contains(l.br.Output(), "domain.yaml:12: domains[0].rules[0].psid-offset") {
		t.Fatalf("reload error not logged with line and field:\n%s", l.br.Output())
	}
	if m, _ := l.metrics(); m["mapt_br_rules"] != 2 {
		t.Fatalf("running configuration lost: %v", m)
	}
	get()
	// SIGHUP reloads too (back to the original, valid file).
	os.WriteFile(l.domainFile, []byte(domainYAML), 0o644)
	l.br.Signal(syscall.SIGHUP)
	if !testenv.WaitFor(5*time.Second, func() bool {
		m, _ := l.metrics()
		return m["mapt_br_rules"] == 1 && m["mapt_br_last_reload_success"] == 1
	}) {
		t.Fatalf("SIGHUP reload:\n%s", l.br.Output())
	}
	get()
	// SIGTERM: a clean stop.
	l.br.Signal(syscall.SIGTERM)
	if err := l.br.Wait(10 * time.Second); err != nil {
		t.Fatalf("br exit: %v\n%s", err, l.br.Output())
	}
	if out, err := l.BR.Exec("ip", "link", "show", "maptbr0"); err == nil {
		t.Fatalf("local device left behind: %s", out)
	}
}
