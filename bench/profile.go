package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Profile is where the CPU time went during one UDP run of a variant,
// from `perf record -e cpu-clock -a -g` over the whole machine (no
// hardware counters on these machines: cpu-clock samples the running
// task at 4 kHz on every core). The run is an extra one, after the
// measured repetitions, so that the figures are not taken under perf.
//
// veth hands every packet on in the sender's softirq, so the whole path
// (LAN, CE, switch, BR, server) runs in the sending process's context or,
// when the softirq is deferred, in ksoftirqd: that is the path's time.
// The receiving process's own time and everything else on the machine
// are kept apart.
type Profile struct {
	Variant string `json:"variant"`
	Figure  string `json:"figure"`
	// Packets is the number of datagrams the sender sent.
	Packets int64 `json:"packets"`
	// PathNS is the CPU time of the sending process and of ksoftirqd;
	// ReceiverNS the receiving process's; OtherNS every other task's
	// (other users of the machine); IdleNS the idle tasks'.
	PathNS     int64 `json:"path_ns"`
	ReceiverNS int64 `json:"receiver_ns"`
	OtherNS    int64 `json:"other_ns"`
	IdleNS     int64 `json:"idle_ns"`
	// Parts is PathNS by part (see Parts), self time.
	Parts map[string]int64 `json:"parts"`
	// Symbols are the path's symbols with the most self time, most
	// first.
	Symbols []Symbol `json:"symbols"`
	// Runs are the profiled runs merged here, in order: each one's
	// packets and path time.
	Runs []RunCost `json:"runs,omitempty"`
}

// RunCost is one profiled run's packets sent and path CPU time, and how
// much of that went to waking the receiver (the "wakeup" part).
type RunCost struct {
	Packets  int64 `json:"packets"`
	PathNS   int64 `json:"path_ns"`
	WakeupNS int64 `json:"wakeup_ns,omitempty"`
}

// perPacket is the run's path CPU time per packet, without the
// receiver's wake-ups if noWake; 0 without packets.
func (c RunCost) perPacket(noWake bool) float64 {
	if c.Packets <= 0 {
		return 0
	}
	ns := c.PathNS
	if noWake {
		ns -= c.WakeupNS
	}
	return float64(ns) / float64(c.Packets)
}

// Symbol is one function's self time on the path.
type Symbol struct {
	Name   string `json:"name"`
	Kernel bool   `json:"kernel,omitempty"`
	NS     int64  `json:"ns"`
}

// Part is a group of functions the path's time is split into: by the
// function a sample is in (match), or by one its call chain is under
// (under, which goes first; see perfParents).
type Part struct {
	Key, Title string
	match      func(sym string) bool
	under      func(parent string) bool
}

func hasPrefix(sym string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(sym, p) {
			return true
		}
	}
	return false
}

// Parts, in report order; a kernel sample belongs to the first whose
// under matches its parent, else to the first whose match matches its
// symbol, else to "kernel"; user-space time is "user".
var Parts = []Part{
	{"bpf-prog", "BPF programs", func(s string) bool { return hasPrefix(s, "bpf_prog_") }, nil},
	{"bpf-helpers", "BPF helpers, TC hooks", func(s string) bool {
		return !hasPrefix(s, "bpf_lsm_") && hasPrefix(s, "bpf_", "__bpf_", "___bpf_", "skb_do_redirect", "tcx_", "sch_handle_",
			"tcf_classify", "cls_bpf", "htab_", "__htab_", "trie_lookup", "array_map_", "percpu_array_")
	}, nil},
	{"nftables", "nftables rules", func(s string) bool { return hasPrefix(s, "nft_", "__nft_", "nf_tables_") }, nil},
	{"netfilter", "conntrack, NAT, hooks", func(s string) bool {
		return hasPrefix(s, "nf_", "__nf_", "ipv4_confirm", "ipv4_conntrack", "hash_conntrack", "l4proto_manip_pkt",
			"udp_manip_pkt", "tcp_manip_pkt", "icmp_manip_pkt", "resolve_normal_ct", "init_conntrack", "get_l4proto") ||
			strings.Contains(s, "conntrack")
	}, nil},
	{"qdisc", "qdisc", func(s string) bool {
		return hasPrefix(s, "pfifo", "fq_codel", "__qdisc", "qdisc_", "sch_direct_xmit", "dev_qdisc_enqueue", "__dev_xmit_skb", "net_tx_action")
	}, nil},
	{"tun", "TUN device", func(s string) bool { return hasPrefix(s, "tun_") }, nil},
	{"ipv6", "IPv6 stack", func(s string) bool {
		return hasPrefix(s, "ip6", "ipv6_", "__ip6", "fib6_", "rt6_", "icmp6", "icmpv6_", "ndisc_", "inet6_", "udpv6_", "__udp6", "udp6_")
	}, nil},
	// The BR's optional source check (br.source-check: neighbor, which
	// the lab turns on): savi_ingress and the FIB lookup it makes.
	{"savi", "BR source check", nil, func(p string) bool { return strings.HasSuffix(p, "_savi_ingress") }},
	{"wakeup", "receiver wake-ups", nil, func(p string) bool { return p == wakeParent }},
	{"kernel", "rest of the kernel", nil, nil},
	{"user", "user space", nil, nil},
}

