package provision

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// EventKind says what happened to the lease.
type EventKind int

// The lease events. Renewed and Rebound mean that the prefix and the
// MAP-T domains are unchanged, so nothing needs re-applying; Changed means
// they differ from the previous lease.
const (
	Bound    EventKind = iota + 1 // a lease, fresh or resumed from the state dir
	Renewed                       // Renew answered, same binding
	Rebound                       // Rebind answered, same binding
	Changed                       // Renew or Rebind answered with another prefix or other domains
	Expired                       // valid lifetime over, or the server withdrew the prefix
	Released                      // Release sent on stop
)

func (k EventKind) String() string {
	switch k {
	case Bound:
		return "bound"
	case Renewed:
		return "renewed"
	case Rebound:
		return "rebound"
	case Changed:
		return "changed"
	case Expired:
		return "expired"
	case Released:
		return "released"
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Event reports a lease change to the caller of Run.
type Event struct {
	Kind EventKind
	// Lease is the lease now in force; for Expired and Released, the one
	// that ended.
	Lease *Lease
	// Previous is the lease Changed replaced.
	Previous *Lease
	// Resumed marks a Bound from the lease persisted by an earlier run.
	Resumed bool
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Interface is the WAN interface.
	Interface string
	// StateDir holds the identity (DUID, IAID) and the lease. Empty: keep
	// nothing, start afresh every time.
	StateDir string
	// Logger gets one line per state change. Nil: slog.Default().
	Logger *slog.Logger
	// ReleaseOnStop sends Release when Run's context ends.
	ReleaseOnStop bool
	// NoRapidCommit leaves the Rapid Commit option out of Solicit.
	NoRapidCommit bool
	// ReleaseTimeout bounds the wait for the Release's Reply (default
	// 3 s; RFC 8415's REL_MAX_RC would allow about 15 s).
	ReleaseTimeout time.Duration

	// ClientID, when set, is the DUID the client sends (RFC 8415 s11)
	// instead of the one in StateDir: OpenWrt's `clientid` option, so that
	// a router moving from odhcp6c keeps its identity at the ISP.
	ClientID []byte
	// IAID, when set, is the IA_PD's IAID (RFC 8415 s12) instead of the
	// one in StateDir; odhcp6c uses 1.
	IAID *uint32
	// VendorClass is the payload of OPTION_VENDOR_CLASS (RFC 8415
	// s21.16: enterprise-number, then vendor-class-data) sent in every
	// message; nil sends none.
	VendorClass []byte
	// UserClass are the user-class-data items of OPTION_USER_CLASS (RFC
	// 8415 s21.15) sent in every message; nil sends none.
	UserClass [][]byte
	// RequestOptions are option codes added to the ORO (OpenWrt's
	// `reqopts`). Unknown options in answers are ignored.
	RequestOptions []dhcpv6.OptionCode
}

// validate checks the identity overrides and the options to send.
func (cfg ClientConfig) validate() error {
	if n := len(cfg.ClientID); n > 0 {
		if n > 130 {
			return fmt.Errorf("provision: client id of %d bytes: a DUID has at most 130 (RFC 8415 s11.1)", n)
		}
		if _, err := dhcpv6.DUIDFromBytes(cfg.ClientID); err != nil {
			return fmt.Errorf("provision: client id %x: %w", cfg.ClientID, err)
		}
	}
	if n := len(cfg.VendorClass); n > 0 && n < 4 {
		return fmt.Errorf("provision: vendor class of %d bytes: it starts with a 4-byte enterprise number (RFC 8415 s21.16)", n)
	}
	for _, uc := range cfg.UserClass {
		if len(uc) == 0 || len(uc) > 0xffff {
			return fmt.Errorf("provision: user class item of %d bytes", len(uc))
		}
	}
	return nil
}

// timing holds RFC 8415 s7.6 transmission parameters.
type timing struct {
	solMaxDelay, solTimeout, solMaxRT time.Duration
	reqTimeout, reqMaxRT              time.Duration
	reqMaxRC                          int
	cnfTimeout, cnfMaxRT, cnfMaxRD    time.Duration
	renTimeout, renMaxRT              time.Duration
	rebTimeout, rebMaxRT              time.Duration
	relTimeout                        time.Duration
	relMaxRC                          int
}

var rfc8415 = timing{
	solMaxDelay: 1 * time.Second, solTimeout: 1 * time.Second, solMaxRT: 3600 * time.Second,
	reqTimeout: 1 * time.Second, reqMaxRT: 30 * time.Second, reqMaxRC: 10,
	cnfTimeout: 1 * time.Second, cnfMaxRT: 4 * time.Second, cnfMaxRD: 10 * time.Second,
	renTimeout: 10 * time.Second, renMaxRT: 600 * time.Second,
	rebTimeout: 10 * time.Second, rebMaxRT: 600 * time.Second,
	relTimeout: 1 * time.Second, relMaxRC: 4,
}

// Client is a DHCPv6 client (RFC 8415) that keeps one IA_PD, the MAP-T
// domains (RFC 7598) that come with it and the options the LAN needs.
type Client struct {
	cfg ClientConfig
	log *slog.Logger
	id  Identity
	t   timing
	mc  msgConfig
	clk clock
	rnd *rand.Rand // Run's goroutine only
	st  stats
	// xid makes transaction IDs (RFC 8415 s16.1: random).
	xid func([]byte) (int, error)
	// linkc carries link events (LinkUp, Reopen) to Run.
	linkc chan struct{}

	mu      sync.Mutex
	conn    net.PacketConn
	dst     *net.UDPAddr
	in      chan packet // Run's inbox; nil while Run is not running
	readers sync.WaitGroup
}

// NewClient resolves the interface, loads or creates the identity and
// opens the client socket, in the network namespace of the calling thread.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("provision: interface %q: %w", cfg.Interface, err)
	}
	id, err := loadIdentity(cfg.StateDir, ifi.Name, ifi.HardwareAddr)
	if err != nil {
		return nil, err
	}
	conn, err := openConn(ifi.Name)
	if err != nil {
		return nil, fmt.Errorf("provision: open socket on %s: %w", ifi.Name, err)
	}
	return newClient(cfg, id, conn, ifi.Index, wallClock{}), nil
}

