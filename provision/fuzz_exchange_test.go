package provision

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/s46"
	"github.com/mapt-go/mapt/s46/s46test"
)

// virtualClock is the exchange fuzzer's clock: every timer fires at once
// and moves the time forward by its duration, so a lease's life (T1, T2,
// expiry, backoffs) passes in microseconds and the same input always takes
// the same path (the client reads queued answers before acting on a
// timer, see next).
type virtualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *virtualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *virtualClock) timer(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.t = c.t.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.t
	return ch, func() {}
}

// scriptConn is an in-memory client socket: every message the client
// sends is answered, synchronously, by the next step of a script; reads
// block until the client stops them.
type scriptConn struct {
	c      *Client
	clk    *virtualClock
	script []byte
	writes int
	sent   []*dhcpv6.Message
	cancel context.CancelFunc

	mu       sync.Mutex
	deadline chan struct{}
	expired  bool
	closed   bool
}

// maxWrites bounds one fuzz execution.
const maxWrites = 48

var fuzzServerIDs = [][]byte{srvDUIDFuzz, {0, 3, 0, 1, 0x02, 0xbb, 0, 0, 0, 6}}

// srvDUIDFuzz is the fuzzer's server (the namespace tests have their own).
var srvDUIDFuzz = []byte{0, 3, 0, 1, 0x02, 0xaa, 0, 0, 0, 1}

func (s *scriptConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	m, err := dhcpv6.MessageFromBytes(b)
	if err != nil {
		panic("client sent a message it cannot parse: " + err.Error())
	}
	s.sent = append(s.sent, m)
	s.writes++
	if s.writes > maxWrites || len(s.script) == 0 {
		s.cancel()
		return len(b), nil
	}
	// A step: how many answers (0-3), then each answer.
	n := int(s.script[0] % 4)
	s.script = s.script[1:]
	for range n {
		reply, ok := s.answer(m)
		if !ok {
			break
		}
		s.c.deliver(reply, netip.MustParseAddr("fe80::1"), s.clk.now())
	}
	return len(b), nil
}

// answer takes one answer from the script: a flags byte and a length, then
// that many bytes. With bit 0 of the flags the bytes are a whole datagram
// whose transaction ID is set to the request's; without, a canned answer
// is built for the request (Advertise to Solicit, Reply otherwise) from
// the first 4 bytes (T1, T2, preferred and valid lifetime in seconds; bit
// 1 picks the rogue server-id, bit 2 adds Rapid Commit, bit 3 a status
// NoBinding) and the rest appended as raw options.
func (s *scriptConn) answer(req *dhcpv6.Message) ([]byte, bool) {
	if len(s.script) < 3 {
		s.script = nil
		return nil, false
	}
	flags := s.script[0]
	n := int(binary.BigEndian.Uint16(s.script[1:3])) % 512
	s.script = s.script[3:]
	n = min(n, len(s.script))
	body := s.script[:n]
	s.script = s.script[n:]
	if flags&1 != 0 {
		out := append([]byte(nil), body...)
		if len(out) >= 4 {
			copy(out[1:4], req.TransactionID[:])
		}
		return out, true
	}
	var lt [4]byte
	copy(lt[:], body)
	rest := body[min(4, len(body)):]
	typ := dhcpv6.MessageTypeReply
	if req.MessageType == dhcpv6.MessageTypeSolicit && flags&4 == 0 {
		typ = dhcpv6.MessageTypeAdvertise
	}
	m := &dhcpv6.Message{MessageType: typ, TransactionID: req.TransactionID}
	m.AddOption(req.GetOneOption(dhcpv6.OptionClientID))
	m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionServerID, OptionData: fuzzServerIDs[flags>>1&1]})
	if flags&4 != 0 {
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
	}
	var iaid [4]byte
	if pds := req.Options.IAPD(); len(pds) > 0 {
		iaid = pds[0].IaId
	}
	pd := &dhcpv6.OptIAPD{IaId: iaid, T1: time.Duration(lt[0]) * time.Second, T2: time.Duration(lt[1]) * time.Second}
	if flags&8 != 0 {
		pd.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding})
	} else {
		prefix := "2001:db8:ce:11b::/64"
		if flags&16 != 0 {
			prefix = "2001:db8:ce:774::/64"
		}
		pd.Options.Add(iaPrefix(prefix, time.Duration(lt[2])*time.Second, time.Duration(lt[3])*time.Second))
	}
	m.AddOption(pd)
	return append(m.ToBytes(), rest...), true
}