// partOf names the part the time of a symbol under parent ("" for
// none of perfParents) belongs to.
func partOf(sym string, kernel bool, parent string) string {
	if !kernel {
		return "user"
	}
	for _, p := range Parts {
		if p.under != nil && parent != "" && p.under(parent) {
			return p.Key
		}
	}
	for _, p := range Parts {
		if p.match != nil && p.match(sym) {
			return p.Key
		}
	}
	return "kernel"
}

// wakeParent is the function under which the path wakes the receiving
// process: the UDP receive path calls it for each datagram it queues,
// and when the receiver sleeps in select it wakes it (try_to_wake_up,
// an IPI to the other core, with interrupts off, which cpu-clock
// charges to _raw_spin_unlock_irqrestore). The cost is the test's
// endpoints', not the router's: a router forwards to other machines.
// It is also the noisiest part: it hangs on whether, and how deeply, the
// receiver's core is asleep when a datagram comes (these guests
// halt-poll before they halt). Two runs on 2026-12-02 gave map-t c1 -> s
// 2119 and 1158 ns per datagram against plain's 1394 and 1367.
const wakeParent = "sock_def_readable"

// perfParents is the regular expression (POSIX extended) of the
// functions whose samples the parts' under sort out: wakeParent and the
// BR's source check program.
const perfParents = "^(" + wakeParent + "|bpf_prog_[0-9a-f]+_savi_ingress)$"

// perfArgs are perf report's arguments for the rows perfRow reads.
var perfArgs = []string{"--stdio", "--no-children", "-g", "none", "-p", perfParents,
	"--sort", "pid,dso,sym,parent", "-F", "period,sample,pid,dso,sym,parent", "-t", "|"}

// perfRow is one line of perf report with perfArgs: the time of one
// symbol in one task, under one of perfParents or not.
type perfRow struct {
	NS     int64 // sum of the cpu-clock periods: nanoseconds
	PID    int
	Comm   string
	Kernel bool
	Sym    string
	Parent string // the function of perfParents on the samples' call chain, or ""
}

// parsePerfReport reads perf report's separated output (see perfRow).
func parsePerfReport(out []byte) ([]perfRow, error) {
	var rows []perfRow
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "|", 6)
		if len(f) != 6 {
			return nil, fmt.Errorf("bench: perf report line %q: want 6 fields", line)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bench: perf report line %q: period: %w", line, err)
		}
		pidComm := strings.TrimSpace(f[2])
		pidStr, comm, ok := strings.Cut(pidComm, ":")
		if !ok {
			return nil, fmt.Errorf("bench: perf report line %q: pid %q", line, pidComm)
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil {
			return nil, fmt.Errorf("bench: perf report line %q: pid: %w", line, err)
		}
		sym := strings.TrimSpace(f[4])
		kernel := strings.HasPrefix(sym, "[k] ")
		if i := strings.Index(sym, "] "); strings.HasPrefix(sym, "[") && i > 0 {
			sym = sym[i+2:]
		}
		parent := strings.TrimSpace(f[5])
		if parent == "[other]" {
			parent = ""
		}
		rows = append(rows, perfRow{NS: ns, PID: pid, Comm: comm, Kernel: kernel, Sym: sym, Parent: parent})
	}
	return rows, sc.Err()
}

// maxSymbols is how many of the path's symbols a Profile keeps.
const maxSymbols = 60

// newProfile sorts perf's rows into the path (sender and ksoftirqd),
// the receiver, idle and everything else, and the path's time into
// parts and symbols.
func newProfile(rows []perfRow, sender, receiver int) Profile {
	p := Profile{Parts: map[string]int64{}}
	syms := map[Symbol]int64{}
	for _, r := range rows {
		switch {
		case r.PID == sender || strings.HasPrefix(r.Comm, "ksoftirqd/"):
			p.PathNS += r.NS
			p.Parts[partOf(r.Sym, r.Kernel, r.Parent)] += r.NS
			syms[Symbol{Name: r.Sym, Kernel: r.Kernel}] += r.NS
		case r.PID == receiver:
			p.ReceiverNS += r.NS
		case r.PID == 0:
			p.IdleNS += r.NS
		default:
			p.OtherNS += r.NS
		}
	}
	for s, ns := range syms {
		s.NS = ns
		p.Symbols = append(p.Symbols, s)
	}
	p.sortSymbols()
	return p
}