// newClient assembles a client around an open socket (NewClient, and the
// exchange fuzzer with an in-memory one).
func newClient(cfg ClientConfig, id Identity, conn net.PacketConn, ifindex int, clk clock) *Client {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.ReleaseTimeout <= 0 {
		cfg.ReleaseTimeout = 3 * time.Second
	}
	if len(cfg.ClientID) > 0 {
		id.DUID = append([]byte(nil), cfg.ClientID...)
	}
	if cfg.IAID != nil {
		binary.BigEndian.PutUint32(id.IAID[:], *cfg.IAID)
	}
	return &Client{
		cfg: cfg,
		log: log.With("iface", cfg.Interface),
		id:  id,
		t:   rfc8415,
		mc: msgConfig{oro: oro(cfg.RequestOptions), vendorClass: cfg.VendorClass, userClass: cfg.UserClass,
			rapidCommit: !cfg.NoRapidCommit},
		clk:   clk,
		rnd:   newRand(),
		xid:   crand.Read,
		linkc: make(chan struct{}, 1),
		conn:  conn,
		dst:   serverAddr(ifindex),
	}
}

// serverAddr is All_DHCP_Relay_Agents_and_Servers on the interface. A
// numeric zone: resolving a name would look in the netns of whichever
// thread sends.
func serverAddr(ifindex int) *net.UDPAddr {
	return &net.UDPAddr{IP: dhcpv6.AllDHCPRelayAgentsAndServers, Port: dhcpv6.DefaultServerPort, Zone: strconv.Itoa(ifindex)}
}

// Identity returns the DUID and IAID the client uses.
func (c *Client) Identity() Identity { return c.id }

// Stats returns what the client received and dropped so far.
func (c *Client) Stats() Stats { return c.st.snapshot() }

// Close closes the socket. Run must have returned.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Close()
}

// LinkUp tells the client that the WAN link may have changed: the carrier
// came back after a loss. RFC 8415 s18.2.12: a client that may have moved
// to a new link and holds delegated prefixes initiates a Rebind at once,
// with Confirm's retransmission parameters; a client without a lease
// solicits again without waiting out its backoff. It never blocks.
func (c *Client) LinkUp() {
	select {
	case c.linkc <- struct{}{}:
	default:
	}
}

