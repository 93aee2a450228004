package bench

import (
	"bytes"
	"encoding/json"
	"image/color"
	"image/png"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleResults() *Results {
	r := &Results{Kernel: "6.18.0", Date: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), Duration: 5 * time.Second, Reps: 3,
		Variants: []string{"plain", "map-t", "tayga"}}
	for _, v := range []struct {
		name string
		tcp  []float64
		udp  []float64
	}{
		{"plain", []float64{30, 10, 20}, []float64{400, 300, 200}},
		{"map-t", []float64{15, 5, 10}, []float64{100, 300, 150}},
		{"tayga", []float64{1, 2, 3}, []float64{50, 60, 70}},
	} {
		for i := range v.tcp {
			r.Add(v.name, Figures[0], Sample{Value: v.tcp[i]})
			r.Add(v.name, Figures[2], Sample{Value: v.udp[i], Loss: float64(i) / 10})
		}
	}
	return r
}

func TestMedianRatio(t *testing.T) {
	r := sampleResults()
	for _, tc := range []struct {
		variant   string
		fig       Figure
		median    Sample
		ratio     float64
		hasMedian bool
	}{
		{"plain", Figures[0], Sample{Value: 20}, 1, true},
		{"map-t", Figures[0], Sample{Value: 10}, 0.5, true},
		// Paired: runs 1/30, 2/10, 3/20 -> median 0.15 (medians: 0.1).
		{"tayga", Figures[0], Sample{Value: 2}, 0.15, true},
		// The median sample keeps its own loss.
		{"plain", Figures[2], Sample{Value: 300, Loss: 0.1}, 1, true},
		// Paired: 100/400, 300/300, 150/200 -> 0.75 (medians: 0.5).
		{"map-t", Figures[2], Sample{Value: 150, Loss: 0.2}, 0.75, true},
		{"tayga", Figures[2], Sample{Value: 60, Loss: 0.1}, 0.2, true},
		{"map-t", Figures[1], Sample{}, 0, false},
		{"nosuch", Figures[0], Sample{}, 0, false},
	} {
		m, ok := r.Median(tc.variant, tc.fig)
		if ok != tc.hasMedian || m != tc.median {
			t.Errorf("Median(%s, %s) = %+v, %v; want %+v, %v", tc.variant, tc.fig.Name, m, ok, tc.median, tc.hasMedian)
		}
		q, ok := r.Ratio(tc.variant, tc.fig)
		if ok != tc.hasMedian || (ok && (q < tc.ratio-1e-9 || q > tc.ratio+1e-9)) {
			t.Errorf("Ratio(%s, %s) = %v, %v; want %v", tc.variant, tc.fig.Name, q, ok, tc.ratio)
		}
	}
	// An even count takes the lower middle sample.
	r.Add("plain", Figures[1], Sample{Value: 4})
	r.Add("plain", Figures[1], Sample{Value: 2})
	if m, _ := r.Median("plain", Figures[1]); m.Value != 2 {
		t.Errorf("median of {4, 2} = %v, want 2", m.Value)
	}
	// Unequal counts: ratio of the medians.
	r.Add("map-t", Figures[1], Sample{Value: 1})
	if q, ok := r.Ratio("map-t", Figures[1]); !ok || q != 0.5 {
		t.Errorf("ratio with unpaired runs = %v, %v; want 1/2 (medians)", q, ok)
	}
	// A zero baseline has no ratio.
	z := &Results{Variants: []string{"plain", "map-t"}}
	z.Add("plain", Figures[0], Sample{})
	z.Add("map-t", Figures[0], Sample{Value: 1})
	if q, ok := z.Ratio("map-t", Figures[0]); ok {
		t.Errorf("ratio against zero baseline = %v, want none", q)
	}
	z.Add("plain", Figures[0], Sample{Value: 5})
	if q, ok := z.Ratio("map-t", Figures[0]); ok {
		t.Errorf("ratio with one zero baseline run = %v, want none", q)
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleResults()
	r.Load, r.CPUs = []float64{1.5, 0.25, 3}, 2
	md := r.Markdown()
	hasLines(t, md,
		"Linux 6.18.0, 2026-11-26 11:00 UTC; 3 runs of 5s each per figure and variant, interleaved; 1-minute load average at the start of each run 0.2-3.0 on 2 cores.",
		"| variant | TCP c1 -> s | TCP s -> c1 | UDP 64 B c1 -> s | UDP 64 B s -> c1 | adds |",
		"|---|---:|---:|---:|---:|---|",
		"| plain | 20.0 Gbit/s | - | 300 kpps | - | "+Describe["plain"]+" |",
		// Per-run ratios 15/30, 5/10, 10/20; 100/400, 300/300, 150/200.
		"| map-t | 0.50 | - | 0.75 (0.25-1.00) | - | "+Describe["map-t"]+" |",
		"| tayga | 0.15 (0.03-0.20) | - | 0.20 (0.12-0.35) | - | "+Describe["tayga"]+" |",
		"Targets (issue 15; map-t / plain, median of the runs): TCP c1 -> s 0.50 (0.50-0.50), target 0.95: not met; UDP 64 B c1 -> s 0.75 (0.25-1.00), target 0.90: not met.",
		"| variant | TCP c1 -> s (Gbit/s) | TCP s -> c1 (Gbit/s) | UDP 64 B c1 -> s (kpps) | UDP 64 B s -> c1 (kpps) |",
		"| plain | 20.0 (10.0-30.0) | - | 300 (200-400), loss 10% | - |",
		"| map-t | 10.0 (5.00-15.0) | - | 150 (100-300), loss 20% | - |",
		"| tayga | 2.00 (1.00-3.00) | - | 60.0 (50.0-70.0), loss 10% | - |",
	)
	// The sample runs all lost packets: no per-packet cost is derived.
	if strings.Contains(md, "Time per packet") {
		t.Errorf("per-packet cost from lossy runs:\n%s", md)
	}
	// No profiles, no profile section; the summary is then the whole.
	if strings.Contains(md, "Profiles") || r.Summary() != md {
		t.Errorf("profile section without profiles:\n%s", md)
	}
	// A target met says so.
	r.Samples["map-t"][Figures[0].Name] = r.Samples["plain"][Figures[0].Name]
	if md := r.Markdown(); !strings.Contains(md, "TCP c1 -> s 1.00 (1.00-1.00), target 0.95: met;") {
		t.Errorf("target met not reported:\n%s", md)
	}
	// Without the target variant, no targets line.
	r.Variants = []string{"plain", "tayga"}
	if md := r.Markdown(); strings.Contains(md, "Targets") {
		t.Errorf("targets without %s:\n%s", TargetVariant, md)
	}
	// One run: no ranges.
	one := &Results{Kernel: "6.18.0", Duration: time.Second, Reps: 1, Variants: []string{"plain", "map-t"}}
	one.Add("plain", Figures[0], Sample{Value: 10})
	one.Add("map-t", Figures[0], Sample{Value: 9})
	for _, want := range []string{"one run of 1s per figure and variant.", "| map-t | 0.90 | - | - | - |", "| map-t | 9.00 | - | - | - |"} {
		if md := one.Markdown(); !strings.Contains(md, want) {
			t.Errorf("one run: no %q:\n%s", want, md)
		}
	}
}

func TestSelectVariants(t *testing.T) {
	vs, err := SelectVariants([]string{"map-t", "nft"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(VariantNames(vs), " "); got != "plain nft map-t" {
		t.Errorf("selected %q, want the baseline first, in the order of Variants", got)
	}
	if _, err := SelectVariants([]string{"nosuch"}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown variant: %v", err)
	}
	for _, v := range Variants {
		if Describe[v.Name] == "" {
			t.Errorf("variant %s has no description", v.Name)
		}
	}
}

// TestAddedCost: from lossless UDP runs, 1/rate differences in ns; a
// lossy variant is left out.
func TestAddedCost(t *testing.T) {
	r := &Results{Variants: []string{"plain", "map-t", "tayga"}}
	// Pairs (ns per packet): 4000/5000, 2000/2500, 5000/8000 -> +1000,
	// +500, +3000: median +1000.
	for _, p := range [][2]float64{{250, 200}, {500, 400}, {200, 125}} {
		r.Add("plain", Figures[2], Sample{Value: p[0]})
		r.Add("map-t", Figures[2], Sample{Value: p[1]})
		r.Add("tayga", Figures[2], Sample{Value: p[1] / 2, Loss: 0.7}) // lossy: left out
	}
	r.Add("plain", Figures[3], Sample{Value: 200}) // 5000 ns
	r.Add("map-t", Figures[3], Sample{Value: 160}) // 6250 ns
	r.Add("tayga", Figures[3], Sample{Value: 100}) // 10000 ns
	r.Add("plain", Figures[3], Sample{Value: 200, Loss: 0.5})
	r.Add("map-t", Figures[3], Sample{Value: 160})
	r.Add("tayga", Figures[3], Sample{Value: 100})
	// One lossy baseline run rules the whole figure out.
	want := "Time per packet added to plain's path (UDP runs without loss, 1/rate on the sending core): map-t UDP 64 B c1 -> s +1000 ns.\n"
	if got := r.addedCost(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if md := r.Markdown(); !strings.HasSuffix(md, "\n\n"+want) {
		t.Fatalf("table does not end with the cost line:\n%s", md)
	}
}

// TestChart decodes the PNG and measures the bars: each variant's bar in
// the first group is as tall as its ratio says, relative to the
// baseline's.
func TestChart(t *testing.T) {
	r := sampleResults()
	var buf bytes.Buffer
	if err := r.WriteChart(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 560 {
		t.Fatalf("size %v", b)
	}
	// Tallest column of each variant's colour within the first group
	// (left quarter of the plot).
	height := func(c color.RGBA) int {
		best := 0
		for x := 90; x < 90+1090/4; x++ {
			n := 0
			for y := 100; y < 560; y++ {
				if color.RGBAModel.Convert(img.At(x, y)) == c {
					n++
				}
			}
			best = max(best, n)
		}
		return best
	}
	base := height(palette(0))
	if base < 200 {
		t.Fatalf("baseline bar %d px high, want the full 100%% height", base)
	}
	for i, want := range []float64{1, 0.5, 0.15} {
		got := float64(height(palette(i))) / float64(base)
		if got < want-0.02 || got > want+0.02 {
			t.Errorf("variant %d bar at %.3f of the baseline's, want %.2f", i, got, want)
		}
	}
}

func TestFontCoversChart(t *testing.T) {
	r := sampleResults()
	texts := []string{"MAP-T HEADLINE BENCHMARK - LINUX " + r.Kernel, "RATIO TO (MEDIAN OF 3 PAIRED RUNS OF 5S), RAW MEDIAN BELOW", "0123456789%.-"}
	texts = append(texts, VariantNames(Variants)...)
	for _, f := range Figures {
		texts = append(texts, f.Name, "("+f.Unit+")")
	}
	for _, s := range texts {
		for _, ch := range strings.ToUpper(s) {
			if _, ok := font5x7[ch]; !ok {
				t.Errorf("no glyph for %q (in %q)", ch, s)
			}
		}
	}
}

// TestResultsJSON: latest.json keeps every sample, so a run can be
// re-tabulated later.
func TestResultsJSON(t *testing.T) {
	r := sampleResults()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Markdown() != r.Markdown() || !strings.Contains(string(b), `"loss":0.2`) {
		t.Fatalf("round trip lost data:\n%s", b)
	}
}

// TestCompare: ratios and profiled parts of the variants both runs have,
// side by side.
func TestCompare(t *testing.T) {
	before := sampleResults()
	after := sampleResults()
	after.Date = before.Date.Add(time.Hour)
	after.Variants = []string{"plain", "map-t", "nft"}
	after.Samples["map-t"][Figures[0].Name] = []Sample{{Value: 27}, {Value: 9}, {Value: 18}}
	before.Profiles = []Profile{{Variant: "map-t", Figure: Figures[2].Name, Packets: 10, PathNS: 10000, Parts: map[string]int64{"nftables": 3000}}}
	after.Profiles = []Profile{{Variant: "map-t", Figure: Figures[2].Name, Packets: 10, PathNS: 8000, Parts: map[string]int64{"nftables": 500}}}
	md := Compare(before, after, "the guard went")
	hasLines(t, md,
		"Before: 2026-11-26 11:00 UTC (3 runs); after: 2026-11-26 12:00 UTC (3 runs). In between: the guard went.",
		"| variant | TCP c1 -> s: before | after | TCP s -> c1: before | after | UDP 64 B c1 -> s: before | after | UDP 64 B s -> c1: before | after |",
		"| plain | 20.0 Gbit/s | 20.0 Gbit/s | - | - | 300 kpps | 300 kpps | - | - |",
		"| map-t | 0.50 (0.50-0.50) | 0.90 (0.90-0.90) | - | - | 0.75 (0.25-1.00) | 0.75 (0.25-1.00) | - | - |",
		"| variant | path: before | after | nftables rules: before | after |",
		"| map-t | 1000 | 800 | 300 | 50 |",
	)
	// Only variants both runs have; tayga is only before, nft only after.
	if strings.Contains(md, "| tayga |") || strings.Contains(md, "| nft |") {
		t.Errorf("variant of one run only:\n%s", md)
	}
	if strings.Contains(md, "UDP 64 B s -> c1, CPU") {
		t.Errorf("parts of an unprofiled figure:\n%s", md)
	}
}

func TestInterleave(t *testing.T) {
	xs := []string{"plain", "nft", "map-t"}
	if got := interleave(xs, 1); !slices.Equal(got, xs) {
		t.Errorf("run 1: %v", got)
	}
	if got := interleave(xs, 2); !slices.Equal(got, []string{"map-t", "nft", "plain"}) || xs[0] != "plain" {
		t.Errorf("run 2: %v (input now %v)", got, xs)
	}
	if got := interleave(xs, 3); !slices.Equal(got, xs) {
		t.Errorf("run 3: %v", got)
	}
}

// TestCostRatio: per profiled run, the baseline's ns per packet over the
// variant's, with and without the receiver's wake-ups; the table and
// the targets line show them.
func TestCostRatio(t *testing.T) {
	r := sampleResults()
	run := func(pk, ns, wake int64) RunCost { return RunCost{Packets: pk, PathNS: ns, WakeupNS: wake} }
	r.Profiles = []Profile{
		{Variant: "plain", Figure: Figures[2].Name, Packets: 30, PathNS: 150, Parts: map[string]int64{"wakeup": 30},
			Runs: []RunCost{run(10, 50, 10), run(10, 40, 10), run(10, 60, 10)}},
		// 5/10, 4/5, 6/6 -> 0.5, 0.8, 1.0; without wake-ups
		// 4/8, 3/4, 5/5 -> 0.5, 0.75, 1.0.
		{Variant: "map-t", Figure: Figures[2].Name, Packets: 30, PathNS: 210, Parts: map[string]int64{"wakeup": 30},
			Runs: []RunCost{run(10, 100, 20), run(10, 50, 10), run(10, 60, 10)}},
		// Unpaired: merged 150/30 over 100/10, and 120/30 over 90/10.
		{Variant: "tayga", Figure: Figures[2].Name, Packets: 10, PathNS: 100, Parts: map[string]int64{"wakeup": 10}},
	}
	for _, tc := range []struct {
		v           string
		f           Figure
		noWake      bool
		lo, med, hi float64
		ok          bool
	}{
		{"map-t", Figures[2], false, 0.5, 0.8, 1, true},
		{"map-t", Figures[2], true, 0.5, 0.75, 1, true},
		{"tayga", Figures[2], false, 0.5, 0.5, 0.5, true},
		{"tayga", Figures[2], true, 4.0 / 9, 4.0 / 9, 4.0 / 9, true},
		{"map-t", Figures[3], false, 0, 0, 0, false},
	} {
		lo, med, hi, ok := r.CostRatio(tc.v, tc.f, tc.noWake)
		if ok != tc.ok || lo != tc.lo || med != tc.med || hi != tc.hi {
			t.Errorf("CostRatio(%s, %s, %v) = %v %v %v %v, want %v %v %v %v", tc.v, tc.f.Name, tc.noWake, lo, med, hi, ok, tc.lo, tc.med, tc.hi, tc.ok)
		}
	}
	md := r.Markdown()
	for _, want := range []string{
		"| variant | UDP 64 B c1 -> s | UDP 64 B s -> c1 | UDP 64 B c1 -> s, no wake-ups | UDP 64 B s -> c1, no wake-ups |",
		"| map-t | 0.80 (0.50-1.00) | - | 0.75 (0.50-1.00) | - |",
		"| tayga | 0.50 | - | 0.44 | - |",
		"UDP 64 B c1 -> s 0.75 (0.25-1.00), target 0.90: not met (at equal CPU 0.80 (0.50-1.00); without the receiver's wake-ups 0.75 (0.50-1.00)).",
		"\"No wake-ups\": the same without",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q:\n%s", want, md)
		}
	}
	// Results from before the wake-ups were told apart show neither
	// the columns nor the figure.
	for i := range r.Profiles {
		r.Profiles[i].Parts = nil
	}
	md = r.Markdown()
	for _, unwanted := range []string{"no wake-ups", "without the receiver's wake-ups", "No wake-ups"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("%q without wake-up profiles:\n%s", unwanted, md)
		}
	}
	if !strings.Contains(md, "| map-t | 0.80 (0.50-1.00) | - |\n") {
		t.Errorf("cost table without wake-up profiles:\n%s", md)
	}
	// A run without packets has no ratio.
	r.Profiles[0].Runs[1].Packets = 0
	if _, _, _, ok := r.CostRatio("map-t", Figures[2], false); ok {
		t.Error("ratio from a run without packets")
	}
}

// hasLines fails t for each of wants that does not end a line of md.
func hasLines(t *testing.T, md string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(md, want+"\n") {
			t.Errorf("no line %q:\n%s", want, md)
		}
	}
}
