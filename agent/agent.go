package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/provision"
)

// Defaults of the agent's configuration.
const (
	DefaultUplink       = "mapt0"
	DefaultStateDir     = "/var/lib/ce-agent"
	DefaultStatusSocket = "/var/run/ce-agent.sock" // /run is missing on OpenWrt 23.05
)

// Config configures the agent. The zero value plus a WAN (or none, to
// pick one) is the zero-touch default.
type Config struct {
	WAN            string // empty: PickWAN
	Uplink         string // the IPv4 uplink device; DefaultUplink
	StateDir       string // lease and DHCPv6 identity; DefaultStateDir
	StatusSocket   string // DefaultStatusSocket; "-" for none
	Hook           string // script run on every change
	ReleaseOnStop  bool   // send DHCPv6 Release on a clean stop
	LeaveInPlace   bool   // keep the kernel state on stop, for a restart
	NoDefaultRoute bool   // do not install the IPv4 default route
	// InboundViaWAN lets the translated packets from the MAP domain go
	// on into the IPv4 stack on the WAN, saving the second receive they
	// get when redirected into the uplink's ingress (the default, where
	// a firewall sees them arrive on the uplink, as OpenWrt's mapt zone
	// wants; dataplane.Config.InboundViaUplink). With it the agent turns
	// the WAN's reverse-path filtering off (internal/rpfilter), nat
	// clamps and tests the WAN too, and firewall rules for this traffic
	// must name the WAN.
	InboundViaWAN bool
	AttachMode    string // "" (auto: TCX, else clsact), "tcx" or "clsact"
	// PinRoot is where the translator is pinned, so that it keeps
	// forwarding while the agent is away (killed, restarting, upgrading)
	// and the next start adopts it: dataplane.DefaultPinRoot when empty,
	// "-" for no pinning (the translator then ends with the process on
	// TCX).
	PinRoot string
	// LowestIPv6MTU is RFC 7915 s4.1's lowest-ipv6-mtu: IPv4 packets with
	// DF clear leave as IPv6 fragments of at most this size (0: 1280, the
	// IPv6 minimum). Raise it where every IPv6 path to the BR and the
	// mesh peers is known to carry more.
	LowestIPv6MTU int
	// UplinkMTU, when set, caps the uplink's MTU below what the WAN allows
	// (WAN MTU - 28): OpenWrt's `mtu` option, for a path to the BR whose
	// IPv6 MTU is lower than the WAN link's.
	UplinkMTU int
	// ICMPRate bounds the ICMP errors the translator sends itself (RFC
	// 7599 s8.2: a destination port outside our set; RFC 7915 s4.1: an
	// unexpired source route from the LAN), per second and CPU: 0 is
	// dataplane.DefaultICMPRate, negative none.
	ICMPRate int
	// TrafficClass and TOS set the DS field of what the translator
	// sends towards IPv6 and towards the LAN instead of copying it (RFC
	// 7915 s4.1, s5.1; the zero value copies).
	TrafficClass, TOS mapt.DSField
	// DHCPv6 tunes the DHCPv6 client (identity overrides and what it
	// sends); see provision.ClientConfig.
	DHCPv6 DHCPv6Options
	// Static, when set, replaces DHCPv6 S46 provisioning: the domain, and
	// the end-user prefix (or, when Prefix is not valid, the prefix from
	// DHCPv6 IA_PD).
	Static *Static
	Logger *slog.Logger
}

// DHCPv6Options are the DHCPv6 client settings an OpenWrt interface
// section carries (clientid, reqopts, vendorclass, userclass).
type DHCPv6Options struct {
	ClientID       []byte
	IAID           *uint32
	VendorClass    []byte
	UserClass      [][]byte
	RequestOptions []dhcpv6.OptionCode
}

// Static is a domain configured by hand (ce-agent --domain / --rule).
type Static struct {
	Domain mapt.Domain
	Prefix netip.Prefix
}

// update is a new desired state from the lease or the static config.
type update struct {
	desired *Desired // nil: withdraw
	lease   *provision.Lease
	event   string // bound, renewed, changed, expired, ...
}

// dhcpClient is what the agent asks of its DHCPv6 client besides running
// it: follow link events, and report its counters.
type dhcpClient interface {
	LinkUp()
	Reopen() error
	Stats() provision.Stats
}

