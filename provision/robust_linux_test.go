package provision

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/mapt-go/mapt/testenv"
)

// rogueDUID is a second, hostile server's DUID-LL.
var rogueDUID = []byte{0, 3, 0, 1, 0x02, 0xbb, 0, 0, 0, 6}

// answerFrom is answer with another server's identifier.
func answerFrom(sid []byte, req *dhcpv6.Message, typ dhcpv6.MessageType, t1, t2 time.Duration, pdOpts []dhcpv6.Option, extra ...dhcpv6.Option) []byte {
	m, err := dhcpv6.MessageFromBytes(answer(req, typ, t1, t2, pdOpts, extra...))
	if err != nil {
		panic(err)
	}
	m.UpdateOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionServerID, OptionData: sid})
	return m.ToBytes()
}

// newSharedLab puts the CE, the ISP's server and a rogue server on one
// bridge, as on a shared access segment.
func newSharedLab(t *testing.T) (cl *clientLab, rogue *testenv.NS) {
	t.Helper()
	testenv.Require(t, "ip")
	l := testenv.New(t)
	sw, ce, isp, rogue := l.NS("sw"), l.NS("ce"), l.NS("isp"), l.NS("rogue")
	sw.Bridge("br0")
	for _, n := range []*testenv.NS{ce, isp, rogue} {
		n.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		l.Veth(sw, "p-"+n.Short, n, "eth0")
		sw.MustExec("ip", "link", "set", "dev", "p-"+n.Short, "master", "br0")
	}
	for _, n := range []*testenv.NS{ce, isp, rogue} {
		if !testenv.WaitFor(5*time.Second, func() bool {
			out, err := n.Exec("cat", "/sys/class/net/eth0/operstate")
			return err == nil && strings.TrimSpace(out) == "up"
		}) {
			t.Fatalf("%s: eth0 not up", n.Short)
		}
	}
	return &clientLab{lab: l, ce: ce, isp: isp, sw: sw, events: make(chan Event, 32)}, rogue
}

// TestClientRogueServer runs the CE with its ISP's server and a rogue one
// on the same segment. The rogue answers every Request and Renew first:
// Requests with a prefix of its own (renumbering the CE), Renews by
// withdrawing the CE's prefix (valid lifetime 0), which would take its
// IPv4 away at every T1. RFC 8415 s18.2.2 and s18.2.4 address those
// messages to one server by its Server Identifier: the client must take
// only that server's Reply. Rebind goes to any server (s18.2.5), so the
// rogue stays quiet for Rebind and Solicit here, not to win by the rules.
func TestClientRogueServer(t *testing.T) {
	cl, rogueNS := newSharedLab(t)
	seed := seedContainer(t)
	srv := startServer(t, cl.isp, "eth0", func(m *dhcpv6.Message, n int) [][]byte {
		if m.MessageType != dhcpv6.MessageTypeSolicit {
			// Let the rogue win the race.
			time.Sleep(50 * time.Millisecond)
		}
		return grant(m, seedPrefix, 1*time.Second, 30*time.Second, 60*time.Second, 90*time.Second, seed)
	})
	var rogueAnswers atomic.Int32
	startServer(t, rogueNS, "eth0", func(m *dhcpv6.Message, n int) [][]byte {
		switch m.MessageType {
		case dhcpv6.MessageTypeRequest:
			rogueAnswers.Add(1)
			return [][]byte{answerFrom(rogueDUID, m, dhcpv6.MessageTypeReply, 1*time.Second, 30*time.Second,
				[]dhcpv6.Option{iaPrefix("2001:db8:bad::/64", 60*time.Second, 90*time.Second)})}
		case dhcpv6.MessageTypeRenew:
			rogueAnswers.Add(1)
			return [][]byte{answerFrom(rogueDUID, m, dhcpv6.MessageTypeReply, 0, 0,
				[]dhcpv6.Option{iaPrefix(seedPrefix, 0, 0)})}
		}
		return nil
	})
	cl.srv = srv
	cl.describe = func() string { return fmt.Sprint("server saw ", srv.types()) }
	c, _ := cl.start(t, ClientConfig{NoRapidCommit: true}, nil)

	b := cl.next(t, Bound, 10*time.Second)
	if b.Lease.Prefix.String() != seedPrefix || string(b.Lease.ServerID) != string(srvDUID) {
		t.Fatalf("bound to %s from server %x: the rogue's Reply to Request was taken", b.Lease.Prefix, b.Lease.ServerID)
	}
	for i := range 3 {
		e := cl.next(t, Renewed, 4*time.Second)
		if e.Lease.Prefix.String() != seedPrefix || string(e.Lease.ServerID) != string(srvDUID) {
			t.Fatalf("renewal %d: %+v", i, e.Lease)
		}
	}
	if rogueAnswers.Load() < 4 {
		t.Fatalf("the rogue answered %d times; the test did not exercise it", rogueAnswers.Load())
	}
	st := c.Stats()
	if st.Counters[DropWrongServer] < 4 || !strings.Contains(st.Last, "wrong_server") && st.Counters[DropWrongServer] == 0 {
		t.Errorf("stats %+v: want the rogue's Replies counted as %s", st, DropWrongServer)
	}
	t.Logf("stats: %+v", st)
}

