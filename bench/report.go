package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Figure is one measured quantity.
type Figure struct {
	Name string // e.g. "TCP c1 -> s"
	Unit string // "Gbit/s" or "kpps"
	UDP  bool
	// Reverse: s sends to c1 (iperf3 -R).
	Reverse bool
}

// The headline figures, in report order.
var Figures = []Figure{
	{Name: "TCP c1 -> s", Unit: "Gbit/s"},
	{Name: "TCP s -> c1", Unit: "Gbit/s", Reverse: true},
	{Name: "UDP 64 B c1 -> s", Unit: "kpps", UDP: true},
	{Name: "UDP 64 B s -> c1", Unit: "kpps", UDP: true, Reverse: true},
}

// Sample is one measurement: Value in the figure's unit, Loss (UDP only)
// as a fraction of the packets sent.
type Sample struct {
	Value float64 `json:"value"`
	Loss  float64 `json:"loss,omitempty"`
}

// Results holds every sample of a run.
type Results struct {
	Kernel   string        `json:"kernel"`
	Date     time.Time     `json:"date"`
	Duration time.Duration `json:"duration_ns"` // of each measurement
	Reps     int           `json:"reps"`
	// Variants in report order; the first is the baseline.
	Variants []string `json:"variants"`
	// Samples[variant][figure name] lists one sample per repetition.
	Samples map[string]map[string][]Sample `json:"samples"`
	// Load is the machine's 1-minute load average at the start of each
	// repetition, CPUs its number of cores: the machine is shared.
	Load []float64 `json:"load,omitempty"`
	CPUs int       `json:"cpus,omitempty"`
	// Profiles, when taken, one per UDP figure and variant, each the
	// sum of ProfileRuns runs.
	Profiles    []Profile `json:"profiles,omitempty"`
	ProfileRuns int       `json:"profile_runs,omitempty"`
}

// Add records a sample.
func (r *Results) Add(variant string, f Figure, s Sample) {
	if r.Samples == nil {
		r.Samples = map[string]map[string][]Sample{}
	}
	if r.Samples[variant] == nil {
		r.Samples[variant] = map[string][]Sample{}
	}
	r.Samples[variant][f.Name] = append(r.Samples[variant][f.Name], s)
}

