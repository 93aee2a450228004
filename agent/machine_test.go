package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/provision"
)

// fakeHost is the kernel state a fakeKernel keeps: what a real kernel
// would hold for the agent (the uplink with the binding's address and an
// MTU, the nat table, the translator and the WAN ifindex it is attached
// to) and the WAN device itself. It outlives the fakeKernel, as the kernel
// outlives the agent process, so a restart can be tested.
type fakeHost struct {
	uplink, nat, translator *Desired
	uplinkMTU               int
	attachedTo              int // the WAN ifindex the translator hooks are on
	attaches                int // translators attached so far
	wan                     wanState
}

// fakeKernel is a recording fake of the agent's kernel interface: every
// call is logged in calls, and apply fails once with failApply when set.
type fakeKernel struct {
	host      *fakeHost
	limit     int // Config.UplinkMTU
	calls     []string
	failApply error
	closed    bool
}

func desc(d *Desired) string {
	if d == nil {
		return "-"
	}
	return d.Binding.IPv4.Addr().String()
}

func (k *fakeKernel) apply(d, old *Desired, force bool) error {
	k.calls = append(k.calls, fmt.Sprintf("apply %s old=%s force=%v", desc(d), desc(old), force))
	if err := k.failApply; err != nil {
		k.failApply = nil
		return err
	}
	if !k.host.wan.Present {
		return errors.New("fake: no WAN device")
	}
	h := k.host
	h.uplink, h.nat, h.uplinkMTU = d, d, k.uplinkMTU()
	if h.translator == nil || force || h.attachedTo != h.wan.Index {
		h.attaches++
		h.attachedTo = h.wan.Index
	}
	h.translator = d
	return nil
}

func (k *fakeKernel) withdraw(old *Desired) error {
	k.calls = append(k.calls, "withdraw "+desc(old))
	k.host.uplink, k.host.nat, k.host.translator, k.host.attachedTo = nil, nil, nil, 0
	return nil
}

func (k *fakeKernel) refreshWAN() (wanState, error) { return k.host.wan, nil }

func (k *fakeKernel) detach() error {
	k.calls = append(k.calls, "detach")
	k.host.translator, k.host.attachedTo = nil, 0
	return nil
}

func (k *fakeKernel) uplinkMTU() int { return capMTU(k.host.wan.MTU, 1500, k.limit) }

func (k *fakeKernel) counters() (map[string]uint64, string) { return nil, "fake" }

func (k *fakeKernel) close() error { k.closed = true; return nil }

// fakeDHCP records what the agent asks of its DHCPv6 client.
type fakeDHCP struct{ calls []string }

func (f *fakeDHCP) LinkUp()                { f.calls = append(f.calls, "link-up") }
func (f *fakeDHCP) Reopen() error          { f.calls = append(f.calls, "reopen"); return nil }
func (f *fakeDHCP) Stats() provision.Stats { return provision.Stats{} }

// machine is an agent on a fake kernel, with its hook runs recorded.
type machine struct {
	a     *Agent
	k     *fakeKernel
	dhcp  *fakeDHCP
	hooks []string
}

func newMachine(t *testing.T, host *fakeHost, cfg Config) *machine {
	t.Helper()
	cfg.WAN, cfg.Uplink = "wan", "mapt0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &machine{k: &fakeKernel{host: host, limit: cfg.UplinkMTU}, dhcp: &fakeDHCP{}}
	m.a = newAgent(cfg, m.k)
	m.a.dhcp = m.dhcp
	m.a.hook = func(_ context.Context, h hookInfo) {
		s := h.event
		if h.desired != nil {
			s += " " + desc(h.desired)
		}
		if h.lease != nil {
			s += fmt.Sprintf(" lease=%s", h.lease.Prefix)
		}
		if h.uplinkMTU > 0 {
			s += fmt.Sprintf(" mtu=%d", h.uplinkMTU)
		}
		m.hooks = append(m.hooks, s)
	}
	return m
}

// seedLease is a lease of the seed's domain for prefix.
func seedLease(t *testing.T, prefix string, valid time.Duration) *provision.Lease {
	t.Helper()
	r := mapt.MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0")
	return &provision.Lease{Prefix: netip.MustParsePrefix(prefix), Obtained: time.Now(), Preferred: valid / 2, Valid: valid,
		T1: valid / 4, T2: valid / 3, ServerID: []byte{0, 3, 0, 1, 2, 0, 0, 0, 0, 1},
		Domains: []mapt.Domain{{Name: "seed", DMR: netip.MustParsePrefix("64:ff9b::/96"), Rules: []mapt.Rule{r}}}}
}