// Reopen replaces the client socket with a new one on the interface of
// the same name: after the device was deleted and created again (a PPPoE
// or VLAN reconnect, a driver reload), the old socket stays bound to an
// ifindex that no longer exists and would never hear a server again. It
// then acts as LinkUp. It must run in the client's network namespace, and
// may run while Run does.
func (c *Client) Reopen() error {
	ifi, err := net.InterfaceByName(c.cfg.Interface)
	if err != nil {
		return fmt.Errorf("provision: reopen: interface %q: %w", c.cfg.Interface, err)
	}
	conn, err := openConn(ifi.Name)
	if err != nil {
		return fmt.Errorf("provision: reopen socket on %s: %w", ifi.Name, err)
	}
	c.mu.Lock()
	old := c.conn
	c.conn, c.dst = conn, serverAddr(ifi.Index)
	if c.in != nil {
		c.startReader(conn)
	}
	c.mu.Unlock()
	old.Close() // its reader ends
	c.log.Info("provision: socket reopened", "ifindex", ifi.Index)
	c.LinkUp()
	return nil
}

// socket returns the current socket and server address for a send.
func (c *Client) socket() (net.PacketConn, *net.UDPAddr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn, c.dst
}

// packet is a parsed message from a server.
type packet struct {
	*received
	from netip.Addr
	at   time.Time
}

// startReader reads conn until it is closed or Run stops. c.mu is held.
func (c *Client) startReader(conn net.PacketConn) {
	c.readers.Add(1)
	go func() {
		defer c.readers.Done()
		c.readLoop(conn)
	}()
}

// current reports whether conn is the socket of a running Run.
func (c *Client) current(conn net.PacketConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn == conn && c.in != nil
}

// readLoop feeds what arrives on conn to deliver until conn is replaced
// or closed, or Run stops (it ends reads with a deadline).
func (c *Client) readLoop(conn net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if !c.current(conn) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			c.log.Error("provision: read", "err", err)
			return
		}
		var src netip.Addr
		if ua, ok := from.(*net.UDPAddr); ok {
			src, _ = netip.AddrFromSlice(ua.IP)
		}
		c.deliver(buf[:n], src, c.clk.now())
	}
}

// deliver parses a datagram and queues Advertise and Reply messages for
// Run, counting what it drops. The queue is bounded: under a flood the
// excess is dropped here, as the socket buffer would drop it.
func (c *Client) deliver(b []byte, from netip.Addr, at time.Time) {
	r, err := parseMessage(b)
	if err != nil {
		c.st.received(false, false)
		c.st.count(at, DropMalformed, 1, "from %s: %v", from, err)
		c.log.Debug("provision: dropped malformed message", "from", from, "err", err)
		return
	}
	adv, rep := r.m.MessageType == dhcpv6.MessageTypeAdvertise, r.m.MessageType == dhcpv6.MessageTypeReply
	c.st.received(adv, rep)
	if !adv && !rep {
		c.st.count(at, DropUnexpected, 1, "%s from %s", r.m.MessageType, from)
		return
	}
	if len(r.ignored) > 0 {
		c.st.count(at, IgnoredOption, len(r.ignored), "%s from %s: %s", r.m.MessageType, from, r.ignored[len(r.ignored)-1])
	}
	c.mu.Lock()
	in := c.in
	c.mu.Unlock()
	if in == nil {
		return
	}
	select {
	case in <- packet{received: r, from: from, at: at}:
	default:
		c.st.count(at, DropOverflow, 1, "%s from %s: inbox full", r.m.MessageType, from)
	}
}

