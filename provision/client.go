package provision

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
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
}

// timing holds RFC 8415 s7.6 transmission parameters.
type timing struct {
	solMaxDelay, solTimeout, solMaxRT time.Duration
	reqTimeout, reqMaxRT              time.Duration
	reqMaxRC                          int
	renTimeout, renMaxRT              time.Duration
	rebTimeout, rebMaxRT              time.Duration
	relTimeout                        time.Duration
	relMaxRC                          int
}

var rfc8415 = timing{
	solMaxDelay: 1 * time.Second, solTimeout: 1 * time.Second, solMaxRT: 3600 * time.Second,
	reqTimeout: 1 * time.Second, reqMaxRT: 30 * time.Second, reqMaxRC: 10,
	renTimeout: 10 * time.Second, renMaxRT: 600 * time.Second,
	rebTimeout: 10 * time.Second, rebMaxRT: 600 * time.Second,
	relTimeout: 1 * time.Second, relMaxRC: 4,
}

// Client is a DHCPv6 client (RFC 8415) that keeps one IA_PD and the MAP-T
// domains (RFC 7598) that come with it.
type Client struct {
	cfg  ClientConfig
	log  *slog.Logger
	id   Identity
	conn net.PacketConn
	dst  *net.UDPAddr
	t    timing
}

// NewClient resolves the interface, loads or creates the identity and
// opens the client socket, in the network namespace of the calling thread.
func NewClient(cfg ClientConfig) (*Client, error) {
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
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.ReleaseTimeout <= 0 {
		cfg.ReleaseTimeout = 3 * time.Second
	}
	return &Client{
		cfg:  cfg,
		log:  log.With("iface", ifi.Name),
		id:   id,
		conn: conn,
		// A numeric zone: resolving a name would look in the netns of
		// whichever thread sends.
		dst: &net.UDPAddr{IP: dhcpv6.AllDHCPRelayAgentsAndServers, Port: dhcpv6.DefaultServerPort, Zone: strconv.Itoa(ifi.Index)},
		t:   rfc8415,
	}, nil
}

// Identity returns the DUID and IAID the client uses.
func (c *Client) Identity() Identity { return c.id }

// Close closes the socket. Run must have returned.
func (c *Client) Close() error { return c.conn.Close() }

// packet is a parsed message from a server.
type packet struct {
	m    *dhcpv6.Message
	from netip.Addr
	at   time.Time
}

// readLoop feeds parsed Advertise and Reply messages to in until the
// socket fails (Run ends it with a read deadline).
func (c *Client) readLoop(in chan<- packet, done <-chan struct{}) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			c.log.Error("provision: read", "err", err)
			return
		}
		at := time.Now()
		m, err := dhcpv6.MessageFromBytes(buf[:n])
		if err != nil {
			c.log.Debug("provision: dropped malformed message", "from", from, "err", err)
			continue
		}
		if m.MessageType != dhcpv6.MessageTypeAdvertise && m.MessageType != dhcpv6.MessageTypeReply {
			continue
		}
		var src netip.Addr
		if ua, ok := from.(*net.UDPAddr); ok {
			src, _ = netip.AddrFromSlice(ua.IP)
		}
		select {
		case in <- packet{m: m, from: src, at: at}:
		case <-done:
			return
		}
	}
}

