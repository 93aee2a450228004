package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/domainfile"
)

// announceProto is the routing protocol number of the BR's announcement
// routes (see health.announce), so that it removes only its own. Routing
// daemons learn routes of any protocol but their own and the kernel's:
// BIRD's kernel protocol with learn, FRR's import-table.
const announceProto = netlink.RouteProtocol(77)

// health is the BR's judgement of itself, checked every
// anycast.check-interval: healthy while every translator is attached to
// its hooks in the kernel (not merely loaded: the kernel is asked), both
// interfaces and every local device are up with carrier, forwarding is
// on, the BPF counters can be read, the anycast.require-routes addresses
// are routed out of the right interface, and the BR is not stopping.
//
// It is served on /healthz (200 or 503, with the reasons) and as metrics.
// With br.anycast, health is also what the routing daemon sees: while
// healthy, the BR routes each domain's DMR and each rule's IPv4 prefix
// through its local device (maptbrN) in the anycast table; when not, it
// removes them. The daemon announces what it learns from that table, so
// an unhealthy BR is withdrawn within one check interval plus the
// daemon's reaction to a netlink event. A BR that dies, SIGKILL included,
// withdraws too: its TUN devices close with the process and the kernel
// removes every route through them.
type health struct {
	r     *Relay
	log   *slog.Logger
	cfg   domainfile.Anycast
	v6dev string
	v4dev string

	syncMu sync.Mutex // one check or announcement at a time
	// nl asks the kernel to filter route dumps (strict checking), so
	// listing the anycast table costs that table, not a full BGP table.
	nl *netlink.Handle

	mu        sync.Mutex
	problems  []string
	attached  map[string]bool // by domain label
	announced int
	checked   bool
	draining  bool
	ids       map[*ebpf.Program]ebpf.ProgramID

	want       map[netip.Prefix]int // see wanted
	wantGen    uint64
	wantGroups int
}

func newHealth(r *Relay, f *domainfile.File, log *slog.Logger) *health {
	cfg := f.BR.Anycast
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = domainfile.DefaultCheckInterval
	}
	h := &health{r: r, log: log, cfg: cfg, v6dev: f.BR.IPv6Interface, v4dev: f.BR.IPv4Interface,
		attached: map[string]bool{}, ids: map[*ebpf.Program]ebpf.ProgramID{}}
	if cfg.Table != 0 {
		nlh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err == nil && nlh.SetStrictCheck(true) == nil {
			h.nl = nlh
		} else {
			if nlh != nil {
				nlh.Close()
			}
			log.Warn("anycast: kernel-side route dump filtering unavailable; listing whole routing tables", "err", err)
			h.nl = &netlink.Handle{}
		}
	}
	return h
}

// start checks now and then every interval until the returned stop is
// called.
func (h *health) start() (stop func()) {
	h.check()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(h.cfg.CheckInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				h.check()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		if h.nl != nil {
			h.nl.Close()
		}
	}
}

// drain is the graceful stop: withdraw the announcements, then keep
// translating for anycast.drain while the routers move the traffic to the
// other BRs, so that a planned stop loses nothing.
func (h *health) drain() {
	h.mu.Lock()
	h.draining = true
	had := h.announced
	h.mu.Unlock()
	h.check()
	if h.cfg.Table != 0 && had > 0 {
		h.log.Info("anycast: withdrawn, draining", "table", h.cfg.Table, "drain", h.cfg.Drain)
		time.Sleep(h.cfg.Drain)
	}
}

// check runs the checks and puts the announcements in line with them.
func (h *health) check() {
	h.syncMu.Lock()
	defer h.syncMu.Unlock()
	groups, labels := h.r.snapshotGroups()
	want := h.wanted(groups)
	problems, attached := h.examine(groups, labels)
	h.mu.Lock()
	if h.draining {
		problems = append(problems, "stopping")
	}
	was, first := len(h.problems) == 0, !h.checked
	h.mu.Unlock()
	announced := 0
	if h.cfg.Table != 0 {
		var err error
		if len(problems) > 0 {
			want = nil
		}
		announced, err = h.announce(want)
		if err != nil {
			problems = append(problems, fmt.Sprintf("anycast: %v", err))
		}
	}
	h.mu.Lock()
	h.problems, h.attached, h.announced, h.checked = problems, attached, announced, true
	h.mu.Unlock()
	switch now := len(problems) == 0; {
	case now && (!was || first):
		h.log.Info("healthy", "announced", announced)
	case !now && (was || first):
		h.log.Warn("unhealthy", "problems", strings.Join(problems, "; "), "announced", announced)
	}
}