// TestClientLinkEvents: after the carrier comes back the client Rebinds at
// once (RFC 8415 s18.2.12) instead of waiting for T1; after the WAN device
// is deleted and created again under the same name, Reopen moves the
// socket to the new device and the client Rebinds there.
func TestClientLinkEvents(t *testing.T) {
	seed := seedContainer(t)
	// A bridge between CE and server: the CE's device can be deleted
	// and created again without taking the server's with it.
	cl, _ := newSharedLab(t)
	cl.srv = startServer(t, cl.isp, "eth0", func(m *dhcpv6.Message, n int) [][]byte {
		// T1 an hour away: only a link event brings a Rebind.
		return grant(m, seedPrefix, time.Hour, 2*time.Hour, 3*time.Hour, 4*time.Hour, seed)
	})
	cl.describe = func() string { return fmt.Sprint("server saw ", cl.srv.types()) }
	c, _ := cl.start(t, ClientConfig{NoRapidCommit: true}, nil)
	cl.next(t, Bound, 10*time.Second)

	// Carrier down (the switch port goes away), then back.
	cl.sw.MustExec("ip", "link", "set", "p-ce", "down")
	time.Sleep(200 * time.Millisecond)
	cl.sw.MustExec("ip", "link", "set", "p-ce", "up")
	waitOperUp(t, cl.ce, "eth0")
	t0 := time.Now()
	c.LinkUp()
	e := cl.next(t, Rebound, 5*time.Second)
	if d := time.Since(t0); d > 2500*time.Millisecond {
		t.Errorf("rebound %s after the link came back, want about CNF_TIMEOUT (1 s) at most", d)
	}
	reb := cl.srv.messages(dhcpv6.MessageTypeRebind)
	if len(reb) != 1 || reb[0].m.GetOneOption(dhcpv6.OptionServerID) != nil || len(cl.srv.messages(dhcpv6.MessageTypeRenew)) != 0 {
		t.Fatalf("server saw %v: want one Rebind, without server-id, and no Renew", cl.srv.types())
	}
	if e.Lease.Prefix.String() != seedPrefix {
		t.Errorf("rebound lease %s", e.Lease.Prefix)
	}

	// The device is deleted and created again: a new ifindex.
	before := strings.TrimSpace(cl.ce.MustExec("cat", "/sys/class/net/eth0/ifindex"))
	cl.ce.MustExec("ip", "link", "del", "eth0")
	cl.lab.Veth(cl.sw, "p-ce", cl.ce, "eth0")
	cl.sw.MustExec("ip", "link", "set", "dev", "p-ce", "master", "br0")
	waitOperUp(t, cl.ce, "eth0")
	after := strings.TrimSpace(cl.ce.MustExec("cat", "/sys/class/net/eth0/ifindex"))
	if before == after {
		t.Fatalf("eth0 kept ifindex %s", before)
	}
	if err := cl.ce.Do(c.Reopen); err != nil {
		t.Fatal(err)
	}
	cl.next(t, Rebound, 5*time.Second)
	if got := len(cl.srv.messages(dhcpv6.MessageTypeRebind)); got != 2 {
		t.Errorf("server saw %v: want a second Rebind on the new device", cl.srv.types())
	}
}

func waitOperUp(t *testing.T, ns *testenv.NS, dev string) {
	t.Helper()
	if !testenv.WaitFor(5*time.Second, func() bool {
		out, err := ns.Exec("cat", "/sys/class/net/"+dev+"/operstate")
		return err == nil && strings.TrimSpace(out) == "up"
	}) {
		t.Fatalf("%s: %s not up", ns.Short, dev)
	}
}

