package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/dataplane/savi"
	"github.com/mapt-go/mapt/domainfile"
)

// Options configure a relay.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	// AttachMode forces TCX or clsact; empty picks TCX where available.
	AttachMode dataplane.AttachMode
	// PinRoot is where the translators are pinned, so that they keep
	// forwarding while the BR is away (killed, restarting, upgrading)
	// and the next start adopts them: dataplane.DefaultPinRoot when
	// empty, "-" for none.
	PinRoot string
	// LeaveInPlace makes the stop at the end of ctx leave the
	// translators, their local devices and routes and the anycast
	// announcements in place for a restart, which adopts them; without
	// it the stop removes everything (SIGUSR2 leaves in place whatever
	// this says).
	LeaveInPlace bool
}

// debounce merges the burst of events an editor's save produces.
const debounce = 200 * time.Millisecond

// Relay is a running BR.
type Relay struct {
	opts  Options
	log   *slog.Logger
	state reloadState

	mu     sync.Mutex
	file   *domainfile.File
	groups []*group
	savi   *savi.Check

	// health checks the BR and, with br.anycast, announces it (health_linux.go).
	health *health
}

// group is the translator for the domains that share one DMR, and the
// local device its own ICMP errors go through. A translator has one DMR;
// on TCX several chain on the same hooks, each passing what is not its
// own (a destination outside its DMR, an IPv4 destination outside its
// rules).
type group struct {
	xl    *dataplane.Translator
	local *localRoutes
}

// Run loads the file, attaches the BR translator to the file's interfaces
// and serves until ctx ends; then it detaches everything.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Relay{opts: opts, log: log}
	f, err := domainfile.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	cfgs, err := translatorConfigs(f)
	if err != nil {
		return err
	}
	if f.BR.IPv6Interface == "" || f.BR.IPv4Interface == "" {
		return fmt.Errorf("relay: %s: br.ipv6-interface and br.ipv4-interface are required to run", f.Path)
	}
	if err := prepareHost(f, log); err != nil {
		return err
	}
	release, err := claimDevices(f)
	if err != nil {
		return err
	}
	defer release()
	// leave is read by the deferred stops: with LeaveInPlace (or after
	// SIGUSR2) nothing this run set up is removed when it ends, not even
	// after a failed start, which would turn a failed restart into an
	// outage.
	leave := opts.LeaveInPlace
	pins := pinRoot(opts.PinRoot, log)
	rules := 0
	for i, cfg := range cfgs {
		g, err := startGroup(cfg, i, f, opts.AttachMode, pins, log)
		if g != nil {
			defer func() { g.close(leave) }()
		}
		if err != nil {
			return err
		}
		if i > 0 && g.xl.AttachMode() != dataplane.AttachTCX {
			return fmt.Errorf("relay: %s: domains with %d different DMRs need TCX (Linux 6.6+) to chain their translators; %s offers %s",
				f.Path, len(cfgs), f.BR.IPv6Interface, g.xl.AttachMode())
		}
		r.groups = append(r.groups, g)
		rules += len(cfg.FMRs)
	}
	if f.BR.SourceCheck {
		check, err := savi.Load()
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		defer func() {
			if leave {
				check.Release()
			} else {
				check.Close()
			}
		}()
		pin := ""
		if pins != "" {
			pin = filepath.Join(pins, dataplane.SAVIPinName(f.BR.IPv6Interface))
		}
		if err := check.AttachPinned(f.BR.IPv6Interface, r.groups[0].xl.Prog6to4(), opts.AttachMode, pin); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		r.savi = check
		log.Info("source check on", "interface", f.BR.IPv6Interface)
	}
	r.file = f
	r.state.record(true, rules)
	log.Info("br running", "config", f.Path, "domains", len(f.Domains), "dmrs", len(cfgs), "rules", rules,
		"ipv6_interface", f.BR.IPv6Interface, "ipv4_interface", f.BR.IPv4Interface, "attach", r.groups[0].xl.AttachMode())

	r.health = newHealth(r, f, log)
	defer r.health.start()()

	stopMetrics, err := r.serveMetrics(f.BR.Metrics)
	if err != nil {
		return err
	}
	defer stopMetrics()

	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("relay: watch: %w", err)
	}
	// Closing the watcher waits for its reader; nothing waits for that.
	defer func() { go watcher.Close() }()
	// Watch the directory: editors and config managers replace the file
	// by rename, which a watch on the file itself would lose.
	dir := filepath.Dir(opts.ConfigPath)
	if err := watcher.Add(dir); err != nil {
		return fmt.Errorf("relay: watch %s: %w", dir, err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	base := filepath.Base(opts.ConfigPath)
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if leave {
				log.Info("br stopping, translators left in place for a restart")
				return nil
			}
			log.Info("br stopping")
			r.health.drain()
			return nil
		case <-usr2:
			leave = true
			log.Info("SIGUSR2: br stopping, translators left in place for a restart")
			return nil
		case ev, ok := <-watcher.Events:
			if !ok {
				return errors.New("relay: watcher closed")
			}
			if filepath.Base(ev.Name) == base && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				timer = time.After(debounce)
			}
		case err := <-watcher.Errors:
			log.Warn("watch error", "err", err)
		case <-timer:
			timer = nil
			r.Reload("file changed")
		case <-hup:
			r.Reload("SIGHUP")
		}
	}
}