// Run keeps a lease until ctx ends: Solicit/Advertise/Request/Reply (or a
// rapid commit), Renew at T1, Rebind at T2, expiry at the valid lifetime,
// and a fresh Solicit after that; a link event (LinkUp, Reopen) brings the
// Rebind forward (RFC 8415 s18.2.12). A lease persisted by an earlier run
// is resumed with Renew (or Rebind after T2), not a new Solicit. emit is
// called from Run's goroutine for every event; the lease timers wait for
// it, so it should apply and return. When ctx ends, Run sends Release if
// so configured and returns nil. One Run at a time per Client; a Client
// whose Run returned may Run again (a restart that resumes the lease).
func (c *Client) Run(ctx context.Context, emit func(Event)) error {
	if emit == nil {
		emit = func(Event) {}
	}
	in := make(chan packet, 16)
	c.mu.Lock()
	c.in = in
	c.startReader(c.conn)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.in = nil
		conn := c.conn
		c.mu.Unlock()
		conn.SetReadDeadline(time.Now())
		c.readers.Wait()
		conn.SetReadDeadline(time.Time{})
	}()
	// A link event from before this Run is stale.
	select {
	case <-c.linkc:
	default:
	}

	var lease *Lease
	resumed := false
	if c.cfg.StateDir != "" {
		l, err := LoadLease(c.cfg.StateDir)
		switch {
		case err != nil:
			c.log.Warn("provision: ignoring saved lease", "err", err)
		case l != nil && c.clk.now().Before(l.Expires()):
			lease, resumed = l, true
			c.log.Info("provision: resumed lease", "prefix", l.Prefix, "expires", l.Expires().Format(time.RFC3339))
			emit(Event{Kind: Bound, Lease: l, Resumed: true})
		case l != nil:
			c.log.Info("provision: saved lease expired", "prefix", l.Prefix)
			c.forget()
		}
	}

	for ctx.Err() == nil {
		if lease == nil {
			l, err := c.acquire(ctx, in)
			if err != nil {
				break
			}
			lease = l
			c.installed(lease)
			c.logLease("provision: bound", lease)
			emit(Event{Kind: Bound, Lease: lease})
		}
		// A resumed lease is confirmed at once; the server may have
		// moved on while we were down.
		linkMoved := false
		if !resumed {
			switch c.sleepUntil(ctx, in, lease.RenewAt()) {
			case waitDone:
				continue
			case waitLink:
				linkMoved = true
			}
		}
		resumed = false

		next, kind, err := c.keep(ctx, in, lease, linkMoved)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errKeep) {
			continue
		}
		if next == nil {
			c.log.Warn("provision: lease lost", "prefix", lease.Prefix, "reason", err)
			c.forget()
			emit(Event{Kind: Expired, Lease: lease})
			lease = nil
			continue
		}
		if !lease.SameBinding(next) {
			kind = Changed
		}
		prev := lease
		lease = next
		c.installed(lease)
		c.logLease("provision: "+kind.String(), lease)
		ev := Event{Kind: kind, Lease: lease}
		if kind == Changed {
			ev.Previous = prev
		}
		emit(ev)
	}

	if lease != nil && c.cfg.ReleaseOnStop {
		c.release(in, lease)
		c.forget()
		c.log.Info("provision: released", "prefix", lease.Prefix)
		emit(Event{Kind: Released, Lease: lease})
	}
	return nil
}

// errKeep ends a link-triggered Rebind that nobody answered: the lease's
// lifetimes still hold (RFC 8415 s18.2.12), so the client keeps it and
// goes back to its timers.
var errKeep = errors.New("no answer after the link change; keeping the lease")

// errLinkChanged aborts an exchange on a link event.
var errLinkChanged = errors.New("link changed")

// keep extends the lease: Renew until T2, then Rebind until the valid
// lifetime ends; or, after a link event, Rebind at once with Confirm's
// timing (RFC 8415 s18.2.12). A server that lost the binding is asked with
// Request (s18.2.10.1). A link event during any of it restarts with the
// link Rebind.
func (c *Client) keep(ctx context.Context, in <-chan packet, l *Lease, linkMoved bool) (*Lease, EventKind, error) {
	for {
		var next *Lease
		var err error
		kind := Renewed
		if linkMoved {
			c.log.Info("provision: link changed, rebinding (RFC 8415 s18.2.12)", "prefix", l.Prefix)
			end := c.clk.now().Add(c.t.cnfMaxRD)
			if exp := l.Expires(); exp.Before(end) {
				end = exp
			}
			next, err = c.extend(ctx, in, l, dhcpv6.MessageTypeRebind, end, c.t.cnfTimeout, c.t.cnfMaxRT)
			kind = Rebound
			if next == nil && errors.Is(err, errExhausted) && c.clk.now().Before(l.Expires()) {
				return nil, 0, errKeep
			}
		} else {
			next, err = c.extend(ctx, in, l, dhcpv6.MessageTypeRenew, l.RebindAt(), c.t.renTimeout, c.t.renMaxRT)
			if next == nil && errors.Is(err, errExhausted) && ctx.Err() == nil {
				next, err = c.extend(ctx, in, l, dhcpv6.MessageTypeRebind, l.Expires(), c.t.rebTimeout, c.t.rebMaxRT)
				kind = Rebound
			}
		}
		if next == nil && errors.Is(err, errNoBinding) && ctx.Err() == nil {
			// RFC 8415 s18.2.10.1: the server lost our binding; ask
			// it with Request.
			c.log.Info("provision: server has no binding, sending Request")
			next, err = c.request(ctx, in, l.ServerID, l.Prefix)
		}
		if errors.Is(err, errLinkChanged) {
			linkMoved = true
			continue
		}
		return next, kind, err
	}
}