// Agent runs the CE.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	kernel kernel
	board  statusBoard
	// hook runs the hook script (runHook); tests replace it.
	hook func(ctx context.Context, h hookInfo)
	// dhcp is the DHCPv6 client, nil in static mode with a prefix.
	dhcp dhcpClient
	// want is the latest desired state, applied the state in force; they
	// differ while an apply fails (e.g. the WAN is gone), and the next
	// chance (a link event, a lease event) tries again.
	want, applied *Desired
	lease         *provision.Lease // in force, for the hook; nil in static mode
	prefix        netip.Prefix     // the delegated prefix in force, for the hook
	wan           wanState
}

// kernel applies and removes the CE's kernel state (kernel_linux.go; a
// recording fake in agent_test.go).
type kernel interface {
	// apply makes the kernel match d; old is what was applied before (nil
	// on the first apply). force re-applies every part (re-attaching the
	// translator).
	apply(d, old *Desired, force bool) error
	// withdraw removes everything for old (may be nil: remove leftovers).
	withdraw(old *Desired) error
	// refreshWAN re-reads the WAN device after a link event.
	refreshWAN() (wanState, error)
	// detach drops the translator after the WAN device went away (its
	// hooks went with it); the next forced apply attaches a new one.
	detach() error
	// uplinkMTU is the MTU the uplink gets: WAN MTU - 28, capped by
	// Config.UplinkMTU.
	uplinkMTU() int
	// counters returns the translator's counters and attach mode.
	counters() (map[string]uint64, string)
	close() error
}

// wanState is what the agent knows of its WAN device.
type wanState struct {
	Present bool
	Index   int
	MTU     int
	Carrier bool
}