// Reload reads the file again and swaps it in when it is valid; otherwise
// the running configuration stays and the reason is logged.
func (r *Relay) Reload(why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.reload()
	if err != nil {
		r.state.record(false, 0)
		r.log.Error("reload rejected, running configuration kept", "why", why, "err", err)
		return err
	}
	return nil
}

func (r *Relay) reload() error {
	f, err := domainfile.Load(r.opts.ConfigPath)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(f.BR, r.file.BR) {
		return fmt.Errorf("relay: %s: the br section changed; interfaces and the metrics address take effect on restart", f.Path)
	}
	cfgs, err := translatorConfigs(f)
	if err != nil {
		return err
	}
	if len(cfgs) != len(r.groups) {
		return fmt.Errorf("relay: %s: %d DMRs instead of %d: a new or removed DMR takes effect on restart", f.Path, len(cfgs), len(r.groups))
	}
	for i, cfg := range cfgs {
		if old := r.groups[i].xl.Config().DMR; cfg.DMR != old {
			return fmt.Errorf("relay: %s: DMR %s instead of %s: a changed DMR takes effect on restart", f.Path, cfg.DMR, old)
		}
	}
	start := time.Now()
	rules := 0
	for i, cfg := range cfgs {
		g := r.groups[i]
		// Update keeps the devices and MTU that Attach recorded.
		if err := g.xl.Update(cfg); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		if err := g.local.sync(cfg); err != nil {
			// The translator runs the new rules; only the BR's own ICMP
			// errors for a new prefix may be missing. Say so, keep going.
			r.log.Warn("reload: routes for the BR's own ICMP errors", "err", err)
		}
		rules += len(cfg.FMRs)
	}
	r.file = f
	r.state.record(true, rules)
	r.log.Info("reloaded", "config", f.Path, "domains", len(f.Domains), "rules", rules, "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// startGroup loads and attaches the translator for one DMR and its local
// device (maptbrN). With pins (the pin root), it adopts the translator an
// earlier run left in root/BRPinName(ipv6 side, i).
func startGroup(cfg dataplane.Config, i int, f *domainfile.File, mode dataplane.AttachMode, pins string, log *slog.Logger) (*group, error) {
	var xl *dataplane.Translator
	var err error
	if pins != "" {
		xl, err = dataplane.LoadPinned(cfg, filepath.Join(pins, dataplane.BRPinName(f.BR.IPv6Interface, i)))
	} else {
		xl, err = dataplane.Load(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("relay: dmr %s: %w", cfg.DMR, err)
	}
	if adoption, why := xl.Adoption(); adoption != "" {
		log.Info("translator pinned", "dmr", cfg.DMR, "dir", xl.PinDir(), "adoption", adoption, "why", why)
	}
	g := &group{xl: xl}
	if g.local, err = openLocal(fmt.Sprintf("%s%d", localDevicePrefix, i), f.BR.IPv6Interface, cfg.LowestIPv6MTU, pins != ""); err != nil {
		return g, err
	}
	if err := xl.AttachBR(f.BR.IPv6Interface, f.BR.IPv4Interface, g.local.name, mode); err != nil {
		return g, fmt.Errorf("relay: dmr %s: %w", cfg.DMR, err)
	}
	return g, g.local.sync(cfg)
}

// close removes the group, or with leave only lets go of it: the
// translator stays pinned on its hooks, the local device and its routes
// stay.
func (g *group) close(leave bool) {
	if leave {
		if g.local != nil {
			g.local.release()
		}
		g.xl.LeaveInPlace()
		return
	}
	// Each takes the kernel an RCU grace period or two (device
	// unregistration, TCX detach): in parallel, the stop takes one.
	var wg sync.WaitGroup
	if g.local != nil {
		wg.Add(1)
		go func() { defer wg.Done(); g.local.close() }()
	}
	g.xl.Close()
	wg.Wait()
}

// translatorConfigs turns a domain file into BR translator
// configurations, one per DMR in order of appearance: every rule of the
// domains that share a DMR forwards (RFC 7599 s8.4).
func translatorConfigs(f *domainfile.File) ([]dataplane.Config, error) {
	var out []dataplane.Config
	index := map[netip.Prefix]int{}
	for _, d := range f.Domains {
		i, ok := index[d.DMR]
		if !ok {
			i = len(out)
			index[d.DMR] = i
			out = append(out, dataplane.Config{Mode: dataplane.BR, DMR: d.DMR, LowestIPv6MTU: f.BR.LowestIPv6MTU, ICMPSource: icmpSource(f), ICMPRate: f.BR.ICMPRate, FastPath: f.BR.FastPath,
				TrafficClass: f.BR.TrafficClass, TOS: f.BR.TOS})
		}
		out[i].FMRs = append(out[i].FMRs, d.Rules...)
	}
	for i := range out {
		out[i].Capacity = max(1024, 2*len(out[i].FMRs))
	}
	return out, nil
}

// counters sums the translators' counters and adds the source check's
// (as savi_<reason>).
func (r *Relay) counters() (map[string]uint64, error) {
	c, err := r.sum((*dataplane.Translator).Counters)
	r.mu.Lock()
	check := r.savi
	r.mu.Unlock()
	if err != nil || check == nil {
		return c, err
	}
	sc, err := check.Counters()
	if err != nil {
		return c, err
	}
	for k, v := range sc {
		c["savi_"+k] = v
	}
	return c, nil
}

func (r *Relay) sum(read func(*dataplane.Translator) (map[string]uint64, error)) (map[string]uint64, error) {
	r.mu.Lock()
	groups := r.groups
	r.mu.Unlock()
	if len(groups) == 0 {
		return nil, errors.New("relay: not running")
	}
	out := map[string]uint64{}
	for _, g := range groups {
		c, err := read(g.xl)
		if err != nil {
			return nil, err
		}
		for k, v := range c {
			out[k] += v
		}
	}
	return out, nil
}

// serveMetrics serves /metrics on addr ("" for none).
func (r *Relay) serveMetrics(addr string) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	reg := newRegistry(r)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/healthz", r.health)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	r.log.Info("metrics", "address", l.Addr().String())
	// The stop closes every connection at once: a scrape cut short costs
	// nothing, and Shutdown would wait for connections that have not sent
	// their first request (a scraper's fresh keep-alive connection) for
	// 5 s, which made a stop take as long as its 2 s timeout.
	return func() { srv.Close() }, nil
}