// installed records a lease now in force: persisted, its ignored
// containers counted.
func (c *Client) installed(l *Lease) {
	c.save(l)
	if n := len(l.Ignored); n > 0 {
		c.st.count(c.clk.now(), IgnoredContainer, n, "%s", l.Ignored[n-1])
	}
}

func (c *Client) logLease(msg string, l *Lease) {
	args := []any{"prefix", l.Prefix, "t1", l.T1, "t2", l.T2, "valid", l.Valid, "server", l.ServerAddr, "domains", len(l.Domains),
		"dns", len(l.DNS), "search", len(l.Search), "ntp", len(l.NTP)}
	c.log.Info(msg, args...)
	if l.Selection != "" {
		c.log.Info("provision: "+l.Selection, "prefix", l.Prefix)
	}
	for _, why := range l.Ignored {
		c.log.Warn("provision: "+why, "prefix", l.Prefix)
	}
	for _, why := range l.IgnoredOptions {
		c.log.Warn("provision: "+why, "prefix", l.Prefix)
	}
}

func (c *Client) save(l *Lease) {
	if c.cfg.StateDir == "" {
		return
	}
	if err := SaveLease(c.cfg.StateDir, l); err != nil {
		c.log.Error("provision: persist lease", "err", err)
	}
}

func (c *Client) forget() {
	if c.cfg.StateDir == "" {
		return
	}
	if err := RemoveLease(c.cfg.StateDir); err != nil {
		c.log.Error("provision: remove lease", "err", err)
	}
}

// waitResult says what ended a wait.
type waitResult int

const (
	waitPacket waitResult = iota
	waitTimer
	waitLink
	waitDone
)

// next waits for a packet, the timer, a link event (unless link is nil)
// or the end of ctx. What is already there is taken in a fixed order (end,
// queued packets, link, timer), so the outcome does not depend on
// select's random choice when several are ready: answers that have
// arrived are read before a retransmission timer is acted on, and the
// exchange fuzzer's virtual clock is deterministic.
func next(ctx context.Context, in <-chan packet, timer <-chan time.Time, link <-chan struct{}) (packet, waitResult) {
	select {
	case <-ctx.Done():
		return packet{}, waitDone
	default:
	}
	select {
	case p := <-in:
		return p, waitPacket
	default:
	}
	select {
	case <-link:
		return packet{}, waitLink
	default:
	}
	select {
	case <-ctx.Done():
		return packet{}, waitDone
	case p := <-in:
		return p, waitPacket
	case <-link:
		return packet{}, waitLink
	case <-timer:
		return packet{}, waitTimer
	}
}

// sleepUntil waits for t, dropping whatever arrives meanwhile. It returns
// waitTimer at t, waitLink on a link event, waitDone when ctx ends.
func (c *Client) sleepUntil(ctx context.Context, in <-chan packet, t time.Time) waitResult {
	return c.await(ctx, in, t.Sub(c.clk.now()), c.linkc, nil)
}

// await receives for d, handing each message to handle (nil: dropped).
// It ends with waitTimer when d has passed, waitPacket when handle
// returned true, waitDone when ctx ended and waitLink on a link event
// (link nil: none).
func (c *Client) await(ctx context.Context, in <-chan packet, d time.Duration, link <-chan struct{}, handle func(packet) bool) waitResult {
	timer, stop := c.clk.timer(d)
	defer stop()
	for {
		p, r := next(ctx, in, timer, link)
		if r != waitPacket {
			return r
		}
		if handle != nil && handle(p) {
			return waitPacket
		}
	}
}