// Run keeps a lease until ctx ends: Solicit/Advertise/Request/Reply (or a
// rapid commit), Renew at T1, Rebind at T2, expiry at the valid lifetime,
// and a fresh Solicit after that. A lease persisted by an earlier run is
// resumed with Renew (or Rebind after T2), not a new Solicit. emit is
// called from Run's goroutine for every event; the lease timers wait for
// it, so it should apply and return. When ctx ends, Run sends Release if
// so configured and returns nil. One Run at a time per Client; a Client
// whose Run returned may Run again (a restart that resumes the lease).
func (c *Client) Run(ctx context.Context, emit func(Event)) error {
	if emit == nil {
		emit = func(Event) {}
	}
	in := make(chan packet, 16)
	done := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { c.readLoop(in, done); close(readerDone) }()
	defer func() {
		close(done)
		c.conn.SetReadDeadline(time.Now())
		<-readerDone
		c.conn.SetReadDeadline(time.Time{})
	}()

	var lease *Lease
	resumed := false
	if c.cfg.StateDir != "" {
		l, err := LoadLease(c.cfg.StateDir)
		switch {
		case err != nil:
			c.log.Warn("provision: ignoring saved lease", "err", err)
		case l != nil && time.Now().Before(l.Expires()):
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
			c.save(lease)
			c.logLease("provision: bound", lease)
			emit(Event{Kind: Bound, Lease: lease})
		}
		// A resumed lease is confirmed at once; the server may have
		// moved on while we were down.
		if !resumed && !c.sleepUntil(ctx, in, lease.RenewAt()) {
			break
		}
		resumed = false

		next, err := c.extend(ctx, in, lease, dhcpv6.MessageTypeRenew, lease.RebindAt())
		kind := Renewed
		if next == nil && errors.Is(err, errExhausted) && ctx.Err() == nil {
			next, err = c.extend(ctx, in, lease, dhcpv6.MessageTypeRebind, lease.Expires())
			kind = Rebound
		}
		if next == nil && errors.Is(err, errNoBinding) && ctx.Err() == nil {
			// RFC 8415 s18.2.10.1: the server lost our binding; ask
			// it with Request.
			c.log.Info("provision: server has no binding, sending Request")
			next, err = c.request(ctx, in, lease.ServerID, lease.Prefix)
		}
		if ctx.Err() != nil {
			break
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
		c.save(lease)
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

func (c *Client) logLease(msg string, l *Lease) {
	args := []any{"prefix", l.Prefix, "t1", l.T1, "t2", l.T2, "valid", l.Valid, "server", l.ServerAddr, "domains", len(l.Domains)}
	c.log.Info(msg, args...)
	for _, why := range l.Ignored {
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

// sleepUntil waits for t, dropping whatever arrives meanwhile. It returns
// false if ctx ended first.
func (c *Client) sleepUntil(ctx context.Context, in <-chan packet, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-in:
		}
	}
}

// cryptoRead makes transaction IDs.
var cryptoRead = crand.Read

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
	// handle sees every message with our transaction ID; true ends the
	// exchange.
	handle func(p packet) bool
	// timeout runs when a retransmission timer ends, before the next
	// transmission; true ends the exchange.
	timeout func(n int) bool
}

// jitter is RAND of RFC 8415 s15: uniform in [-0.1, 0.1].
func jitter() float64 { return rand.Float64()*0.2 - 0.1 }

// run carries out the exchange. It returns nil when handle or timeout
// ended it, errExhausted when MRC or MRD ran out, and ctx.Err() when ctx
// ended.
func (c *Client) run(ctx context.Context, in <-chan packet, ex exchange) error {
	if ex.delay > 0 {
		if !c.sleepUntil(ctx, in, time.Now().Add(ex.delay)) {
			return ctx.Err()
		}
	}
	var xid dhcpv6.TransactionID
	if _, err := cryptoRead(xid[:]); err != nil {
		return fmt.Errorf("provision: transaction id: %w", err)
	}
	start := time.Now()
	var rt time.Duration
	for n := 1; ; n++ {
		switch {
		case n == 1 && ex.typ == dhcpv6.MessageTypeSolicit:
			// RFC 8415 s18.2.1: the first Solicit's RAND is positive.
			rt = time.Duration(float64(ex.irt) * (1 + rand.Float64()*0.1))
		case n == 1:
			rt = time.Duration(float64(ex.irt) * (1 + jitter()))
		default:
			rt = time.Duration(float64(rt) * (2 + jitter()))
			if ex.mrt > 0 && rt > ex.mrt {
				rt = time.Duration(float64(ex.mrt) * (1 + jitter()))
			}
		}
		deadline := time.Now().Add(rt)
		if !ex.end.IsZero() {
			if !time.Now().Before(ex.end) {
				return errExhausted
			}
			if deadline.After(ex.end) {
				deadline = ex.end
			}
		}
		m := buildMessage(ex.typ, xid, c.id, time.Since(start), ex.serverID, ex.prefix, !c.cfg.NoRapidCommit)
		if _, err := c.conn.WriteTo(m.ToBytes(), c.dst); err != nil {
			// No usable source address yet (DAD) or the link is down:
			// the next retransmission tries again.
			c.log.Debug("provision: send", "type", ex.typ, "err", err)
		} else {
			c.log.Debug("provision: sent", "type", ex.typ, "xid", xid, "n", n)
		}
		timer := time.NewTimer(time.Until(deadline))
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case p := <-in:
				if p.m.TransactionID != xid {
					continue
				}
				if ex.handle(p) {
					timer.Stop()
					return nil
				}
			case <-timer.C:
				break wait
			}
		}
		if ex.timeout != nil && ex.timeout(n) {
			return nil
		}
		if ex.mrc > 0 && n >= ex.mrc {
			return errExhausted
		}
		if !ex.end.IsZero() && !time.Now().Before(ex.end) {
			return errExhausted
		}
	}
}