func (p *Profile) sortSymbols() {
	slices.SortFunc(p.Symbols, func(a, b Symbol) int {
		if c := cmp.Compare(b.NS, a.NS); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// add merges the profile of another run of the same figure and variant.
func (p *Profile) add(q Profile) {
	p.Runs = append(p.Runs, q.Runs...)
	p.Packets += q.Packets
	p.PathNS += q.PathNS
	p.ReceiverNS += q.ReceiverNS
	p.OtherNS += q.OtherNS
	p.IdleNS += q.IdleNS
	if p.Parts == nil {
		p.Parts = map[string]int64{}
	}
	for k, v := range q.Parts {
		p.Parts[k] += v
	}
	idx := map[Symbol]int{}
	for i, s := range p.Symbols {
		idx[Symbol{Name: s.Name, Kernel: s.Kernel}] = i
	}
	for _, s := range q.Symbols {
		if i, ok := idx[Symbol{Name: s.Name, Kernel: s.Kernel}]; ok {
			p.Symbols[i].NS += s.NS
		} else {
			p.Symbols = append(p.Symbols, s)
		}
	}
	p.sortSymbols()
}

// trim keeps the maxSymbols symbols with the most time.
func (p *Profile) trim() {
	if len(p.Symbols) > maxSymbols {
		p.Symbols = p.Symbols[:maxSymbols]
	}
}

// perPacket is ns of CPU per packet sent.
func (p Profile) perPacket(ns int64) float64 {
	if p.Packets <= 0 {
		return 0
	}
	return float64(ns) / float64(p.Packets)
}

// pathNS is the path's time, without the receiver's wake-ups if noWake.
func (p Profile) pathNS(noWake bool) int64 {
	if noWake {
		return p.PathNS - p.Parts["wakeup"]
	}
	return p.PathNS
}

func (p Profile) total() int64 { return p.PathNS + p.ReceiverNS + p.OtherNS + p.IdleNS }

// otherShare is the share of the machine's CPU time other tasks used.
func (p Profile) otherShare() float64 {
	if p.total() <= 0 {
		return 0
	}
	return float64(p.OtherNS) / float64(p.total())
}

// CostRatio is the baseline's path CPU time per packet over the
// variant's, from their profiles: the throughput ratio the two paths
// would have on a core of their own, which a shared machine's load
// (the CPU share the sender gets) does not move as it moves the rates.
// With runs of both, it is the median (and min, max) of the per-run
// ratios (run i of each was profiled in the same round, back to back);
// otherwise the ratio of the merged profiles. With noWake, both sides
// leave out the receiver's wake-ups (wakeParent), the noisiest cost of
// the test's endpoints (their sockets' other work stays in).
func (r *Results) CostRatio(variant string, f Figure, noWake bool) (lo, med, hi float64, ok bool) {
	if len(r.Variants) == 0 {
		return 0, 0, 0, false
	}
	b, ok1 := r.Profile(r.Variants[0], f)
	v, ok2 := r.Profile(variant, f)
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	if len(b.Runs) > 0 && len(b.Runs) == len(v.Runs) {
		var q []float64
		for i := range b.Runs {
			x, y := b.Runs[i].perPacket(noWake), v.Runs[i].perPacket(noWake)
			if x <= 0 || y <= 0 {
				return 0, 0, 0, false
			}
			q = append(q, x/y)
		}
		slices.Sort(q)
		return q[0], q[(len(q)-1)/2], q[len(q)-1], true
	}
	x, y := b.perPacket(b.pathNS(noWake)), v.perPacket(v.pathNS(noWake))
	if x <= 0 || y <= 0 {
		return 0, 0, 0, false
	}
	return x / y, x / y, x / y, true
}

// costTable has, for each profiled variant but the baseline, CostRatio
// of each UDP figure, and again without the receiver's wake-ups when
// the profiles tell them apart (results from before they did do not).
func (r *Results) costTable() string {
	var cols []string
	type col struct {
		f      Figure
		noWake bool
	}
	var cs []col
	for _, noWake := range []bool{false, true} {
		if noWake && !r.wakeupsProfiled() {
			break
		}
		for _, f := range Figures {
			if !f.UDP {
				continue
			}
			cs = append(cs, col{f, noWake})
			if noWake {
				cols = append(cols, f.Name+", no wake-ups")
			} else {
				cols = append(cols, f.Name)
			}
		}
	}
	var rows []string
	for _, v := range r.Variants[1:] {
		row := "| " + v + " |"
		any := false
		for _, c := range cs {
			lo, med, hi, ok := r.CostRatio(v, c.f, c.noWake)
			switch {
			case !ok:
				row += " - |"
			case lo == hi:
				any = true
				row += fmt.Sprintf(" %.2f |", med)
			default:
				any = true
				row += fmt.Sprintf(" %.2f (%.2f-%.2f) |", med, lo, hi)
			}
		}
		if any {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	tableHead(&b, cols)
	b.WriteString(strings.Join(rows, "\n") + "\n")
	return b.String()
}

// wakeupsProfiled says whether the profiles tell the receiver's
// wake-ups apart.
func (r *Results) wakeupsProfiled() bool {
	for _, p := range r.Profiles {
		if p.Parts["wakeup"] > 0 {
			return true
		}
	}
	return false
}

// Profile returns the profile of a variant's figure, if one was taken.
func (r *Results) Profile(variant string, f Figure) (Profile, bool) {
	for _, p := range r.Profiles {
		if p.Variant == variant && p.Figure == f.Name {
			return p, true
		}
	}
	return Profile{}, false
}

// profileMarkdown renders, for each UDP figure profiled, the path's CPU
// time per packet by part for every variant, each variant's top kernel
// symbols, and the symbols that grew most from the variant before.
func (r *Results) profileMarkdown() string {
	if len(r.Profiles) == 0 {
		return ""
	}
	var b strings.Builder
	for _, f := range Figures {
		if !f.UDP {
			continue
		}
		var ps []Profile
		for _, v := range r.Variants {
			if p, ok := r.Profile(v, f); ok {
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 {
			continue
		}
		fmt.Fprintf(&b, "#### %s: CPU time per packet by part\n\n", f.Name)
		b.WriteString(r.partsTable(ps))
		fmt.Fprintf(&b, "\nTop kernel symbols, self time as a share of the path's (%s):\n\n", f.Name)
		for _, p := range ps {
			fmt.Fprintf(&b, "- %s: %s\n", p.Variant, topKernel(p, 8))
		}
		fmt.Fprintf(&b, "\nLargest increases over the variant before, ns per packet (%s):\n\n", f.Name)
		for i := 1; i < len(ps); i++ {
			fmt.Fprintf(&b, "- %s over %s: %s\n", ps[i].Variant, ps[i-1].Variant, increases(ps[i-1], ps[i], 6))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// partsTable is the table of the path's time per packet by part, one row
// per profile.
func (r *Results) partsTable(ps []Profile) string {
	var b strings.Builder
	cols := []string{"path ns/packet"}
	for _, pt := range Parts {
		cols = append(cols, pt.Title)
	}
	tableHead(&b, append(cols, "other load"))
	for _, p := range ps {
		fmt.Fprintf(&b, "| %s | %.0f |", p.Variant, p.perPacket(p.PathNS))
		for _, pt := range Parts {
			if ns := p.Parts[pt.Key]; ns > 0 {
				fmt.Fprintf(&b, " %.0f |", p.perPacket(ns))
			} else {
				b.WriteString(" - |")
			}
		}
		if p.total() > 0 {
			fmt.Fprintf(&b, " %.0f%% |\n", 100*p.otherShare())
		} else {
			b.WriteString(" - |\n")
		}
	}
	return b.String()
}

// topKernel lists a profile's n kernel symbols with the most self time.
func topKernel(p Profile, n int) string {
	var parts []string
	for _, s := range p.Symbols {
		if !s.Kernel {
			continue
		}
		if len(parts) == n {
			break
		}
		parts = append(parts, fmt.Sprintf("`%s` %.1f%%", s.Name, 100*float64(s.NS)/float64(max(p.PathNS, 1))))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// increases lists the n kernel symbols whose time per packet grew most
// from a to b (symbols a does not list count as zero there).
func increases(a, b Profile, n int) string {
	before := map[string]float64{}
	for _, s := range a.Symbols {
		if s.Kernel {
			before[s.Name] = a.perPacket(s.NS)
		}
	}
	type d struct {
		name string
		ns   float64
	}
	var ds []d
	for _, s := range b.Symbols {
		if s.Kernel {
			ds = append(ds, d{s.Name, b.perPacket(s.NS) - before[s.Name]})
		}
	}
	slices.SortStableFunc(ds, func(x, y d) int { return cmp.Compare(y.ns, x.ns) })
	var out []string
	for _, x := range ds {
		if len(out) == n || x.ns < 1 {
			break
		}
		out = append(out, fmt.Sprintf("`%s` %+.0f", x.name, x.ns))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}