// Run runs the agent until ctx ends (SIGTERM in ce-agent), then stops it
// cleanly: the kernel state is removed unless LeaveInPlace is set.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Uplink == "" {
		cfg.Uplink = DefaultUplink
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.StatusSocket == "" {
		cfg.StatusSocket = DefaultStatusSocket
	}
	if cfg.StatusSocket == "-" {
		cfg.StatusSocket = ""
	}
	if cfg.Static != nil {
		if err := cfg.Static.Domain.Validate(); err != nil {
			return fmt.Errorf("agent: static domain: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("agent: state dir: %w", err)
	}
	unlock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	k, wan, err := newKernel(cfg)
	if err != nil {
		return err
	}
	defer k.close()
	release, err := claimWAN(wan, cfg.StatusSocket)
	if err != nil {
		return err
	}
	defer release()
	cfg.WAN = wan
	a := newAgent(cfg, k)
	a.board.s.Source = "dhcpv6"
	if cfg.Static != nil {
		a.board.s.Source = "static"
	}
	links, err := watchWAN(ctx, wan, a.log)
	if err != nil {
		return err
	}
	stopStatus, err := serveStatus(ctx, cfg.StatusSocket, &a.board)
	if err != nil {
		return err
	}
	defer stopStatus()
	return a.loop(ctx, links)
}

// newAgent assembles an agent around a kernel (Run, and the state-machine
// tests with a fake).
func newAgent(cfg Config, k kernel) *Agent {
	a := &Agent{cfg: cfg, log: cfg.Logger, kernel: k}
	a.hook = func(ctx context.Context, h hookInfo) { runHook(ctx, a.log, cfg.Hook, h) }
	a.wan, _ = k.refreshWAN()
	a.board.s = Status{State: "waiting", WAN: cfg.WAN, Uplink: cfg.Uplink, Since: time.Now().UTC()}
	a.board.update(func(s *Status) { s.Link = a.linkStatus() })
	a.board.counters = k.counters
	return a
}

// linkStatus is the WAN part of the status.
func (a *Agent) linkStatus() *LinkStatus {
	ls := &LinkStatus{State: "up", Ifindex: a.wan.Index, MTU: a.wan.MTU}
	switch {
	case !a.wan.Present:
		ls.State = "absent"
	case !a.wan.Carrier:
		ls.State = "no-carrier"
	}
	if a.wan.Present {
		ls.UplinkMTU = a.kernel.uplinkMTU()
	}
	return ls
}

func (a *Agent) loop(ctx context.Context, links <-chan linkEvent) error {
	updates := make(chan update, 4)
	srcCtx, cancelSrc := context.WithCancel(ctx)
	defer cancelSrc()
	srcDone := make(chan error, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// SIGUSR1: extend the lease now (netifd's renew, as odhcp6c takes it).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	if a.cfg.Static != nil && a.cfg.Static.Prefix.IsValid() {
		d, err := Derive([]mapt.Domain{a.cfg.Static.Domain}, a.cfg.Static.Prefix)
		if err != nil {
			return err
		}
		updates <- update{desired: d, event: "static"}
		close(srcDone)
	} else {
		// The DHCPv6 socket needs the device: wait for it (a PPPoE or
		// VLAN device may come up after the agent). Read it again now
		// that the watch runs, so that a device created in between is
		// not missed.
		if w, err := a.kernel.refreshWAN(); err == nil {
			a.wan = w
		}
		for !a.wan.Present {
			a.log.Info("waiting for the WAN device", "wan", a.cfg.WAN)
			select {
			case ev := <-links:
				a.handleLink(ctx, ev)
			case <-ctx.Done():
				a.stop()
				return nil
			}
		}
		client, err := provision.NewClient(provision.ClientConfig{
			Interface: a.cfg.WAN, StateDir: a.cfg.StateDir, Logger: a.log, ReleaseOnStop: a.cfg.ReleaseOnStop,
			ClientID: a.cfg.DHCPv6.ClientID, IAID: a.cfg.DHCPv6.IAID, VendorClass: a.cfg.DHCPv6.VendorClass,
			UserClass: a.cfg.DHCPv6.UserClass, RequestOptions: a.cfg.DHCPv6.RequestOptions,
		})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.dhcp = client
		a.board.mu.Lock()
		a.board.dhcp = client.Stats
		a.board.mu.Unlock()
		go func() {
			defer client.Close()
			srcDone <- client.Run(srcCtx, func(ev provision.Event) { a.leaseEvent(srcCtx, updates, ev) })
		}()
	}
	var srcErr error
	for running := true; running; {
		select {
		case u := <-updates:
			a.handle(ctx, u, false)
		case ev := <-links:
			a.handleLink(ctx, ev)
		case <-hup:
			a.log.Info("SIGHUP: re-applying")
			a.board.event("SIGHUP: re-applied")
			if a.want != nil {
				a.handle(ctx, update{desired: a.want, lease: a.lease, event: "reapply"}, true)
			}
		case <-usr1:
			if a.dhcp != nil {
				a.log.Info("SIGUSR1: rebinding")
				a.board.event("SIGUSR1: rebind")
				a.dhcp.LinkUp()
			}
		case err, ok := <-srcDone:
			if ok && err != nil && ctx.Err() == nil {
				srcErr = err
				running = false
			}
			srcDone = nil
		case <-ctx.Done():
			running = false
		}
	}
	cancelSrc()
	if srcDone != nil {
		<-srcDone // the client sends its Release before we tear down
	}
	// Drain what the source sent while stopping (e.g. Released).
	for len(updates) > 0 {
		<-updates
	}
	a.stop()
	return srcErr
}

// leaseEvent turns a DHCPv6 lease event into an update.
func (a *Agent) leaseEvent(ctx context.Context, updates chan<- update, ev provision.Event) {
	u := update{event: ev.Kind.String(), lease: ev.Lease}
	switch ev.Kind {
	case provision.Expired, provision.Released:
		u.desired = nil
	default:
		u.desired = a.desiredFrom(ev.Lease)
	}
	select {
	case updates <- u:
	case <-ctx.Done():
	}
}

// desiredFrom derives the binding from a lease (or from the static domain
// with the lease's prefix); nil when there is none, with the reason
// logged and in the status.
func (a *Agent) desiredFrom(l *provision.Lease) *Desired {
	domains := l.Domains
	if a.cfg.Static != nil {
		domains = []mapt.Domain{a.cfg.Static.Domain}
	}
	if len(domains) == 0 {
		why := "no MAP-T domain in the lease"
		if l.Selection != "" {
			why = l.Selection
		}
		a.log.Warn("no MAP-T binding from the lease", "prefix", l.Prefix, "reason", why)
		a.board.event("no binding: %s", why)
		return nil
	}
	d, err := Derive(domains, l.Prefix)
	if err != nil {
		a.log.Error("no MAP-T binding from the lease", "prefix", l.Prefix, "err", err)
		a.board.event("no binding: %v", err)
		return nil
	}
	return d
}

// leaseStatus is the status's view of a lease.
func leaseStatus(l *provision.Lease) *LeaseStatus {
	ls := &LeaseStatus{
		Prefix: l.Prefix.String(), Obtained: l.Obtained.UTC(), Renew: l.RenewAt().UTC(), Rebind: l.RebindAt().UTC(),
		Expires: l.Expires().UTC(), Preferred: l.Preferred.String(), Valid: l.Valid.String(), Ignored: l.Ignored,
		ServerID: fmt.Sprintf("%x", l.ServerID), Softwire: l.Mechanism, S46Priority: l.S46Priority, Selection: l.Selection,
		DNS: l.DNS, Search: l.Search, NTP: l.NTP, IgnoredOptions: l.IgnoredOptions,
	}
	if l.ServerAddr.IsValid() {
		ls.Server = l.ServerAddr.String()
	}
	return ls
}

// withdrawal reports whether an event ends the lease.
func withdrawal(event string) bool {
	return event == "expired" || event == "released" || event == "stopped"
}

// handle applies an update when it changes anything, and runs the hook
// for every lease event (a renewal changes nothing in the kernel but the
// lifetimes netifd must know).
func (a *Agent) handle(ctx context.Context, u update, force bool) {
	hadLease := a.lease != nil
	switch {
	case u.lease != nil && withdrawal(u.event):
		a.lease, a.prefix = nil, netip.Prefix{}
		a.board.update(func(s *Status) { s.Lease = nil })
	case u.lease != nil:
		a.lease, a.prefix = u.lease, u.lease.Prefix
		ls := leaseStatus(u.lease)
		a.board.update(func(s *Status) { s.Lease = ls })
	case u.desired != nil:
		a.prefix = u.desired.Binding.EndUserPrefix
	}
	a.want = u.desired
	if u.desired.Equal(a.applied) && !force {
		a.log.Debug("lease event changes nothing in the kernel", "event", u.event)
		// The hook hears of every lease event, and of the end of a
		// lease it was told of (the LAN's prefix goes).
		if u.lease != nil && (!withdrawal(u.event) || hadLease) {
			a.runHook(ctx, u.event)
		}
		return
	}
	if u.desired == nil {
		a.withdraw(ctx, u.event)
		return
	}
	if err := a.apply(u.desired, force, u.event); err != nil {
		// The old state stays as it was where apply could keep it; a
		// broken configuration never replaces a working one half-way.
		return
	}
	a.runHook(ctx, u.event)
}

// apply makes the kernel match d and records it; errors are logged and
// put in the status.
func (a *Agent) apply(d *Desired, force bool, event string) error {
	start := time.Now()
	if err := a.kernel.apply(d, a.applied, force); err != nil {
		a.log.Error("apply failed", "event", event, "err", err)
		a.board.event("%s: apply failed: %v", event, err)
		return err
	}
	b := d.Binding
	a.log.Info("binding applied", "event", event, "ipv4", b.IPv4, "psid", b.PSID(), "ports", b.PortSet.String(),
		"map_address", b.MAPAddress, "dmr", d.DMR, "fmrs", len(d.FMRs), "uplink_mtu", a.kernel.uplinkMTU(),
		"took", time.Since(start).Round(time.Microsecond))
	a.applied = d
	a.board.update(func(s *Status) {
		s.State, s.Since = "bound", time.Now().UTC()
		j := b.JSON(d.DMR)
		s.Binding = &j
		s.FMRs = s.FMRs[:0]
		for _, r := range d.FMRs {
			s.FMRs = append(s.FMRs, r.String())
		}
		s.Link = a.linkStatus()
	})
	a.board.event("%s: %s psid %d ports %s", event, b.IPv4, b.PSID(), b.PortSet)
	return nil
}

func (a *Agent) withdraw(ctx context.Context, event string) {
	if a.applied == nil {
		return
	}
	if err := a.kernel.withdraw(a.applied); err != nil {
		a.log.Error("withdraw failed", "event", event, "err", err)
	}
	a.log.Info("IPv4 service withdrawn", "event", event, "ipv4", a.applied.Binding.IPv4)
	a.board.event("%s: IPv4 service withdrawn", event)
	a.applied = nil
	a.board.update(func(s *Status) { s.State, s.Since, s.Binding, s.FMRs = event, time.Now().UTC(), nil, nil })
	a.runHook(ctx, event)
}

// runHook runs the hook with what is in force now.
func (a *Agent) runHook(ctx context.Context, event string) {
	h := hookInfo{event: event, desired: a.applied, prefix: a.prefix, lease: a.lease,
		wan: a.cfg.WAN, uplink: a.cfg.Uplink, now: time.Now()}
	if a.applied != nil {
		h.uplinkMTU = a.kernel.uplinkMTU()
	}
	if withdrawal(event) {
		h.desired, h.lease, h.prefix = nil, nil, netip.Prefix{}
	}
	a.hook(ctx, h)
}

// stop ends the agent: the state stays for a restart, or goes.
func (a *Agent) stop() {
	if a.cfg.LeaveInPlace {
		a.log.Info("stopping, kernel state left in place for a restart")
		return
	}
	if err := a.kernel.withdraw(a.applied); err != nil {
		a.log.Error("cleanup failed", "err", err)
	}
	if a.applied != nil || a.lease != nil {
		a.applied, a.lease = nil, nil
		a.runHook(context.Background(), "stopped")
	}
	a.applied = nil
	a.log.Info("stopped, kernel state removed")
}

// linkKind is what happened to the WAN device.
type linkKind int

const (
	linkCarrierDown linkKind = iota + 1
	linkCarrierUp
	linkRemoved
	linkAdded // created (again) under the WAN's name: a new ifindex
	linkMTU
)

func (k linkKind) String() string {
	switch k {
	case linkCarrierDown:
		return "carrier-down"
	case linkCarrierUp:
		return "carrier-up"
	case linkRemoved:
		return "removed"
	case linkAdded:
		return "added"
	case linkMTU:
		return "mtu"
	}
	return fmt.Sprintf("link(%d)", int(k))
}

// linkEvent is one change of the WAN device (link_linux.go watches
// rtnetlink for them).
type linkEvent struct {
	kind  linkKind
	index int
	mtu   int
}

// handleLink follows the WAN device:
//
//   - carrier lost: nothing to undo; the lease stays valid for its
//     lifetimes and the translator on its hooks;
//   - carrier back: the CE may be on another link now; RFC 8415 s18.2.12
//     has the DHCPv6 client Rebind at once (provision.Client.LinkUp);
//   - device removed: its TC hooks went with it; the translator is
//     dropped, uplink and NAT stay for its return;
//   - device created again under the same name (PPPoE or VLAN reconnect,
//     driver reload): the translator is attached to the new ifindex, the
//     DHCPv6 socket is reopened on it and the client Rebinds;
//   - MTU changed: the uplink's MTU, the MSS clamp and the translator's
//     too-big limit follow (a forced re-apply).
func (a *Agent) handleLink(ctx context.Context, ev linkEvent) {
	if w, err := a.kernel.refreshWAN(); err == nil {
		a.wan = w
	} else {
		a.log.Warn("read the WAN device", "err", err)
	}
	defer a.board.update(func(s *Status) { s.Link = a.linkStatus() })
	switch ev.kind {
	case linkCarrierDown:
		a.log.Warn("WAN lost carrier", "wan", a.cfg.WAN)
		a.board.event("wan %s: carrier lost", a.cfg.WAN)
	case linkCarrierUp:
		a.log.Info("WAN carrier back: rebinding", "wan", a.cfg.WAN)
		a.board.event("wan %s: carrier back", a.cfg.WAN)
		if a.dhcp != nil {
			a.dhcp.LinkUp()
		}
	case linkRemoved:
		a.log.Warn("WAN device removed", "wan", a.cfg.WAN)
		a.board.event("wan %s: device removed", a.cfg.WAN)
		if err := a.kernel.detach(); err != nil {
			a.log.Warn("detach the translator", "err", err)
		}
	case linkAdded:
		a.log.Info("WAN device (re)created", "wan", a.cfg.WAN, "ifindex", ev.index, "mtu", ev.mtu)
		a.board.event("wan %s: device created, ifindex %d", a.cfg.WAN, ev.index)
		if a.want != nil {
			if err := a.apply(a.want, true, "relink"); err == nil {
				a.runHook(ctx, "relink")
			}
		}
		if a.dhcp != nil {
			if err := a.dhcp.Reopen(); err != nil {
				a.log.Error("reopen the DHCPv6 socket", "err", err)
				a.board.event("wan %s: reopen the DHCPv6 socket: %v", a.cfg.WAN, err)
			}
		}
	case linkMTU:
		a.log.Info("WAN MTU changed", "wan", a.cfg.WAN, "mtu", ev.mtu, "uplink_mtu", a.kernel.uplinkMTU())
		a.board.event("wan %s: mtu %d, uplink mtu %d", a.cfg.WAN, ev.mtu, a.kernel.uplinkMTU())
		if a.want != nil {
			if err := a.apply(a.want, true, "mtu"); err == nil {
				a.runHook(ctx, "mtu")
			}
		}
	}
}