// Median returns the sample with the median value (the lower middle one
// for an even count), and false when there is none.
func (r *Results) Median(variant string, f Figure) (Sample, bool) {
	s := slices.Clone(r.Samples[variant][f.Name])
	if len(s) == 0 {
		return Sample{}, false
	}
	slices.SortFunc(s, func(a, b Sample) int {
		switch {
		case a.Value < b.Value:
			return -1
		case a.Value > b.Value:
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2], true
}

// Ratio is variant's figure over the baseline's (the first variant's),
// and false when either is missing or the baseline is zero. With a sample
// of each per run it is the median of the per-run ratios: the runs are
// interleaved, so each pair was measured back to back and a change in the
// machine's load between runs cancels out. Otherwise it is the ratio of
// the medians.
func (r *Results) Ratio(variant string, f Figure) (float64, bool) {
	if len(r.Variants) == 0 {
		return 0, false
	}
	bs, vs := r.Samples[r.Variants[0]][f.Name], r.Samples[variant][f.Name]
	if len(bs) > 0 && len(bs) == len(vs) {
		var q []float64
		for i := range bs {
			if bs[i].Value <= 0 {
				return 0, false
			}
			q = append(q, vs[i].Value/bs[i].Value)
		}
		slices.Sort(q)
		return q[(len(q)-1)/2], true
	}
	base, ok1 := r.Median(r.Variants[0], f)
	v, ok2 := r.Median(variant, f)
	if !ok1 || !ok2 || base.Value <= 0 {
		return 0, false
	}
	return v.Value / base.Value, true
}

// interleave is the order of the variants in repetition rep (from 1):
// as given in odd ones, reversed in even ones, so that a steady change of
// the machine's load over a pair of repetitions falls on every variant
// alike instead of on the last ones.
func interleave[T any](xs []T, rep int) []T {
	if rep%2 == 1 {
		return xs
	}
	r := slices.Clone(xs)
	slices.Reverse(r)
	return r
}

// Targets are issue 15's: the median ratio of TargetVariant to the
// baseline each figure must reach.
var Targets = map[string]float64{
	"TCP c1 -> s":      0.95,
	"TCP s -> c1":      0.95,
	"UDP 64 B c1 -> s": 0.90,
	"UDP 64 B s -> c1": 0.90,
}

// TargetVariant is the variant the targets are for.
const TargetVariant = "map-t"

// RatioRange is Ratio with the smallest and largest per-run ratio (all
// three the ratio of the medians when the runs are not paired).
func (r *Results) RatioRange(variant string, f Figure) (lo, med, hi float64, ok bool) {
	med, ok = r.Ratio(variant, f)
	if !ok {
		return 0, 0, 0, false
	}
	lo, hi = med, med
	bs, vs := r.Samples[r.Variants[0]][f.Name], r.Samples[variant][f.Name]
	if len(bs) > 0 && len(bs) == len(vs) {
		for i := range bs {
			q := vs[i].Value / bs[i].Value
			lo, hi = min(lo, q), max(hi, q)
		}
	}
	return lo, med, hi, true
}

// Markdown renders the results: Summary, then the top kernel symbols of
// each profile and what grew from one variant to the next.
func (r *Results) Markdown() string {
	return r.summary(true)
}

// Summary renders the ratio table (the attribution: each variant adds a
// part), the targets, the measured figures, the per-packet cost and,
// when profiles were taken, the path's CPU time per packet by part.
func (r *Results) Summary() string {
	return r.summary(false)
}

func (r *Results) summary(symbols bool) string {
	var b strings.Builder
	runs := fmt.Sprintf("%d runs of %s each per figure and variant, interleaved", r.Reps, r.Duration)
	if r.Reps == 1 {
		runs = fmt.Sprintf("one run of %s per figure and variant", r.Duration)
	}
	fmt.Fprintf(&b, "Linux %s, %s; %s%s.\n\n", r.Kernel, r.Date.UTC().Format("2006-01-02 15:04 UTC"), runs, r.loadNote())
	if len(r.Variants) > 1 {
		fmt.Fprintf(&b, "Ratio to %s, measured in the same run: median (min-max) of the per-run ratios, each run against the %s run of the same round.\n\n", r.Variants[0], r.Variants[0])
		b.WriteString(r.ratioTable())
		if c := r.costTable(); c != "" {
			fmt.Fprintf(&b, "\nAt equal CPU: %s's CPU time per packet on the path over the variant's, from the profiles (below; median (min-max) of the profiled runs, each against %s's in the same round). The rates above also move with the CPU share the sender gets on the shared machine; this ratio does not.", r.Variants[0], r.Variants[0])
			if r.wakeupsProfiled() {
				fmt.Fprintf(&b, " \"No wake-ups\": the same without the path's time waking the receiving iperf3 (under `%s`), which is the test endpoints' cost, not a router's, and the noisiest part of the path: it hangs on whether, and how deeply, the receiver's core is asleep when a datagram comes.", wakeParent)
			}
			b.WriteString("\n\n")
			b.WriteString(c)
		}
		if t := r.targets(); t != "" {
			b.WriteString("\n" + t)
		}
		b.WriteString("\n")
	}
	b.WriteString("Measured: median (min-max) over the runs; UDP: the median run's loss.\n\n")
	b.WriteString(r.valueTable())
	if c := r.addedCost(); c != "" {
		b.WriteString("\n" + c)
	}
	if len(r.Profiles) > 0 {
		b.WriteString("\n" + r.profileNote() + "\n\n")
		if symbols {
			b.WriteString(r.profileMarkdown())
		} else {
			for _, f := range Figures {
				var ps []Profile
				for _, v := range r.Variants {
					if p, ok := r.Profile(v, f); ok {
						ps = append(ps, p)
					}
				}
				if len(ps) > 0 {
					fmt.Fprintf(&b, "%s, CPU ns per packet on the path by part:\n\n%s\n", f.Name, r.partsTable(ps))
				}
			}
		}
	}
	return b.String()
}

// loadNote says how loaded the machine was at the start of the runs.
func (r *Results) loadNote() string {
	var l []float64
	for _, x := range r.Load {
		if x >= 0 {
			l = append(l, x)
		}
	}
	if len(l) == 0 {
		return ""
	}
	cpus := ""
	if r.CPUs > 0 {
		cpus = fmt.Sprintf(" on %d cores", r.CPUs)
	}
	return fmt.Sprintf("; 1-minute load average at the start of each run %.1f-%.1f%s", slices.Min(l), slices.Max(l), cpus)
}

func (r *Results) profileNote() string {
	runs := "one extra UDP run"
	if r.ProfileRuns > 1 {
		runs = fmt.Sprintf("%d extra UDP runs", r.ProfileRuns)
	}
	return "Profiles (`perf record -e cpu-clock -a -g`, " + runs + " per figure and variant after the measured ones, interleaved): " +
		"the path is the sending process and ksoftirqd (veth forwards in the sender's softirq, so CE, switch, BR and the " +
		"server's stack all run there), self time per packet sent, in ns; other load is the share of the machine's CPU " +
		"time that other tasks used meanwhile. tayga's path runs in user space and is not profiled."
}

// tableHead writes a Markdown table's head: the variant column, the
// numeric columns cols (right-aligned), then the text columns tail.
func tableHead(b *strings.Builder, cols []string, tail ...string) {
	b.WriteString("| variant |")
	for _, c := range append(slices.Clone(cols), tail...) {
		fmt.Fprintf(b, " %s |", c)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(cols)) + strings.Repeat("---|", len(tail)) + "\n")
}

// beforeAfter doubles each column into "name: before" and "after".
func beforeAfter(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n+": before", "after")
	}
	return out
}

