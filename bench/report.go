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

// Markdown renders the results as a table: one row per figure, for each
// variant its median with the range of the samples (UDP: and the median
// run's loss) and its ratio to the baseline (see Ratio).
func (r *Results) Markdown() string {
	var b strings.Builder
	runs := fmt.Sprintf("median of %d runs of %s each", r.Reps, r.Duration)
	if r.Reps == 1 {
		runs = fmt.Sprintf("one run of %s", r.Duration)
	}
	fmt.Fprintf(&b, "Linux %s, %s; %s.\n\n", r.Kernel, r.Date.UTC().Format("2006-01-02 15:04 UTC"), runs)
	b.WriteString("| figure |")
	for i, v := range r.Variants {
		fmt.Fprintf(&b, " %s |", v)
		if i > 0 {
			fmt.Fprintf(&b, " %s / %s |", v, r.Variants[0])
		}
	}
	b.WriteString("\n|---|")
	for i := range r.Variants {
		b.WriteString("---:|")
		if i > 0 {
			b.WriteString("---:|")
		}
	}
	b.WriteString("\n")
	for _, f := range Figures {
		fmt.Fprintf(&b, "| %s (%s) |", f.Name, f.Unit)
		for i, v := range r.Variants {
			m, ok := r.Median(v, f)
			switch {
			case !ok:
				b.WriteString(" - |")
			case f.UDP:
				fmt.Fprintf(&b, " %s%s, loss %.0f%% |", formatValue(m.Value), r.spread(v, f), 100*m.Loss)
			default:
				fmt.Fprintf(&b, " %s%s |", formatValue(m.Value), r.spread(v, f))
			}
			if i > 0 {
				if q, ok := r.Ratio(v, f); ok {
					fmt.Fprintf(&b, " %.2f |", q)
				} else {
					b.WriteString(" - |")
				}
			}
		}
		b.WriteString("\n")
	}
	if c := r.addedCost(); c != "" {
		b.WriteString("\n" + c)
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