// event feeds a lease event through leaseEvent and handle, as the loop does.
func (m *machine) event(kind provision.EventKind, l *provision.Lease) {
	updates := make(chan update, 1)
	m.a.leaseEvent(context.Background(), updates, provision.Event{Kind: kind, Lease: l})
	m.a.handle(context.Background(), <-updates, false)
}

func (m *machine) link(kind linkKind) { m.a.handleLink(context.Background(), linkEvent{kind: kind}) }

// take returns and clears the recorded kernel calls, hook runs and client
// calls.
func (m *machine) take() (calls, hooks, dhcp []string) {
	calls, hooks, dhcp = m.k.calls, m.hooks, m.dhcp.calls
	m.k.calls, m.hooks, m.dhcp.calls = nil, nil, nil
	return
}

// step is one input to the state machine and what it must do.
type step struct {
	name  string
	do    func(m *machine)
	calls []string // kernel calls, in order
	hooks []string // hook runs, in order
	dhcp  []string // DHCPv6 client calls
	state string   // status state afterwards ("" = don't care)
	check func(t *testing.T, m *machine)
}

func runSteps(t *testing.T, m *machine, steps []step) {
	t.Helper()
	for _, s := range steps {
		s.do(m)
		calls, hooks, dhcp := m.take()
		if !reflect.DeepEqual(calls, s.calls) {
			t.Errorf("%s: kernel calls\n got %q\nwant %q", s.name, calls, s.calls)
		}
		if !reflect.DeepEqual(hooks, s.hooks) {
			t.Errorf("%s: hooks\n got %q\nwant %q", s.name, hooks, s.hooks)
		}
		if !reflect.DeepEqual(dhcp, s.dhcp) {
			t.Errorf("%s: dhcp calls\n got %q\nwant %q", s.name, dhcp, s.dhcp)
		}
		if got := m.a.board.snapshot().State; s.state != "" && got != s.state {
			t.Errorf("%s: state %q, want %q", s.name, got, s.state)
		}
		if s.check != nil {
			s.check(t, m)
		}
	}
}

func upWAN() *fakeHost {
	return &fakeHost{wan: wanState{Present: true, Index: 7, MTU: 1500, Carrier: true}}
}

