package lab_test

import (
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// upgradeBins builds ce-agent and br as another version would be: the
// same code with other program tags (dataplane's programVariant), which
// is what a restart on a new binary looks like to the pinned translator.
func upgradeBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-ldflags", "-X github.com/mapt-go/mapt/dataplane.programVariant=upgrade",
		"-o", dir+"/", "./cmd/ce-agent", "./cmd/br")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the upgrade: %v\n%s", err, out)
	}
	return dir
}

// stopProc signals p and waits for it; a SIGKILL's "killed" is expected.
func stopProc(t *testing.T, p *testenv.Proc, sig syscall.Signal) time.Duration {
	t.Helper()
	took, err := p.SignalWait(sig, 10*time.Second)
	if err != nil {
		t.Fatalf("%s after %v: %v\n%s", p.Name, sig, err, p.Output())
	}
	return took
}

// ingressPrograms counts the programs on dev's TCX ingress in ns.
func ingressPrograms(t *testing.T, ns *testenv.NS, dev string) int {
	t.Helper()
	n := 0
	if err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		n = len(q.Programs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRestartHitless is issue 16's restart test on the zero-touch lab
// (Kea, both CEs, the BR with its source check), with the translators
// pinned: a 100 packets/s UDP stream from c1 through CE 11b and the BR to
// s and back, and one from c2 through CE 774, run across each of
//
//   - CE 11b's agent killed with SIGKILL, 3 s away, started again;
//   - the agent stopped with SIGTERM under --leave-in-place, 3 s, started;
//   - the agent killed and started from an upgraded binary (other
//     program tags: the programs are replaced on the pinned links);
//   - the BR killed, 3 s, started again;
//   - the BR stopped with SIGUSR2 and started from the upgraded binary;
//
// and none may lose a datagram. The restarted process must say what it
// did with the pinned translator (kept, or replaced by the upgrade).
func TestRestartHitless(t *testing.T) {
	pins := testenv.BPFFS(t)
	bin := testenv.BuildAgentAndBR(t)
	upgrade := upgradeBins(t)
	o := lab.Options{Bin: bin, AgentArgs: []string{"--pin-dir", pins}, RelayArgs: []string{"--pin-dir", pins}}
	l := lab.Up(t, o)
	if err := l.WaitProvisioned(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.S.EchoUDP("udp", ":7")
	c := l.CEs[0]
	restartAgent := func(bin string, args ...string) {
		t.Helper()
		l.Opts.Bin = bin
		l.StartAgent(c, append([]string{"--pin-dir", pins}, args...)...)
		l.Opts.Bin = o.Bin
		if err := l.WaitProvisioned(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waitRelay := func() {
		t.Helper()
		if !testenv.WaitFor(10*time.Second, func() bool {
			return strings.Contains(l.Relay.Output(), "br running") || l.Relay.Exited()
		}) || l.Relay.Exited() {
			t.Fatalf("br did not start:\n%s", l.Relay.Output())
		}
	}
	for _, tc := range []struct {
		name    string
		stop    func() time.Duration
		restart func()
		proc    func() *testenv.Proc
		want    string
	}{
		{"agent kill -9",
			func() time.Duration { return stopProc(t, c.Agent, syscall.SIGKILL) },
			func() { restartAgent(bin) },
			func() *testenv.Proc { return c.Agent }, "adoption=kept"},
		{"agent SIGTERM --leave-in-place",
			func() time.Duration {
				// This agent runs without the flag: a hitless restart
				// with it first.
				stopProc(t, c.Agent, syscall.SIGKILL)
				restartAgent(bin, "--leave-in-place")
				return stopProc(t, c.Agent, syscall.SIGTERM)
			},
			func() { restartAgent(bin) },
			func() *testenv.Proc { return c.Agent }, "adoption=kept"},
		{"agent upgrade",
			func() time.Duration { return stopProc(t, c.Agent, syscall.SIGKILL) },
			func() { restartAgent(upgrade) },
			func() *testenv.Proc { return c.Agent }, "adoption=replaced"},
		{"br kill -9",
			func() time.Duration { return stopProc(t, l.Relay, syscall.SIGKILL) },
			func() { l.StartRelay(bin, o.RelayArgs...); waitRelay() },
			func() *testenv.Proc { return l.Relay }, "adoption=kept"},
		{"br upgrade",
			func() time.Duration { return stopProc(t, l.Relay, syscall.SIGUSR2) },
			func() { l.StartRelay(upgrade, o.RelayArgs...); waitRelay() },
			func() *testenv.Proc { return l.Relay }, "adoption=replaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1, err := l.C1.UDPStream(testenv.SeedServer+":7", 100, 64)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := l.C2.UDPStream(testenv.SeedServer+":7", 100, 64)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			took := tc.stop()
			if strings.HasPrefix(tc.name, "br") {
				// While the BR is away its source check stays ahead of
				// its translator on eth0 (both pinned).
				if n := ingressPrograms(t, l.BR, "eth0"); n != 2 {
					t.Errorf("%d programs on the BR's eth0 ingress while it is away, want 2 (source check, translator)", n)
				}
			}
			time.Sleep(3 * time.Second)
			tc.restart()
			time.Sleep(time.Second)
			r1, r2 := s1.Stop(500*time.Millisecond), s2.Stop(500*time.Millisecond)
			t.Logf("%s: stop took %v; c1 stream %d sent, %d lost; c2 stream %d sent, %d lost", tc.name, took.Round(time.Millisecond), r1.Sent, r1.Lost, r2.Sent, r2.Lost)
			if out := tc.proc().Output(); !strings.Contains(out, tc.want) {
				t.Fatalf("the restarted process did not log %s:\n%s", tc.want, out)
			}
			if r1.Sent < 450 || r1.Lost != 0 || r2.Lost != 0 {
				t.Fatalf("lost %d of %d (c1) and %d of %d (c2)", r1.Lost, r1.Sent, r2.Lost, r2.Sent)
			}
		})
	}
}