// errExhausted ends an exchange that ran out of retransmissions or time.
var errExhausted = errors.New("no answer")

// exchange is one client-initiated message exchange with RFC 8415 s15
// retransmission.
type exchange struct {
	typ      dhcpv6.MessageType
	irt, mrt time.Duration
	mrc      int
	end      time.Time // MRD as an absolute time; zero: none
	delay    time.Duration
	serverID []byte
	prefix   netip.Prefix
	// noLink: link events do not abort this exchange (Release on stop).
	noLink bool
	// handle sees every message with our transaction ID; true ends the
	// exchange.
	handle func(p packet) bool
	// timeout runs when a retransmission timer ends, before the next
	// transmission; true ends the exchange.
	timeout func(n int) bool
}

// jitter is RAND of RFC 8415 s15: uniform in [-0.1, 0.1].
func (c *Client) jitter() float64 { return c.rnd.Float64()*0.2 - 0.1 }

// run carries out the exchange. It returns nil when handle or timeout
// ended it, errExhausted when MRC or MRD ran out, errLinkChanged on a link
// event, and ctx.Err() when ctx ended.
func (c *Client) run(ctx context.Context, in <-chan packet, ex exchange) error {
	link := c.linkc
	if ex.noLink {
		link = nil
	}
	if ex.delay > 0 {
		switch c.await(ctx, in, ex.delay, link, nil) {
		case waitDone:
			return ctx.Err()
		case waitLink:
			return errLinkChanged
		}
	}
	var xid dhcpv6.TransactionID
	if _, err := c.xid(xid[:]); err != nil {
		return fmt.Errorf("provision: transaction id: %w", err)
	}
	start := c.clk.now()
	var rt time.Duration
	for n := 1; ; n++ {
		switch {
		case n == 1 && ex.typ == dhcpv6.MessageTypeSolicit:
			// RFC 8415 s18.2.1: the first Solicit's RAND is positive.
			rt = time.Duration(float64(ex.irt) * (1 + c.rnd.Float64()*0.1))
		case n == 1:
			rt = time.Duration(float64(ex.irt) * (1 + c.jitter()))
		default:
			rt = time.Duration(float64(rt) * (2 + c.jitter()))
			if ex.mrt > 0 && rt > ex.mrt {
				rt = time.Duration(float64(ex.mrt) * (1 + c.jitter()))
			}
		}
		now := c.clk.now()
		deadline := now.Add(rt)
		if !ex.end.IsZero() {
			if !now.Before(ex.end) {
				return errExhausted
			}
			if deadline.After(ex.end) {
				deadline = ex.end
			}
		}
		m := buildMessage(ex.typ, xid, c.id, now.Sub(start), ex.serverID, ex.prefix, c.mc)
		conn, dst := c.socket()
		if _, err := conn.WriteTo(m.ToBytes(), dst); err != nil {
			// No usable source address yet (DAD) or the link is down:
			// the next retransmission tries again.
			c.log.Debug("provision: send", "type", ex.typ, "err", err)
		} else {
			c.log.Debug("provision: sent", "type", ex.typ, "xid", xid, "n", n)
		}
		ours := func(p packet) bool {
			if p.m.TransactionID != xid {
				c.st.count(p.at, DropStale, 1, "%s from %s: transaction %x, not %x", p.m.MessageType, p.from, p.m.TransactionID, xid)
				return false
			}
			return ex.handle(p)
		}
		switch c.await(ctx, in, deadline.Sub(c.clk.now()), link, ours) {
		case waitDone:
			return ctx.Err()
		case waitLink:
			return errLinkChanged
		case waitPacket:
			return nil
		}
		if ex.timeout != nil && ex.timeout(n) {
			return nil
		}
		if ex.mrc > 0 && n >= ex.mrc {
			return errExhausted
		}
		if !ex.end.IsZero() && !c.clk.now().Before(ex.end) {
			return errExhausted
		}
	}
}

