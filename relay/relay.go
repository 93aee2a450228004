package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
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
	// Ready, when set, is called once the translator is attached and the
	// metrics endpoint listens (tests use it).
	Ready func(metricsAddr string)
}

// debounce merges the burst of events an editor's save produces.
const debounce = 200 * time.Millisecond

// Relay is a running BR.
type Relay struct {
	opts  Options
	log   *slog.Logger
	state reloadState

	mu    sync.Mutex
	file  *domainfile.File
	xl    *dataplane.Translator
	local *localRoutes
	savi  *savi.Check
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
	cfg, err := translatorConfig(f)
	if err != nil {
		return err
	}
	if f.BR.IPv6Interface == "" || f.BR.IPv4Interface == "" {
		return fmt.Errorf("relay: %s: br.ipv6-interface and br.ipv4-interface are required to run", f.Path)
	}
	checkForwarding(log)
	xl, err := dataplane.Load(cfg)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer xl.Close()
	if err := xl.AttachBR(f.BR.IPv6Interface, f.BR.IPv4Interface, opts.AttachMode); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if f.BR.SourceCheck {
		check, err := savi.Load()
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		defer check.Close()
		if err := check.Attach(f.BR.IPv6Interface, xl.Prog6to4(), opts.AttachMode); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		r.savi = check
		log.Info("source check on", "interface", f.BR.IPv6Interface)
	}
	local, err := openLocal(xl, f.BR.IPv6Interface, opts.AttachMode)
	if err != nil {
		return err
	}
	defer local.close()
	if err := local.sync(cfg); err != nil {
		return err
	}
	r.file, r.xl, r.local = f, xl, local
	r.state.record(true, len(cfg.FMRs))
	log.Info("br running", "config", f.Path, "domains", len(f.Domains), "rules", len(cfg.FMRs),
		"ipv6_interface", f.BR.IPv6Interface, "ipv4_interface", f.BR.IPv4Interface, "attach", xl.AttachMode())

	metricsAddr, stopMetrics, err := r.serveMetrics(f.BR.Metrics)
	if err != nil {
		return err
	}
	defer stopMetrics()

	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("relay: watch: %w", err)
	}
	defer watcher.Close()
	// Watch the directory: editors and config managers replace the file
	// by rename, which a watch on the file itself would lose.
	dir := filepath.Dir(opts.ConfigPath)
	if err := watcher.Add(dir); err != nil {
		return fmt.Errorf("relay: watch %s: %w", dir, err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if opts.Ready != nil {
		opts.Ready(metricsAddr)
	}
	base := filepath.Base(opts.ConfigPath)
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			log.Info("br stopping")
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
	if f.BR != r.file.BR {
		return fmt.Errorf("relay: %s: the br section changed; interfaces and the metrics address take effect on restart", f.Path)
	}
	cfg, err := translatorConfig(f)
	if err != nil {
		return err
	}
	old := r.xl.Config()
	cfg.WANIfindex, cfg.UplinkIfindex, cfg.UplinkL3 = old.WANIfindex, old.UplinkIfindex, old.UplinkL3
	start := time.Now()
	if err := r.xl.Update(cfg); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if err := r.local.sync(cfg); err != nil {
		// The translator runs the new rules; only the BR's own ICMP
		// errors for a new prefix may be missing. Say so, keep going.
		r.log.Warn("reload: routes for the BR's own ICMP errors", "err", err)
	}
	r.file = f
	r.state.record(true, len(cfg.FMRs))
	r.log.Info("reloaded", "config", f.Path, "domains", len(f.Domains), "rules", len(cfg.FMRs), "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// translatorConfig turns a domain file into the BR translator's
// configuration: every rule of every domain forwards (RFC 7599 s8.4).
func translatorConfig(f *domainfile.File) (dataplane.Config, error) {
	cfg := dataplane.Config{Mode: dataplane.BR, DMR: f.Domains[0].DMR}
	for _, d := range f.Domains {
		if d.DMR != cfg.DMR {
			// One translator has one DMR; several BR instances (one per
			// DMR) serve such files.
			return dataplane.Config{}, fmt.Errorf("relay: %s: domains %q and %q have different DMRs (%s, %s): one br serves one DMR",
				f.Path, f.Domains[0].Name, d.Name, cfg.DMR, d.DMR)
		}
		cfg.FMRs = append(cfg.FMRs, d.Rules...)
	}
	cfg.Capacity = max(1024, 2*len(cfg.FMRs))
	return cfg, nil
}

// bytes returns the translator's byte counters.
func (r *Relay) bytes() (map[string]uint64, error) {
	r.mu.Lock()
	xl := r.xl
	r.mu.Unlock()
	if xl == nil {
		return nil, errors.New("relay: not running")
	}
	return xl.Bytes()
}

// counters merges the translator's counters and the source check's drops
// (as savi_<reason>).
func (r *Relay) counters() (map[string]uint64, error) {
	r.mu.Lock()
	xl, check := r.xl, r.savi
	r.mu.Unlock()
	if xl == nil {
		return nil, errors.New("relay: not running")
	}
	c, err := xl.Counters()
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

// serveMetrics serves /metrics on addr ("" for none) and returns the
// address it listens on.
func (r *Relay) serveMetrics(addr string) (string, func(), error) {
	if addr == "" {
		return "", func() {}, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(r))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("relay: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	r.log.Info("metrics", "address", l.Addr().String())
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// checkForwarding warns when the kernel will not forward what the
// translator hands it.
func checkForwarding(log *slog.Logger) {
	for _, key := range []string{"net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"} {
		b, err := os.ReadFile("/proc/sys/" + key)
		if err == nil && strings.TrimSpace(string(b)) != "1" {
			log.Warn("forwarding is off: translated packets will not be forwarded", "sysctl", strings.ReplaceAll(key, "/", "."))
		}
	}
}