// snapshotGroups copies the translators and their metric labels.
func (r *Relay) snapshotGroups() ([]*group, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	labels := make([]string, len(r.groups))
	for i, g := range r.groups {
		labels[i] = domainLabel(r.file, g.xl.Config().DMR)
	}
	return slices.Clone(r.groups), labels
}

// wanted is what to announce: each DMR and each rule's IPv4 prefix,
// aggregated (a thousand 1:1 rules of a /24 are one /24), through the
// group's local device. It is worked out again only after a reload.
func (h *health) wanted(groups []*group) map[netip.Prefix]int {
	gen := h.r.state.snapshot().ok
	if h.want != nil && h.wantGen == gen && len(groups) == h.wantGroups {
		return h.want
	}
	want := map[netip.Prefix]int{}
	for _, g := range groups {
		cfg := g.xl.Config()
		ps := []netip.Prefix{cfg.DMR}
		for _, rule := range cfg.FMRs {
			ps = append(ps, rule.IPv4Prefix)
		}
		for _, p := range aggregate(ps) {
			if _, dup := want[p]; !dup {
				want[p] = g.local.index
			}
		}
	}
	h.want, h.wantGen, h.wantGroups = want, gen, len(groups)
	return want
}

// aggregate returns the fewest prefixes that cover exactly the given
// ones: duplicates and prefixes inside others go, and two halves of a
// prefix become that prefix, until nothing changes.
func aggregate(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	for i, p := range ps {
		ps[i] = p.Masked()
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	for changed := true; changed; {
		changed = false
		var next []netip.Prefix
		for i := 0; i < len(out); i++ {
			p := out[i]
			if i+1 < len(out) && p.Bits() > 0 && out[i+1].Bits() == p.Bits() {
				parent := netip.PrefixFrom(p.Addr(), p.Bits()-1).Masked()
				if parent.Addr() == p.Addr() && parent.Contains(out[i+1].Addr()) {
					next = append(next, parent)
					i++
					changed = true
					continue
				}
			}
			next = append(next, p)
		}
		out = next
	}
	return out
}

// domainLabel names the domains a translator serves: those with its DMR,
// comma-separated in file order.
func domainLabel(f *domainfile.File, dmr netip.Prefix) string {
	var names []string
	if f != nil {
		for _, d := range f.Domains {
			if d.DMR == dmr {
				names = append(names, d.Name)
			}
		}
	}
	return strings.Join(names, ",")
}

// examine asks the kernel about everything the BR needs.
func (h *health) examine(groups []*group, labels []string) ([]string, map[string]bool) {
	var problems []string
	attached := map[string]bool{}
	links := map[string]netlink.Link{}
	for _, name := range []string{h.v6dev, h.v4dev} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("interface %s: %v", name, err))
			continue
		}
		links[name] = l
		if err := linkUp(l); err != nil {
			problems = append(problems, fmt.Sprintf("interface %s: %v", name, err))
		}
	}
	for i, g := range groups {
		err := h.hooked(g, links)
		attached[labels[i]] = err == nil
		if err != nil {
			problems = append(problems, fmt.Sprintf("domain %s: translator not attached: %v", labels[i], err))
		}
		if l, err := netlink.LinkByIndex(g.local.index); err != nil {
			problems = append(problems, fmt.Sprintf("domain %s: local device %s: %v", labels[i], g.local.name, err))
		} else if err := linkUp(l); err != nil {
			problems = append(problems, fmt.Sprintf("domain %s: local device %s: %v", labels[i], g.local.name, err))
		}
	}
	if len(groups) == 0 {
		problems = append(problems, "no translator")
	}
	for _, a := range h.cfg.RequireRoutes {
		dev := h.v6dev
		if a.Is4() {
			dev = h.v4dev
		}
		if err := routedOut(a, links[dev]); err != nil {
			problems = append(problems, fmt.Sprintf("no route to %s out of %s: %v", a, dev, err))
		}
	}
	for _, key := range []string{"net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"} {
		if b, err := os.ReadFile("/proc/sys/" + key); err != nil || strings.TrimSpace(string(b)) != "1" {
			problems = append(problems, fmt.Sprintf("%s is off", strings.ReplaceAll(key, "/", ".")))
		}
	}
	if _, err := h.r.counters(); err != nil {
		problems = append(problems, fmt.Sprintf("counters: %v", err))
	}
	return problems, attached
}

// routedOut checks that the kernel sends packets for a out of l.
func routedOut(a netip.Addr, l netlink.Link) error {
	if l == nil {
		return errors.New("no interface")
	}
	routes, err := netlink.RouteGet(a.AsSlice())
	if err != nil {
		return err
	}
	if len(routes) == 0 {
		return errors.New("no route")
	}
	if routes[0].LinkIndex != l.Attrs().Index {
		if other, err := netlink.LinkByIndex(routes[0].LinkIndex); err == nil {
			return fmt.Errorf("routed out of %s", other.Attrs().Name)
		}
		return fmt.Errorf("routed out of interface %d", routes[0].LinkIndex)
	}
	return nil
}