// acquire gets a fresh lease: Solicit, then Request to the chosen server,
// or a rapid-commit Reply. It keeps trying until it succeeds or ctx ends;
// a link event restarts it at once.
func (c *Client) acquire(ctx context.Context, in <-chan packet) (*Lease, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// A server that advertises but then refuses would otherwise
			// be asked again at once, forever.
			back := min(time.Duration(1<<min(attempt-1, 6))*time.Second, c.t.solMaxRT)
			switch c.sleepUntil(ctx, in, c.clk.now().Add(time.Duration(float64(back)*(1+c.jitter())))) {
			case waitDone:
				return nil, ctx.Err()
			case waitLink:
				attempt = -1
				continue
			}
		}
		adv, lease, err := c.solicit(ctx, in)
		if errors.Is(err, errLinkChanged) {
			attempt = -1
			continue
		}
		if err != nil {
			return nil, err
		}
		if lease != nil {
			return lease, nil
		}
		c.log.Info("provision: requesting", "prefix", adv.Prefix, "server", adv.ServerAddr)
		lease, err = c.request(ctx, in, adv.ServerID, adv.Prefix)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if lease != nil {
			return lease, nil
		}
		if errors.Is(err, errLinkChanged) {
			attempt = -1
			continue
		}
		c.log.Warn("provision: request failed, soliciting again", "err", err)
	}
}

// answer checks a message against the exchange: the lease it carries, or
// nil when it is to be dropped (counted) and the exchange goes on, or an
// error that ends the exchange (NoPrefixAvail, NoBinding). serverID, when
// set, is the server the exchange addressed (Request, Renew): RFC 8415
// s18.2.2 and s18.2.4 send those to one server by its Server Identifier,
// and a Reply from any other is not an answer, however well formed.
func (c *Client) answer(p packet, serverID []byte) (*Lease, error) {
	if serverID != nil {
		sid := p.m.Options.GetOne(dhcpv6.OptionServerID)
		if sid == nil || !bytes.Equal(sid.ToBytes(), serverID) {
			var got []byte
			if sid != nil {
				got = sid.ToBytes()
			}
			c.st.count(p.at, DropWrongServer, 1, "%s from %s: server-id %x, the exchange is with %x", p.m.MessageType, p.from, got, serverID)
			c.log.Warn("provision: reply from another server dropped", "from", p.from, "server_id", fmt.Sprintf("%x", got), "want", fmt.Sprintf("%x", serverID))
			return nil, nil
		}
	}
	l, err := leaseFromMessage(p.m, c.id, p.from, p.at)
	switch {
	case err == nil:
		l.setOptions(p.received)
		return l, nil
	case errors.Is(err, errNotForUs):
		c.st.count(p.at, DropForeign, 1, "%s from %s: %v", p.m.MessageType, p.from, err)
		c.log.Debug("provision: message dropped", "from", p.from, "reason", err)
		return nil, nil
	default:
		c.st.count(p.at, DropUnusable, 1, "%s from %s: %v", p.m.MessageType, p.from, err)
		return nil, err
	}
}

// solicit runs the Solicit exchange (RFC 8415 s18.2.1). It returns the
// best Advertise (as the lease it offers), or the lease of a rapid-commit
// Reply.
func (c *Client) solicit(ctx context.Context, in <-chan packet) (adv *Lease, reply *Lease, err error) {
	var best *Lease
	bestPref := -1
	firstRTOver := false
	ex := exchange{
		typ: dhcpv6.MessageTypeSolicit, irt: c.t.solTimeout, mrt: c.t.solMaxRT,
		delay: time.Duration(c.rnd.Int64N(int64(c.t.solMaxDelay) + 1)),
		handle: func(p packet) bool {
			if d, ok := solMaxRT(p.m); ok {
				c.t.solMaxRT = d
			}
			if p.m.MessageType == dhcpv6.MessageTypeReply {
				if p.m.GetOneOption(dhcpv6.OptionRapidCommit) == nil || c.cfg.NoRapidCommit {
					c.st.count(p.at, DropUnexpected, 1, "Reply without Rapid Commit to Solicit from %s", p.from)
					return false
				}
				l, err := c.answer(p, nil)
				if l == nil {
					c.log.Info("provision: rapid-commit reply skipped", "from", p.from, "reason", err)
					return false
				}
				reply = l
				return true
			}
			l, err := c.answer(p, nil)
			if l == nil {
				// RFC 8415 s18.2.9: an Advertise without a prefix is
				// ignored.
				if err != nil {
					c.log.Info("provision: advertise skipped", "from", p.from, "reason", err)
				}
				return false
			}
			pref := int(preference(p.m))
			if pref > bestPref {
				best, bestPref = l, pref
			}
			// Preference 255, or any Advertise after the first RT,
			// is taken at once.
			return pref == 255 || firstRTOver
		},
		timeout: func(int) bool {
			firstRTOver = true
			return best != nil
		},
	}
	c.log.Info("provision: soliciting")
	if err := c.run(ctx, in, ex); err != nil {
		return nil, nil, err
	}
	if reply != nil {
		return nil, reply, nil
	}
	return best, nil, nil
}