func (s *scriptConn) ReadFrom([]byte) (int, net.Addr, error) {
	s.mu.Lock()
	if s.expired || s.closed {
		s.mu.Unlock()
		return 0, nil, timeoutErr{}
	}
	if s.deadline == nil {
		s.deadline = make(chan struct{})
	}
	d := s.deadline
	s.mu.Unlock()
	<-d
	return 0, nil, timeoutErr{}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "deadline" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// SetReadDeadline: any deadline ends reads (Run sets one in the past to
// stop its reader), the zero time clears it.
func (s *scriptConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired = !t.IsZero()
	if s.expired && s.deadline != nil {
		close(s.deadline)
		s.deadline = nil
	}
	return nil
}

func (s *scriptConn) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.deadline != nil {
		close(s.deadline)
		s.deadline = nil
	}
	s.closed = true
	return nil
}

func (s *scriptConn) LocalAddr() net.Addr                { return &net.UDPAddr{Port: 546} }
func (s *scriptConn) SetDeadline(t time.Time) error      { return s.SetReadDeadline(t) }
func (s *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

// runScript runs a client against a script and returns its events.
func runScript(t testing.TB, script []byte, stateDir string) ([]Event, *scriptConn, *Client) {
	clk := &virtualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := &scriptConn{clk: clk, script: script, cancel: cancel}
	id := Identity{DUID: []byte{0, 3, 0, 1, 2, 0, 0, 0, 0, 0x11}, IAID: [4]byte{0, 0, 0, 1}}
	c := newClient(ClientConfig{Interface: "wan", StateDir: stateDir, ReleaseOnStop: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, id, sc, 2, clk)
	sc.c = c
	c.t.solMaxDelay = 0
	var n uint32
	c.xid = func(b []byte) (int, error) {
		n++
		b[0], b[1], b[2] = byte(n>>16), byte(n>>8), byte(n)
		return len(b), nil
	}
	var events []Event
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(e Event) { events = append(events, e) }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		t.Fatalf("Run did not end within 10 s of wall time (%d writes)", sc.writes)
	}
	return events, sc, c
}

// checkEvents holds a run's events to the client's contract (see Event
// and Run): a lease is bound before it is renewed, a renewal keeps the
// binding (and, for Renew, the server), Changed carries the lease it
// replaced, Expired and Released end the lease in force, and every lease
// the client accepts is one it could persist and resume.
func checkEvents(t testing.TB, events []Event) {
	t.Helper()
	var cur *Lease
	for i, e := range events {
		switch e.Kind {
		case Bound:
			if cur != nil {
				t.Fatalf("event %d: bound while %s is in force", i, cur.Prefix)
			}
		case Renewed, Rebound:
			if cur == nil || !cur.SameBinding(e.Lease) {
				t.Fatalf("event %d: %s of %+v after %+v", i, e.Kind, e.Lease, cur)
			}
			if e.Kind == Renewed && string(e.Lease.ServerID) != string(cur.ServerID) {
				t.Fatalf("event %d: renewed by server %x, the lease is %x's", i, e.Lease.ServerID, cur.ServerID)
			}
		case Changed:
			if cur == nil || e.Previous != cur || cur.SameBinding(e.Lease) {
				t.Fatalf("event %d: changed %+v from %+v (previous %+v)", i, e.Lease, cur, e.Previous)
			}
		case Expired, Released:
			if cur == nil || e.Lease != cur {
				t.Fatalf("event %d: %s of %+v, in force %+v", i, e.Kind, e.Lease, cur)
			}
			if e.Kind == Released && i != len(events)-1 {
				t.Fatalf("event %d: released, then %s", i, events[i+1].Kind)
			}
			cur = nil
			continue
		default:
			t.Fatalf("event %d: kind %v", i, e.Kind)
		}
		if err := e.Lease.validate(); err != nil {
			t.Fatalf("event %d (%s): accepted a lease that would not load back: %v\n%+v", i, e.Kind, err, e.Lease)
		}
		if e.Lease.Mechanism == MechanismMAPT && len(e.Lease.Domains) == 0 {
			t.Fatalf("event %d: MAP-T chosen without a domain", i)
		}
		cur = e.Lease
	}
}

// fuzzSeeds are scripts that walk the main paths: Solicit/Advertise/
// Request/Reply and renewals, a rapid commit, a rogue's Reply, NoBinding,
// a withdrawal, a datagram given whole.
func fuzzSeeds(t testing.TB) [][]byte {
	seed := s46test.Hex(t, s46test.KeaSeedOption95)
	opts := append(append(append([]byte(nil), seed...),
		opt(OptionDNSServers, s46test.Hex(t, "20010db8000600000000000000000053"))...),
		opt(OptionDomainList, appendName(nil, "isp.example"))...)
	step := func(answers ...[]byte) []byte {
		b := []byte{byte(len(answers))}
		for _, a := range answers {
			b = append(b, a...)
		}
		return b
	}
	canned := func(flags byte, t1, t2, pref, valid byte, rest []byte) []byte {
		body := append([]byte{t1, t2, pref, valid}, rest...)
		return append([]byte{flags, byte(len(body) >> 8), byte(len(body))}, body...)
	}
	raw := func(b []byte) []byte { return append([]byte{1, byte(len(b) >> 8), byte(len(b))}, b...) }
	good := canned(0, 10, 20, 30, 40, opts)
	rogue := canned(2, 10, 20, 30, 40, nil)
	var seeds [][]byte
	join := func(steps ...[]byte) []byte {
		var b []byte
		for _, s := range steps {
			b = append(b, s...)
		}
		return b
	}
	seeds = append(seeds,
		join(step(good), step(good), step(good), step(good)),
		join(step(canned(4, 10, 20, 30, 40, seed)), step(good), step()),
		join(step(good), step(rogue, good), step(rogue, good), step(canned(16, 10, 20, 30, 40, seed))),
		join(step(good), step(good), step(canned(8, 0, 0, 0, 0, nil)), step(good), step()),
		join(step(good), step(good), step(canned(0, 10, 20, 0, 0, nil)), step(), step(good), step(good)),
		join(step(good), step(good), step(), step(), step(), step(), step(raw(s46test.Hex(t, "07000000")))),
	)
	m := testReply(dhcpv6.MessageTypeReply, Identity{DUID: []byte{0, 3, 0, 1, 2, 0, 0, 0, 0, 0x11}, IAID: [4]byte{0, 0, 0, 1}},
		10*time.Second, 20*time.Second, []*dhcpv6.OptIAPrefix{iaPrefix("2001:db8:ce:11b::/64", 30*time.Second, 40*time.Second)}, nil,
		&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit}, &dhcpv6.OptionGeneric{OptionCode: s46.OptionContMAPT, OptionData: seed[4:]})
	seeds = append(seeds, join(step(raw(m.ToBytes())), step(raw(m.ToBytes())), step(raw(m.ToBytes()[:20]))))
	return seeds
}