// linkUp wants the device administratively up and with carrier.
func linkUp(l netlink.Link) error {
	a := l.Attrs()
	switch {
	case a.Flags&net.FlagUp == 0:
		return errors.New("down")
	case a.RawFlags&unix.IFF_LOWER_UP == 0:
		return errors.New("no carrier")
	}
	return nil
}

// hooked checks that the kernel runs the group's programs on the
// interfaces' ingress hooks: the program IDs are in the TCX chain, or in a
// cls_bpf filter of the clsact qdisc.
func (h *health) hooked(g *group, links map[string]netlink.Link) error {
	mode := g.xl.AttachMode()
	if mode == dataplane.AttachAuto {
		return errors.New("detached")
	}
	for _, hook := range []struct {
		prog *ebpf.Program
		dev  string
	}{{g.xl.Prog6to4(), h.v6dev}, {g.xl.Prog4to6(), h.v4dev}} {
		l, ok := links[hook.dev]
		if !ok {
			return fmt.Errorf("%s missing", hook.dev)
		}
		id, err := h.progID(hook.prog)
		if err != nil {
			return err
		}
		var ids []ebpf.ProgramID
		if mode == dataplane.AttachTCX {
			res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return fmt.Errorf("%s: %w", hook.dev, err)
			}
			for _, p := range res.Programs {
				ids = append(ids, p.ID)
			}
		} else {
			filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
			if err != nil {
				return fmt.Errorf("%s: %w", hook.dev, err)
			}
			for _, f := range filters {
				if bf, ok := f.(*netlink.BpfFilter); ok {
					ids = append(ids, ebpf.ProgramID(bf.Id))
				}
			}
		}
		if !slices.Contains(ids, id) {
			return fmt.Errorf("program %d is not on %s ingress (%s)", id, hook.dev, mode)
		}
	}
	return nil
}

func (h *health) progID(p *ebpf.Program) (ebpf.ProgramID, error) {
	h.mu.Lock()
	id, ok := h.ids[p]
	h.mu.Unlock()
	if ok {
		return id, nil
	}
	info, err := p.Info()
	if err != nil {
		return 0, err
	}
	if id, ok = info.ID(); !ok {
		return 0, errors.New("the kernel gives no program IDs")
	}
	h.mu.Lock()
	h.ids[p] = id
	h.mu.Unlock()
	return id, nil
}

// announce makes the BR's routes in the anycast table exactly want (new
// ones first, then stale ones go) and returns how many are there.
func (h *health) announce(want map[netip.Prefix]int) (int, error) {
	table := int(h.cfg.Table)
	var have []netlink.Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.nl.RouteListFiltered(family, &netlink.Route{Table: table, Protocol: announceProto}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if errors.Is(err, unix.ENOENT) {
			continue // a filtered dump of a table that does not exist (yet)
		}
		if err != nil {
			return 0, fmt.Errorf("list table %d: %w", table, err)
		}
		have = append(have, rs...)
	}
	present := map[netip.Prefix]bool{}
	var errs []error
	for _, rt := range have {
		p := prefixOf(rt.Dst)
		if idx, ok := want[p]; ok && idx == rt.LinkIndex {
			present[p] = true
			continue
		}
		if err := h.nl.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
		}
	}
	n := len(present)
	for p, idx := range want {
		if present[p] {
			continue
		}
		rt := &netlink.Route{
			LinkIndex: idx, Table: table, Protocol: announceProto, Scope: netlink.SCOPE_LINK,
			Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		}
		if err := h.nl.RouteReplace(rt); err != nil {
			errs = append(errs, fmt.Errorf("announce %s: %w", p, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, _ := netip.AddrFromSlice(n.IP)
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits)
}

// healthSnapshot is the last check.
type healthSnapshot struct {
	problems  []string
	attached  map[string]bool
	announced int
	anycast   bool
}

func (h *health) snapshot() healthSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return healthSnapshot{slices.Clone(h.problems), h.attached, h.announced, h.cfg.Table != 0}
}

// ServeHTTP is /healthz: 200 "ok" when healthy, 503 "unhealthy" and one
// reason a line when not, for load balancers, monitoring and routing
// daemons' health checks that poll HTTP.
func (h *health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s := h.snapshot()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(s.problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "unhealthy")
		for _, p := range s.problems {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, "ok")
	if s.anycast {
		fmt.Fprintf(w, "announced %d routes in table %d\n", s.announced, h.cfg.Table)
	}
}