// replyResult is what ended an exchange that one Reply answers: the lease it
// gave, or why it gave none (answer's error).
type replyResult struct {
	lease *Lease
	err   error
}

// awaitReply is the handle of the exchanges that one Reply answers
// (Request, Renew, Rebind): any other message type is counted and dropped,
// a Reply is checked by answer against serverID (nil: any server's
// counts), and one that gives a lease or an error that ends the exchange
// (NoPrefixAvail, NoBinding) ends it, stored in *got.
func (c *Client) awaitReply(typ dhcpv6.MessageType, serverID []byte, got *replyResult) func(packet) bool {
	return func(p packet) bool {
		if p.m.MessageType != dhcpv6.MessageTypeReply {
			c.st.count(p.at, DropUnexpected, 1, "%s from %s during %s", p.m.MessageType, p.from, typ)
			return false
		}
		l, err := c.answer(p, serverID)
		if l == nil && err == nil {
			return false
		}
		*got = replyResult{lease: l, err: err}
		return true
	}
}

// request runs the Request exchange (RFC 8415 s18.2.2) with one server.
// The error wraps errNoPrefix or errExhausted when it fails.
func (c *Client) request(ctx context.Context, in <-chan packet, serverID []byte, hint netip.Prefix) (*Lease, error) {
	var got replyResult
	ex := exchange{
		typ: dhcpv6.MessageTypeRequest, irt: c.t.reqTimeout, mrt: c.t.reqMaxRT, mrc: c.t.reqMaxRC,
		serverID: serverID, prefix: hint, handle: c.awaitReply(dhcpv6.MessageTypeRequest, serverID, &got),
	}
	if err := c.run(ctx, in, ex); err != nil {
		return nil, err
	}
	return got.lease, got.err
}

// extend runs Renew (with the server-id, answered by that server only) or
// Rebind (without, answered by any) for the lease until end (T2, the end
// of the valid lifetime, or CNF_MAX_RD after a link change). It returns
// the new lease, or nil and why: errExhausted (no answer), errNoPrefix
// (withdrawn), errNoBinding or errLinkChanged.
func (c *Client) extend(ctx context.Context, in <-chan packet, l *Lease, typ dhcpv6.MessageType, end time.Time, irt, mrt time.Duration) (*Lease, error) {
	ex := exchange{typ: typ, end: end, prefix: l.Prefix, irt: irt, mrt: mrt}
	if typ == dhcpv6.MessageTypeRenew {
		ex.serverID = l.ServerID
	}
	var got replyResult
	ex.handle = c.awaitReply(typ, ex.serverID, &got)
	if !c.clk.now().Before(end) {
		return nil, errExhausted
	}
	c.log.Info("provision: extending", "type", typ, "prefix", l.Prefix, "until", end.Format(time.RFC3339))
	if err := c.run(ctx, in, ex); err != nil {
		return nil, err
	}
	return got.lease, got.err
}

// release sends Release (RFC 8415 s18.2.7) and waits for the Reply, at
// most ReleaseTimeout.
func (c *Client) release(in <-chan packet, l *Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ReleaseTimeout)
	defer cancel()
	ex := exchange{
		typ: dhcpv6.MessageTypeRelease, irt: c.t.relTimeout, mrc: c.t.relMaxRC,
		serverID: l.ServerID, prefix: l.Prefix, noLink: true,
		// Any Reply ends it, whatever its status (s18.2.10.2).
		handle: func(p packet) bool { return p.m.MessageType == dhcpv6.MessageTypeReply },
	}
	if err := c.run(ctx, in, ex); err != nil {
		c.log.Info("provision: release not acknowledged", "err", err)
	}
}