// acquire gets a fresh lease: Solicit, then Request to the chosen server,
// or a rapid-commit Reply. It keeps trying until it succeeds or ctx ends.
func (c *Client) acquire(ctx context.Context, in <-chan packet) (*Lease, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// A server that advertises but then refuses would otherwise
			// be asked again at once, forever.
			back := min(time.Duration(1<<min(attempt-1, 6))*time.Second, c.t.solMaxRT)
			if !c.sleepUntil(ctx, in, time.Now().Add(time.Duration(float64(back)*(1+jitter())))) {
				return nil, ctx.Err()
			}
		}
		adv, lease, err := c.solicit(ctx, in)
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
		c.log.Warn("provision: request failed, soliciting again", "err", err)
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
		delay: time.Duration(rand.Int64N(int64(c.t.solMaxDelay) + 1)),
		handle: func(p packet) bool {
			if d, ok := solMaxRT(p.m); ok {
				c.t.solMaxRT = d
			}
			l, err := leaseFromMessage(p.m, c.id, p.from, p.at)
			if p.m.MessageType == dhcpv6.MessageTypeReply {
				if p.m.GetOneOption(dhcpv6.OptionRapidCommit) == nil || c.cfg.NoRapidCommit {
					return false
				}
				if err != nil {
					c.log.Info("provision: rapid-commit reply skipped", "from", p.from, "reason", err)
					return false
				}
				reply = l
				return true
			}
			if err != nil {
				// RFC 8415 s18.2.9: an Advertise without a prefix is
				// ignored.
				c.log.Info("provision: advertise skipped", "from", p.from, "reason", err)
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

// request runs the Request exchange (RFC 8415 s18.2.2) with one server.
// The error wraps errNoPrefix or errExhausted when it fails.
func (c *Client) request(ctx context.Context, in <-chan packet, serverID []byte, hint netip.Prefix) (*Lease, error) {
	var lease *Lease
	var failed error
	ex := exchange{
		typ: dhcpv6.MessageTypeRequest, irt: c.t.reqTimeout, mrt: c.t.reqMaxRT, mrc: c.t.reqMaxRC,
		serverID: serverID, prefix: hint,
		handle: func(p packet) bool {
			if p.m.MessageType != dhcpv6.MessageTypeReply {
				return false
			}
			l, err := leaseFromMessage(p.m, c.id, p.from, p.at)
			switch {
			case err == nil:
				lease = l
				return true
			case errors.Is(err, errNotForUs):
				c.log.Debug("provision: reply dropped", "reason", err)
				return false
			default:
				failed = err
				return true
			}
		},
	}
	if err := c.run(ctx, in, ex); err != nil {
		return nil, err
	}
	return lease, failed
}

// extend runs Renew (with the server-id) or Rebind (without) for the
// lease until end (T2, or the end of the valid lifetime). It returns the
// new lease, or nil and why: errExhausted (no answer), errNoPrefix
// (withdrawn) or errNoBinding.
func (c *Client) extend(ctx context.Context, in <-chan packet, l *Lease, typ dhcpv6.MessageType, end time.Time) (*Lease, error) {
	ex := exchange{typ: typ, end: end, prefix: l.Prefix}
	if typ == dhcpv6.MessageTypeRenew {
		ex.irt, ex.mrt, ex.serverID = c.t.renTimeout, c.t.renMaxRT, l.ServerID
	} else {
		ex.irt, ex.mrt = c.t.rebTimeout, c.t.rebMaxRT
	}
	var next *Lease
	var failed error
	ex.handle = func(p packet) bool {
		if p.m.MessageType != dhcpv6.MessageTypeReply {
			return false
		}
		nl, err := leaseFromMessage(p.m, c.id, p.from, p.at)
		switch {
		case err == nil:
			next = nl
			return true
		case errors.Is(err, errNotForUs):
			c.log.Debug("provision: reply dropped", "reason", err)
			return false
		default:
			failed = err
			return true
		}
	}
	if !time.Now().Before(end) {
		return nil, errExhausted
	}
	c.log.Info("provision: extending", "type", typ, "prefix", l.Prefix, "until", end.Format(time.RFC3339))
	if err := c.run(ctx, in, ex); err != nil {
		return nil, err
	}
	return next, failed
}

// release sends Release (RFC 8415 s18.2.7) and waits for the Reply, at
// most ReleaseTimeout.
func (c *Client) release(in <-chan packet, l *Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ReleaseTimeout)
	defer cancel()
	ex := exchange{
		typ: dhcpv6.MessageTypeRelease, irt: c.t.relTimeout, mrc: c.t.relMaxRC,
		serverID: l.ServerID, prefix: l.Prefix,
		// Any Reply ends it, whatever its status (s18.2.10.2).
		handle: func(p packet) bool { return p.m.MessageType == dhcpv6.MessageTypeReply },
	}
	if err := c.run(ctx, in, ex); err != nil {
		c.log.Info("provision: release not acknowledged", "err", err)
	}
}