// TestClientAdvertiseFlood: a server (or many) answers each Solicit with
// thousands of Advertises. The client keeps one best offer, so memory
// stays flat; its inbox is bounded, so the excess is dropped and counted;
// it sends one Request and binds as fast as without the flood.
func TestClientAdvertiseFlood(t *testing.T) {
	const flood = 5000
	cl := newClientLab(t, func(m *dhcpv6.Message, n int) [][]byte {
		if m.MessageType != dhcpv6.MessageTypeSolicit {
			return grant(m, seedPrefix, 60*time.Second, 90*time.Second, 120*time.Second, 180*time.Second)
		}
		out := make([][]byte, 0, flood+1)
		for i := range flood {
			p := fmt.Sprintf("2001:db8:%x:%x::/64", 0x100+i/0x10000, i%0x10000)
			out = append(out, answer(m, dhcpv6.MessageTypeAdvertise, 60*time.Second, 90*time.Second,
				[]dhcpv6.Option{iaPrefix(p, 120*time.Second, 180*time.Second)},
				&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionPreference, OptionData: []byte{byte(rand.IntN(200))}}))
		}
		// The real offer, preferred.
		return append(out, answer(m, dhcpv6.MessageTypeAdvertise, 60*time.Second, 90*time.Second,
			[]dhcpv6.Option{iaPrefix(seedPrefix, 120*time.Second, 180*time.Second)},
			&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionPreference, OptionData: []byte{250}}))
	})
	g0 := runtime.NumGoroutine()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	c, _ := cl.start(t, ClientConfig{NoRapidCommit: true}, nil)
	e := cl.next(t, Bound, 10*time.Second)
	took := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	st := c.Stats()
	t.Logf("bound in %s under %d Advertises; stats %+v; heap %d -> %d KiB; goroutines %d -> %d",
		took.Round(time.Millisecond), flood, st, m0.HeapAlloc>>10, m1.HeapAlloc>>10, g0, runtime.NumGoroutine())
	if got := len(cl.srv.messages(dhcpv6.MessageTypeRequest)); got != 1 {
		t.Errorf("server saw %d Requests, want 1", got)
	}
	if took > 3*time.Second {
		t.Errorf("bound after %s: the flood slowed the client beyond its first RT", took)
	}
	if st.Advertises == 0 || st.Received < st.Advertises {
		t.Errorf("stats %+v: Advertises not counted", st)
	}
	if runtime.NumGoroutine() > g0+4 {
		t.Errorf("goroutines %d -> %d", g0, runtime.NumGoroutine())
	}
	if m1.HeapAlloc > m0.HeapAlloc+8<<20 {
		t.Errorf("heap grew from %d to %d KiB", m0.HeapAlloc>>10, m1.HeapAlloc>>10)
	}
	// Whatever was dropped was the flood's: the lease is the preferred
	// offer or one of the flood's (RFC 8415 s18.2.1 takes the highest
	// preference it has read); the client is not stuck.
	if !e.Lease.Prefix.IsValid() {
		t.Errorf("lease %+v", e.Lease)
	}
}

// TestClientNoBindingNotFromRogue: a rogue's NoBinding status to Renew
// must not send the client back to Request either.
func TestClientNoBindingNotFromRogue(t *testing.T) {
	cl, rogueNS := newSharedLab(t)
	srv := startServer(t, cl.isp, "eth0", func(m *dhcpv6.Message, n int) [][]byte {
		if m.MessageType != dhcpv6.MessageTypeSolicit {
			time.Sleep(50 * time.Millisecond)
		}
		return grant(m, seedPrefix, 1*time.Second, 30*time.Second, 60*time.Second, 90*time.Second)
	})
	startServer(t, rogueNS, "eth0", func(m *dhcpv6.Message, n int) [][]byte {
		if m.MessageType == dhcpv6.MessageTypeRenew {
			return [][]byte{answerFrom(rogueDUID, m, dhcpv6.MessageTypeReply, 0, 0, []dhcpv6.Option{&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding}})}
		}
		return nil
	})
	cl.srv = srv
	cl.describe = func() string { return fmt.Sprint("server saw ", srv.types()) }
	cl.start(t, ClientConfig{NoRapidCommit: true}, nil)
	cl.next(t, Bound, 10*time.Second)
	cl.next(t, Renewed, 4*time.Second)
	if got := len(srv.messages(dhcpv6.MessageTypeRequest)); got != 1 {
		t.Errorf("server saw %v: the rogue's NoBinding sent the client to Request", srv.types())
	}
}
