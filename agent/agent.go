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
	AttachMode     string // "" (auto: TCX, else clsact), "tcx" or "clsact"
	// Static, when set, replaces DHCPv6 S46 provisioning: the domain, and
	// the end-user prefix (or, when Prefix is not valid, the prefix from
	// DHCPv6 IA_PD).
	Static *Static
	Logger *slog.Logger
}

// Static is a domain configured by hand (ce-agent --domain / --rule).
type Static struct {
	Domain mapt.Domain
	Prefix netip.Prefix
}

// update is a new desired state from the lease or the static config.
type update struct {
	desired *Desired // nil: withdraw
	lease   *LeaseStatus
	event   string // bound, renewed, changed, expired, ...
}

// Agent runs the CE.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	kernel  kernel
	board   statusBoard
	applied *Desired
	prefix  netip.Prefix // the delegated prefix in force, for the hook
}

// kernel applies and removes the CE's kernel state (kernel_linux.go).
type kernel interface {
	// apply makes the kernel match d; old is what was applied before (nil
	// on the first apply). force re-applies every part.
	apply(d, old *Desired, force bool) error
	// withdraw removes everything for old (may be nil: remove leftovers).
	withdraw(old *Desired) error
	// counters returns the translator's counters and attach mode.
	counters() (map[string]uint64, string)
	close() error
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
	k, wan, err := newKernel(cfg)
	if err != nil {
		return err
	}
	cfg.WAN = wan
	a := &Agent{cfg: cfg, log: cfg.Logger, kernel: k}
	defer k.close()
	a.board.s = Status{State: "waiting", WAN: wan, Uplink: cfg.Uplink, Source: "dhcpv6", Since: time.Now().UTC()}
	if cfg.Static != nil {
		a.board.s.Source = "static"
	}
	a.board.counters = k.counters
	stopStatus, err := serveStatus(ctx, cfg.StatusSocket, &a.board)
	if err != nil {
		return err
	}
	defer stopStatus()
	return a.loop(ctx)
}

func (a *Agent) loop(ctx context.Context) error {
	updates := make(chan update, 4)
	srcCtx, cancelSrc := context.WithCancel(ctx)
	srcDone := make(chan error, 1)
	if a.cfg.Static != nil && a.cfg.Static.Prefix.IsValid() {
		d, err := Derive([]mapt.Domain{a.cfg.Static.Domain}, a.cfg.Static.Prefix)
		if err != nil {
			cancelSrc()
			return err
		}
		updates <- update{desired: d, event: "static"}
		close(srcDone)
	} else {
		client, err := provision.NewClient(provision.ClientConfig{
			Interface: a.cfg.WAN, StateDir: a.cfg.StateDir, Logger: a.log, ReleaseOnStop: a.cfg.ReleaseOnStop,
		})
		if err != nil {
			cancelSrc()
			return fmt.Errorf("agent: %w", err)
		}
		go func() {
			defer client.Close()
			srcDone <- client.Run(srcCtx, func(ev provision.Event) { a.leaseEvent(srcCtx, updates, ev) })
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var srcErr error
	for running := true; running; {
		select {
		case u := <-updates:
			a.handle(ctx, u, false)
		case <-hup:
			a.log.Info("SIGHUP: re-applying")
			a.board.event("SIGHUP: re-applied")
			if a.applied != nil {
				a.handle(ctx, update{desired: a.applied, event: "reapply"}, true)
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
	u := update{event: ev.Kind.String()}
	if ev.Lease != nil {
		l := ev.Lease
		u.lease = &LeaseStatus{
			Prefix: l.Prefix.String(), Obtained: l.Obtained.UTC(), Renew: l.RenewAt().UTC(), Rebind: l.RebindAt().UTC(),
			Expires: l.Expires().UTC(), Preferred: l.Preferred.String(), Valid: l.Valid.String(), Ignored: l.Ignored,
			ServerID: fmt.Sprintf("%x", l.ServerID),
		}
		if l.ServerAddr.IsValid() {
			u.lease.Server = l.ServerAddr.String()
		}
		for _, why := range l.Ignored {
			a.log.Warn("S46 container ignored", "reason", why)
		}
	}
	switch ev.Kind {
	case provision.Expired, provision.Released:
		u.desired = nil
	default:
		domains := ev.Lease.Domains
		prefix := ev.Lease.Prefix
		if a.cfg.Static != nil {
			domains = []mapt.Domain{a.cfg.Static.Domain}
		}
		d, err := Derive(domains, prefix)
		if err != nil {
			a.log.Error("no MAP-T binding from the lease", "prefix", prefix, "err", err)
			a.board.event("%s: %v", ev.Kind, err)
			u.desired = nil
		} else {
			u.desired = d
		}
	}
	select {
	case updates <- u:
	case <-ctx.Done():
	}
}

// handle applies an update when it changes anything.
func (a *Agent) handle(ctx context.Context, u update, force bool) {
	if u.lease != nil || u.desired == nil {
		a.board.update(func(s *Status) { s.Lease = u.lease })
	}
	switch {
	case u.lease != nil && (u.event == "expired" || u.event == "released"):
		a.prefix = netip.Prefix{}
	case u.lease != nil:
		a.prefix, _ = netip.ParsePrefix(u.lease.Prefix)
	case u.desired != nil:
		a.prefix = u.desired.Binding.EndUserPrefix
	}
	if u.desired.Equal(a.applied) && !force {
		a.log.Debug("lease event changes nothing", "event", u.event)
		return
	}
	if u.desired == nil {
		if a.applied == nil && u.lease != nil && u.event != "expired" && u.event != "released" {
			// A lease without a usable MAP-T binding: no IPv4, but the
			// hook still gets the prefix for the LAN.
			runHook(ctx, a.log, a.cfg.Hook, u.event, nil, a.prefix, a.cfg.WAN, a.cfg.Uplink)
			return
		}
		a.withdraw(ctx, u.event)
		return
	}
	start := time.Now()
	if err := a.kernel.apply(u.desired, a.applied, force); err != nil {
		// The old state stays as it was where apply could keep it; a
		// broken configuration never replaces a working one half-way.
		a.log.Error("apply failed", "event", u.event, "err", err)
		a.board.event("%s: apply failed: %v", u.event, err)
		return
	}
	d := u.desired
	b := d.Binding
	a.log.Info("binding applied", "event", u.event, "ipv4", b.IPv4, "psid", b.PSID(), "ports", b.PortSet.String(),
		"map_address", b.MAPAddress, "dmr", d.DMR, "fmrs", len(d.FMRs), "took", time.Since(start).Round(time.Microsecond))
	a.applied = d
	a.board.update(func(s *Status) {
		s.State, s.Since = "bound", time.Now().UTC()
		j := b.JSON(d.DMR)
		s.Binding = &j
		s.FMRs = s.FMRs[:0]
		for _, r := range d.FMRs {
			s.FMRs = append(s.FMRs, r.String())
		}
	})
	a.board.event("%s: %s psid %d ports %s", u.event, b.IPv4, b.PSID(), b.PortSet)
	runHook(ctx, a.log, a.cfg.Hook, u.event, d, a.prefix, a.cfg.WAN, a.cfg.Uplink)
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
	runHook(ctx, a.log, a.cfg.Hook, event, nil, a.prefix, a.cfg.WAN, a.cfg.Uplink)
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
	if a.applied != nil {
		runHook(context.Background(), a.log, a.cfg.Hook, "stopped", nil, netip.Prefix{}, a.cfg.WAN, a.cfg.Uplink)
	}
	a.applied = nil
	a.log.Info("stopped, kernel state removed")
}