// FuzzExchange drives the client's state machine with scripted servers:
// each message the client sends is answered by the next step of the input
// (see scriptConn.answer), on a virtual clock, until the script runs out
// and the client stops (with a Release). Nothing may panic or hang, and
// the events must keep the client's contract (checkEvents).
func FuzzExchange(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		events, sc, c := runScript(t, script, "")
		checkEvents(t, events)
		st := c.Stats()
		if st.Received > uint64(sc.writes*3) {
			t.Fatalf("received %d answers to %d messages", st.Received, sc.writes)
		}
	})
}

// TestExchangeSeeds runs the fuzzer's seeds with a state directory too and
// checks where they lead, so that the seeds keep covering what they are
// meant to.
func TestExchangeSeeds(t *testing.T) {
	kinds := func(events []Event) []EventKind {
		var out []EventKind
		for _, e := range events {
			out = append(out, e.Kind)
		}
		return out
	}
	want := [][]EventKind{
		{Bound, Renewed, Renewed, Released}, // Solicit, Advertise, Request, Reply, two renewals
		{Bound, Renewed, Released},          // rapid commit
		{Bound, Renewed, Changed, Released}, // the rogue's Replies dropped; renumbered
		{Bound, Renewed, Released},          // NoBinding to Renew: Request
		{Bound, Expired, Bound, Released},   // withdrawn at Renew; solicit again
		{Bound, Expired},                    // no answer to Renew or Rebind; a stray Reply to Solicit
		{Bound, Renewed, Released},          // whole datagrams
	}
	for i, s := range fuzzSeeds(t) {
		dir := t.TempDir()
		events, _, c := runScript(t, s, dir)
		checkEvents(t, events)
		if got := kinds(events); i < len(want) && !reflect.DeepEqual(got, want[i]) {
			t.Errorf("seed %d: events %v, want %v (stats %+v)", i, got, want[i], c.Stats())
		}
		// Whatever was persisted at the end loads back.
		if _, err := LoadLease(dir); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
	// The rogue's Replies in seed 2 were dropped and counted.
	_, _, c := runScript(t, fuzzSeeds(t)[2], "")
	if c.Stats().Counters[DropWrongServer] != 2 {
		t.Errorf("seed 2: stats %+v, want 2 %s", c.Stats(), DropWrongServer)
	}
}

// FuzzLoadLease feeds arbitrary lease files to LoadLease: it must fail
// cleanly or return a lease that validates, survives SaveLease and
// LoadLease unchanged, and whose domains derive without panicking.
func FuzzLoadLease(f *testing.F) {
	dir := f.TempDir()
	l := &Lease{Prefix: netip.MustParsePrefix("2001:db8:ce:11b::/64"), Preferred: time.Minute, Valid: 2 * time.Minute, T1: 30 * time.Second,
		T2: 48 * time.Second, Obtained: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ServerID: srvDUIDFuzz, ServerAddr: netip.MustParseAddr("fe80::1"),
		Domains: []mapt.Domain{s46test.SeedDomain(f)}, Ignored: []string{"MAP-E (94) container 1 ignored"}, Mechanism: MechanismMAPT,
		DNS: []netip.Addr{netip.MustParseAddr("2001:db8:6::53")}, Search: []string{"isp.example"}, NTP: []string{"ntp.isp.example"}}
	b, _ := json.Marshal(l)
	f.Add(b)
	f.Add([]byte(`{"Prefix":"2001:db8::/56","Valid":1,"T1":0,"T2":0,"Obtained":"2026-01-01T00:00:00Z","ServerID":"AQ=="}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"Prefix":"::/0","Domains":[{"Rules":[{"IPv6Prefix":"2001:db8::/40"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, leaseFile)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := LoadLease(dir)
		if err != nil {
			if l != nil {
				t.Fatal("a lease with an error")
			}
			return
		}
		if l == nil {
			t.Fatal("no lease and no error for an existing file")
		}
		if err := l.validate(); err != nil {
			t.Fatalf("loaded an invalid lease: %v", err)
		}
		for _, d := range l.Domains {
			d.Derive(l.Prefix)
		}
		_ = l.Expires()
		if err := SaveLease(dir, l); err != nil {
			t.Fatal(err)
		}
		l2, err := LoadLease(dir)
		if err != nil || !reflect.DeepEqual(normLease(l), normLease(l2)) {
			t.Fatalf("save/load changed the lease: %v\n%+v\n%+v", err, l, l2)
		}
	})
}

// normLease drops what JSON does not keep exactly (monotonic clock
// readings, nil versus empty).
func normLease(l *Lease) *Lease {
	c := *l
	c.Obtained = c.Obtained.Round(0).UTC()
	b, _ := json.Marshal(&c)
	var out Lease
	if err := json.Unmarshal(b, &out); err != nil {
		panic(errors.Join(errors.New("re-encode"), err))
	}
	return &out
}