// ratioTable has one row per variant: the baseline's medians, then each
// variant's ratio to them.
func (r *Results) ratioTable() string {
	var b strings.Builder
	var cols []string
	for _, f := range Figures {
		cols = append(cols, f.Name)
	}
	tableHead(&b, cols, "adds")
	for i, v := range r.Variants {
		fmt.Fprintf(&b, "| %s |", v)
		for _, f := range Figures {
			if i == 0 {
				if m, ok := r.Median(v, f); ok {
					fmt.Fprintf(&b, " %s %s |", formatValue(m.Value), f.Unit)
				} else {
					b.WriteString(" - |")
				}
				continue
			}
			lo, med, hi, ok := r.RatioRange(v, f)
			switch {
			case !ok:
				b.WriteString(" - |")
			case lo == hi:
				fmt.Fprintf(&b, " %.2f |", med)
			default:
				fmt.Fprintf(&b, " %.2f (%.2f-%.2f) |", med, lo, hi)
			}
		}
		fmt.Fprintf(&b, " %s |\n", Describe[v])
	}
	return b.String()
}

// targets says whether TargetVariant met each target, when it was
// measured.
func (r *Results) targets() string {
	if !slices.Contains(r.Variants[1:], TargetVariant) {
		return ""
	}
	var parts []string
	for _, f := range Figures {
		want, ok := Targets[f.Name]
		if !ok {
			continue
		}
		lo, med, hi, ok := r.RatioRange(TargetVariant, f)
		if !ok {
			continue
		}
		verdict := "met"
		if med < want {
			verdict = "not met"
		}
		cpu := ""
		if lo, med, hi, ok := r.CostRatio(TargetVariant, f, false); ok {
			cpu = fmt.Sprintf(" (at equal CPU %.2f (%.2f-%.2f)", med, lo, hi)
			if lo, med, hi, ok := r.CostRatio(TargetVariant, f, true); ok && r.wakeupsProfiled() {
				cpu += fmt.Sprintf("; without the receiver's wake-ups %.2f (%.2f-%.2f)", med, lo, hi)
			}
			cpu += ")"
		}
		parts = append(parts, fmt.Sprintf("%s %.2f (%.2f-%.2f), target %.2f: %s%s", f.Name, med, lo, hi, want, verdict, cpu))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("Targets (issue 15; %s / %s, median of the runs): %s.\n", TargetVariant, r.Variants[0], strings.Join(parts, "; "))
}

// valueTable has one row per variant: each figure's median (min-max)
// and, for UDP, the median run's loss.
func (r *Results) valueTable() string {
	var b strings.Builder
	var cols []string
	for _, f := range Figures {
		cols = append(cols, fmt.Sprintf("%s (%s)", f.Name, f.Unit))
	}
	tableHead(&b, cols)
	for _, v := range r.Variants {
		fmt.Fprintf(&b, "| %s |", v)
		for _, f := range Figures {
			m, ok := r.Median(v, f)
			switch {
			case !ok:
				b.WriteString(" - |")
			case f.UDP:
				fmt.Fprintf(&b, " %s%s, loss %.0f%% |", formatValue(m.Value), r.spread(v, f), 100*m.Loss)
			default:
				fmt.Fprintf(&b, " %s%s |", formatValue(m.Value), r.spread(v, f))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// addedCost says, for each UDP figure where neither the baseline nor the
// variant lost packets in any run, how much time per packet the variant's
// path adds to the baseline's: 1/rate - 1/baseline rate, per pair of runs
// (as Ratio), the median of those. The sender is then the
// bottleneck and the whole path runs on its core (veth forwards in the
// sender's softirq), so 1/rate is the path's cost per packet on one core.
// With loss the rate is set by where packets are dropped, not by cost.
func (r *Results) addedCost() string {
	if len(r.Variants) < 2 {
		return ""
	}
	var parts []string
	for _, f := range Figures {
		if !f.UDP {
			continue
		}
		bs := r.Samples[r.Variants[0]][f.Name]
		for _, v := range r.Variants[1:] {
			vs := r.Samples[v][f.Name]
			if len(bs) == 0 || len(vs) != len(bs) {
				continue
			}
			// Per run, as Ratio: kpps -> ns per packet.
			var d []float64
			for i := range bs {
				if bs[i].Value <= 0 || vs[i].Value <= 0 || bs[i].Loss > 0.01 || vs[i].Loss > 0.01 {
					d = nil
					break
				}
				d = append(d, 1e6/vs[i].Value-1e6/bs[i].Value)
			}
			if d == nil {
				continue
			}
			slices.Sort(d)
			parts = append(parts, fmt.Sprintf("%s %s %+.0f ns", v, f.Name, d[(len(d)-1)/2]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("Time per packet added to %s's path (UDP runs without loss, 1/rate on the sending core): %s.\n", r.Variants[0], strings.Join(parts, ", "))
}

// spread is " (min-max)" of a variant's samples when there are several.
func (r *Results) spread(variant string, f Figure) string {
	s := r.Samples[variant][f.Name]
	if len(s) < 2 {
		return ""
	}
	lo, hi := s[0].Value, s[0].Value
	for _, x := range s[1:] {
		lo, hi = min(lo, x.Value), max(hi, x.Value)
	}
	return fmt.Sprintf(" (%s-%s)", formatValue(lo), formatValue(hi))
}

// formatValue keeps three significant digits.
func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Compare renders before and after side by side: for every variant both
// measured, each figure's ratio to the baseline (median (min-max) of the
// runs, as in Summary) before and after, and, where both were profiled,
// the path's CPU time per packet by part. what says what changed in
// between.
func Compare(before, after *Results, what string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Before: %s (%d runs); after: %s (%d runs). In between: %s.\n\n",
		before.Date.UTC().Format("2006-01-02 15:04 UTC"), before.Reps, after.Date.UTC().Format("2006-01-02 15:04 UTC"), after.Reps, what)
	var vs []string
	for _, v := range after.Variants {
		if slices.Contains(before.Variants, v) {
			vs = append(vs, v)
		}
	}
	var names []string
	for _, f := range Figures {
		names = append(names, f.Name)
	}
	tableHead(&b, beforeAfter(names))
	cell := func(r *Results, v string, f Figure) string {
		if len(r.Variants) > 0 && v == r.Variants[0] {
			if m, ok := r.Median(v, f); ok {
				return formatValue(m.Value) + " " + f.Unit
			}
			return "-"
		}
		lo, med, hi, ok := r.RatioRange(v, f)
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.2f (%.2f-%.2f)", med, lo, hi)
	}
	for _, v := range vs {
		fmt.Fprintf(&b, "| %s |", v)
		for _, f := range Figures {
			fmt.Fprintf(&b, " %s | %s |", cell(before, v, f), cell(after, v, f))
		}
		b.WriteString("\n")
	}
	for _, f := range Figures {
		if !f.UDP {
			continue
		}
		// Columns for the parts either run spent time in.
		type pair struct {
			v    string
			p, q Profile
		}
		var pairs []pair
		for _, v := range vs {
			p, ok1 := before.Profile(v, f)
			q, ok2 := after.Profile(v, f)
			if ok1 && ok2 {
				pairs = append(pairs, pair{v, p, q})
			}
		}
		if len(pairs) == 0 {
			continue
		}
		var parts []Part
		for _, pt := range Parts {
			for _, x := range pairs {
				if x.p.Parts[pt.Key] > 0 || x.q.Parts[pt.Key] > 0 {
					parts = append(parts, pt)
					break
				}
			}
		}
		var rows []string
		for _, x := range pairs {
			row := fmt.Sprintf("| %s | %.0f | %.0f |", x.v, x.p.perPacket(x.p.PathNS), x.q.perPacket(x.q.PathNS))
			for _, pt := range parts {
				row += fmt.Sprintf(" %.0f | %.0f |", x.p.perPacket(x.p.Parts[pt.Key]), x.q.perPacket(x.q.Parts[pt.Key]))
			}
			rows = append(rows, row)
		}
		fmt.Fprintf(&b, "\n%s, CPU ns per packet on the path by part, before | after:\n\n", f.Name)
		names := []string{"path"}
		for _, pt := range parts {
			names = append(names, pt.Title)
		}
		tableHead(&b, beforeAfter(names))
		b.WriteString(strings.Join(rows, "\n") + "\n")
	}
	return b.String()
}