// TestStateMachine drives the agent's lifecycle on a fake kernel: the
// transitions the namespace tests check against the real kernel, here in
// milliseconds and without root.
func TestStateMachine(t *testing.T) {
	l11b := seedLease(t, "2001:db8:ce:11b::/64", time.Hour)
	l774 := seedLease(t, "2001:db8:ce:774::/64", time.Hour)
	applied := func(want string) func(t *testing.T, m *machine) {
		return func(t *testing.T, m *machine) {
			t.Helper()
			if got := desc(m.a.applied); got != want {
				t.Errorf("applied %s, want %s", got, want)
			}
			if got := desc(m.k.host.uplink); got != want {
				t.Errorf("kernel holds %s, want %s", got, want)
			}
		}
	}
	t.Run("lease life", func(t *testing.T) {
		m := newMachine(t, upWAN(), Config{})
		runSteps(t, m, []step{
			{name: "bound", do: func(m *machine) { m.event(provision.Bound, l11b) },
				calls: []string{"apply 192.0.2.8 old=- force=false"}, hooks: []string{"bound 192.0.2.8 lease=2001:db8:ce:11b::/64 mtu=1472"},
				state: "bound", check: applied("192.0.2.8")},
			// A renewal with the same prefix and rules changes nothing in
			// the kernel, but netifd hears of the fresh lifetimes.
			{name: "renewed, no-op", do: func(m *machine) { m.event(provision.Renewed, l11b) },
				hooks: []string{"renewed 192.0.2.8 lease=2001:db8:ce:11b::/64 mtu=1472"}, state: "bound", check: applied("192.0.2.8")},
			{name: "changed prefix", do: func(m *machine) { m.event(provision.Changed, l774) },
				calls: []string{"apply 192.0.2.59 old=192.0.2.8 force=false"}, hooks: []string{"changed 192.0.2.59 lease=2001:db8:ce:774::/64 mtu=1472"},
				check: applied("192.0.2.59")},
			{name: "expired", do: func(m *machine) { m.event(provision.Expired, l774) },
				calls: []string{"withdraw 192.0.2.59"}, hooks: []string{"expired"}, state: "expired", check: applied("-")},
			{name: "bound again", do: func(m *machine) { m.event(provision.Bound, l11b) },
				calls: []string{"apply 192.0.2.8 old=- force=false"}, hooks: []string{"bound 192.0.2.8 lease=2001:db8:ce:11b::/64 mtu=1472"}, state: "bound"},
			{name: "stop", do: func(m *machine) { m.a.stop() }, calls: []string{"withdraw 192.0.2.8"}, hooks: []string{"stopped"},
				check: applied("-")},
		})
	})
	t.Run("failed apply keeps the old state", func(t *testing.T) {
		m := newMachine(t, upWAN(), Config{})
		runSteps(t, m, []step{
			{name: "bound", do: func(m *machine) { m.event(provision.Bound, l11b) },
				calls: []string{"apply 192.0.2.8 old=- force=false"}, hooks: []string{"bound 192.0.2.8 lease=2001:db8:ce:11b::/64 mtu=1472"}},
			{name: "changed, apply fails", do: func(m *machine) {
				m.k.failApply = errors.New("nft: no space left")
				m.event(provision.Changed, l774)
			}, calls: []string{"apply 192.0.2.59 old=192.0.2.8 force=false"}, state: "bound", check: func(t *testing.T, m *machine) {
				applied("192.0.2.8")(t, m)
				s := m.a.board.snapshot()
				if s.Binding == nil || s.Binding.IPv4 != "192.0.2.8/32" || !strings.Contains(s.Events[len(s.Events)-1].Message, "apply failed: nft: no space left") {
					t.Errorf("status after a failed apply: %+v", s)
				}
			}},
			// The next lease event retries what is wanted.
			{name: "renewed: retried", do: func(m *machine) { m.event(provision.Renewed, l774) },
				calls: []string{"apply 192.0.2.59 old=192.0.2.8 force=false"}, hooks: []string{"renewed 192.0.2.59 lease=2001:db8:ce:774::/64 mtu=1472"},
				check: applied("192.0.2.59")},
		})
	})
	t.Run("no MAP-T in the lease: prefix only", func(t *testing.T) {
		m := newMachine(t, upWAN(), Config{})
		bare := seedLease(t, "2001:db8:ce:11b::/64", time.Hour)
		bare.Domains, bare.Selection = nil, "no softwire: only mechanisms this CE does not implement were offered"
		runSteps(t, m, []step{
			{name: "bound without domains", do: func(m *machine) { m.event(provision.Bound, bare) },
				hooks: []string{"bound lease=2001:db8:ce:11b::/64"}, state: "waiting", check: func(t *testing.T, m *machine) {
					s := m.a.board.snapshot()
					if s.Lease == nil || s.Lease.Prefix != "2001:db8:ce:11b::/64" || !strings.Contains(s.Events[len(s.Events)-1].Message, "only mechanisms") {
						t.Errorf("status %+v", s)
					}
				}},
			{name: "renewed", do: func(m *machine) { m.event(provision.Renewed, bare) }, hooks: []string{"renewed lease=2001:db8:ce:11b::/64"}},
			{name: "released", do: func(m *machine) { m.event(provision.Released, bare) }, hooks: []string{"released"}},
		})
	})
	t.Run("adoption after restart", func(t *testing.T) {
		host := upWAN()
		first := newMachine(t, host, Config{LeaveInPlace: true})
		runSteps(t, first, []step{
			{name: "bound", do: func(m *machine) { m.event(provision.Bound, l11b) }, calls: []string{"apply 192.0.2.8 old=- force=false"},
				hooks: []string{"bound 192.0.2.8 lease=2001:db8:ce:11b::/64 mtu=1472"}},
			// --leave-in-place: the kernel state stays, nothing is told.
			{name: "stop", do: func(m *machine) { m.a.stop() }, check: applied("192.0.2.8")},
		})
		// The process ends: TCX links go with it, the uplink and the nat
		// table stay.
		host.translator, host.attachedTo = nil, 0
		second := newMachine(t, host, Config{})
		runSteps(t, second, []step{
			{name: "resumed lease", do: func(m *machine) { m.event(provision.Bound, l11b) },
				// old=-: the new agent starts from nothing and adopts.
				calls: []string{"apply 192.0.2.8 old=- force=false"}, hooks: []string{"bound 192.0.2.8 lease=2001:db8:ce:11b::/64 mtu=1472"},
				state: "bound", check: func(t *testing.T, m *machine) {
					applied("192.0.2.8")(t, m)
					if host.attaches != 2 || host.attachedTo != 7 || desc(host.nat) != "192.0.2.8" {
						t.Errorf("host after adoption: %+v", host)
					}
				}},
		})
	})
	t.Run("link events", func(t *testing.T) {
		host := upWAN()
		m := newMachine(t, host, Config{UplinkMTU: 1400})
		runSteps(t, m, []step{
			{name: "bound", do: func(m *machine) { m.event(provision.Bound, l11b) }, calls: []string{"apply 192.0.2.8 old=- force=false"},
				hooks: []string{"bound 192.0.2.8 lease=2001:db8:ce:11b::/64 mtu=1400"}},
			{name: "carrier lost", do: func(m *machine) { host.wan.Carrier = false; m.link(linkCarrierDown) }, check: func(t *testing.T, m *machine) {
				if s := m.a.board.snapshot(); s.Link.State != "no-carrier" {
					t.Errorf("link %+v", s.Link)
				}
			}},
			// RFC 8415 s18.2.12: Rebind at once.
			{name: "carrier back", do: func(m *machine) { host.wan.Carrier = true; m.link(linkCarrierUp) }, dhcp: []string{"link-up"}},
			{name: "device removed", do: func(m *machine) { host.wan = wanState{}; m.link(linkRemoved) }, calls: []string{"detach"},
				check: func(t *testing.T, m *machine) {
					if s := m.a.board.snapshot(); s.Link.State != "absent" || host.translator != nil || desc(host.uplink) != "192.0.2.8" {
						t.Errorf("link %+v host %+v: want the translator gone, the uplink kept", s.Link, host)
					}
				}},
			// A renewal while the device is away cannot attach; it stays
			// wanted for when the device is back.
			{name: "changed while away", do: func(m *machine) { m.event(provision.Changed, l774) },
				calls: []string{"apply 192.0.2.59 old=192.0.2.8 force=false"}, check: applied("192.0.2.8")},
			{name: "device back", do: func(m *machine) {
				host.wan = wanState{Present: true, Index: 9, MTU: 1500, Carrier: true}
				m.link(linkAdded)
			}, calls: []string{"apply 192.0.2.59 old=192.0.2.8 force=true"}, hooks: []string{"relink 192.0.2.59 lease=2001:db8:ce:774::/64 mtu=1400"},
				dhcp: []string{"reopen"}, check: func(t *testing.T, m *machine) {
					applied("192.0.2.59")(t, m)
					if host.attachedTo != 9 {
						t.Errorf("translator on ifindex %d, want the new 9", host.attachedTo)
					}
				}},
			{name: "MTU down", do: func(m *machine) { host.wan.MTU = 1400; m.link(linkMTU) },
				calls: []string{"apply 192.0.2.59 old=192.0.2.59 force=true"}, hooks: []string{"mtu 192.0.2.59 lease=2001:db8:ce:774::/64 mtu=1372"},
				check: func(t *testing.T, m *machine) {
					if host.uplinkMTU != 1372 || m.a.board.snapshot().Link.UplinkMTU != 1372 {
						t.Errorf("uplink MTU %d (status %+v), want 1400 - 28", host.uplinkMTU, m.a.board.snapshot().Link)
					}
				}},
		})
	})
	t.Run("static", func(t *testing.T) {
		m := newMachine(t, upWAN(), Config{})
		d, err := Derive(l11b.Domains, l11b.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		runSteps(t, m, []step{
			{name: "static", do: func(m *machine) { m.a.handle(context.Background(), update{desired: d, event: "static"}, false) },
				calls: []string{"apply 192.0.2.8 old=- force=false"}, hooks: []string{"static 192.0.2.8 mtu=1472"}, state: "bound"},
			{name: "SIGHUP", do: func(m *machine) { m.a.handle(context.Background(), update{desired: d, event: "reapply"}, true) },
				calls: []string{"apply 192.0.2.8 old=192.0.2.8 force=true"}, hooks: []string{"reapply 192.0.2.8 mtu=1472"}},
		})
	})
}

func TestLinkChanges(t *testing.T) {
	up := wanState{Present: true, Index: 3, MTU: 1500, Carrier: true}
	kinds := func(evs []linkEvent) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.kind.String())
		}
		return out
	}
	with := func(f func(*wanState)) wanState { s := up; f(&s); return s }
	for _, tc := range []struct {
		name      string
		cur, next wanState
		want      []string
	}{
		{"nothing", up, up, nil},
		{"carrier lost", up, with(func(s *wanState) { s.Carrier = false }), []string{"carrier-down"}},
		{"carrier back", with(func(s *wanState) { s.Carrier = false }), up, []string{"carrier-up"}},
		{"removed", up, wanState{}, []string{"removed"}},
		{"absent stays absent", wanState{}, wanState{}, nil},
		{"created", wanState{}, up, []string{"added", "carrier-up"}},
		{"created without carrier", wanState{}, with(func(s *wanState) { s.Carrier = false }), []string{"added"}},
		{"replaced at once", up, with(func(s *wanState) { s.Index = 4 }), []string{"removed", "added", "carrier-up"}},
		{"mtu", up, with(func(s *wanState) { s.MTU = 1492 }), []string{"mtu"}},
		{"mtu and carrier", up, with(func(s *wanState) { s.MTU = 1492; s.Carrier = false }), []string{"mtu", "carrier-down"}},
	} {
		if got := kinds(linkChanges(tc.cur, tc.next)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, c := range []struct{ wan, lowest, limit, want int }{
		{1500, 0, 0, 1252},       // lowest-ipv6-mtu defaults to 1280
		{1500, 1500, 0, 1472},    // a domain known to carry 1500
		{1500, 1500, 1280, 1280}, // capped
		{1400, 1500, 0, 1372},    // the WAN is smaller
		{60, 1500, 0, 68},
	} {
		if got := capMTU(c.wan, c.lowest, c.limit); got != c.want {
			t.Errorf("capMTU(%d, %d, %d) = %d, want %d", c.wan, c.lowest, c.limit, got, c.want)
		}
	}
}

// countingDHCP is a fakeDHCP with counters, as a client that dropped a
// rogue's Reply and ignored a MAP-E container reports them.
type countingDHCP struct{ fakeDHCP }

func (countingDHCP) Stats() provision.Stats {
	return provision.Stats{Received: 9, Advertises: 2, Replies: 7,
		Counters: map[string]uint64{provision.DropWrongServer: 3, provision.IgnoredContainer: 1},
		Last:     "wrong_server: REPLY from fe80::6: server-id 0003000102bb00000006, the exchange is with 0003000102aa00000001",
		LastAt:   time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
}

// TestStatusShowsDHCPv6 checks that `ce-agent status` (text and JSON)
// carries the DHCPv6 client's drop counters with the last reason, the
// softwire choice, the LAN options and the WAN's state.
func TestStatusShowsDHCPv6(t *testing.T) {
	m := newMachine(t, upWAN(), Config{})
	m.a.board.dhcp = countingDHCP{}.Stats
	l := seedLease(t, "2001:db8:ce:11b::/64", time.Hour)
	l.Mechanism, l.Selection = provision.MechanismMAPT, "MAP-T chosen: the server's S46 priority is [MAP-E (94), MAP-T (95)]; MAP-E (94) not implemented"
	l.Ignored = []string{"MAP-E (94) container 1 ignored: mechanism not implemented"}
	l.DNS, l.Search, l.NTP = []netip.Addr{netip.MustParseAddr("2001:db8:6::53")}, []string{"isp.example"}, []string{"ntp.isp.example"}
	m.event(provision.Bound, l)
	s := m.a.board.snapshot()
	var b strings.Builder
	s.WriteText(&b)
	for _, want := range []string{
		"wan              wan (up, ifindex 7, mtu 1500)\n",
		"uplink           mapt0 (mtu 1472)\n",
		"softwire         MAP-T chosen: the server's S46 priority is [MAP-E (94), MAP-T (95)]; MAP-E (94) not implemented\n",
		"ignored          MAP-E (94) container 1 ignored: mechanism not implemented\n",
		"dns              2001:db8:6::53\n", "dns-search       isp.example\n", "ntp              ntp.isp.example\n",
		"dhcpv6           9 received (2 advertise, 7 reply)\n",
		"dhcpv6-dropped   ignored_container        1\n", "dhcpv6-dropped   wrong_server             3\n",
		"dhcpv6-last      12:00:00 wrong_server: REPLY from fe80::6",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"dhcpv6":{"received":9,"advertises":2,"replies":7,"counters":{"ignored_container":1,"wrong_server":3},"last":"wrong_server: REPLY`,
		`"softwire":"map-t"`, `"dns":["2001:db8:6::53"]`, `"dns_search":["isp.example"]`, `"ntp":["ntp.isp.example"]`,
		`"link":{"state":"up","ifindex":7,"mtu":1500,"uplink_mtu":1472}`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("status JSON lacks %s:\n%s", want, j)
		}
	}
}
