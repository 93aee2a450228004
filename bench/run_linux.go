package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mapt-go/mapt/testenv"
)

// Config is one run of the benchmark.
type Config struct {
	Bin      string        // directory holding ce-agent and br
	Duration time.Duration // of each measurement, whole seconds, >= 1 s
	Reps     int           // repetitions of each measurement
	Variants []Variant     // default: Variants
	Logf     func(format string, args ...any)
	// Profile: after the measured repetitions, one more UDP run of each
	// figure and variant under `perf record -e cpu-clock -a -g` (see
	// Profile). Needs perf.
	Profile bool
	// ProfileRuns is the number of profiled runs of each figure and
	// variant, merged (default 1).
	ProfileRuns int
	// PerfDir keeps the perf.data files there; empty: a temporary
	// directory, removed.
	PerfDir string
}

// Run brings every variant up (in its own namespaces, all at once), then
// measures each figure Reps times, interleaving the variants, and returns
// the samples. Everything is torn down by t's cleanups.
func Run(t testenv.T, c Config) (*Results, error) {
	t.Helper()
	c, err := c.check()
	if err != nil {
		return nil, err
	}
	return MeasureAll(UpAll(t, c), c)
}

func (c Config) check() (Config, error) {
	if c.Duration < time.Second {
		return c, fmt.Errorf("bench: duration %s: want at least 1s", c.Duration)
	}
	if c.Reps < 1 {
		return c, fmt.Errorf("bench: reps %d: want at least 1", c.Reps)
	}
	if c.Variants == nil {
		c.Variants = Variants
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c, nil
}

// UpAll brings every variant of c up, each in its own namespaces.
func UpAll(t testenv.T, c Config) []*Path {
	t.Helper()
	c, err := c.check()
	if err != nil {
		t.Fatal(err)
	}
	var paths []*Path
	for _, v := range c.Variants {
		start := time.Now()
		paths = append(paths, v.Up(t, c.Bin))
		c.Logf("bench: %s up in %s", v.Name, time.Since(start).Round(time.Millisecond))
	}
	return paths
}

// MeasureAll measures every figure on every path c.Reps times, the paths
// interleaved so that a burst of load elsewhere on the machine hits them
// alike. The first path is the baseline.
func MeasureAll(paths []*Path, c Config) (*Results, error) {
	c, err := c.check()
	if err != nil {
		return nil, err
	}
	r := &Results{Kernel: kernel(), Date: time.Now().UTC(), Duration: c.Duration.Truncate(time.Second), Reps: c.Reps, CPUs: runtime.NumCPU()}
	for _, p := range paths {
		r.Variants = append(r.Variants, p.Variant)
	}
	for rep := 1; rep <= c.Reps; rep++ {
		r.Load = append(r.Load, loadAverage())
		for _, f := range Figures {
			for _, p := range interleave(paths, rep) {
				s, err := Measure(p, f, c.Duration)
				if err != nil {
					return r, err
				}
				r.Add(p.Variant, f, s)
				loss := ""
				if f.UDP {
					loss = fmt.Sprintf(" (loss %.0f%%)", 100*s.Loss)
				}
				c.Logf("bench: run %d/%d %-18s %-7s %8s %s%s", rep, c.Reps, f.Name, p.Variant, formatValue(s.Value), f.Unit, loss)
			}
		}
	}
	if c.Profile {
		if err := profileAll(r, paths, c); err != nil {
			return r, err
		}
	}
	return r, nil
}

// iperfArgs is the iperf3 client's command line for a figure.
func iperfArgs(f Figure, secs int) []string {
	args := []string{"iperf3", "-c", testenv.SeedServer, "-J", "--connect-timeout", "5000", "-t", strconv.Itoa(secs)}
	if f.Reverse {
		args = append(args, "-R")
	}
	if f.UDP {
		args = append(args, "-u", "-l", "64", "-b", "0")
	} else if secs >= 3 {
		args = append(args, "-O", "1")
	}
	return args
}

// Measure runs iperf3 for one figure across the path. TCP: the receiver's
// goodput, the first second left out (slow start) when the measurement
// lasts 3 s or more. UDP: 64-byte payloads at an unlimited offered rate;
// the packets that reached the receiving namespace's eth0 per second, and
// the fraction of those sent that did not.
func Measure(p *Path, f Figure, d time.Duration) (Sample, error) {
	args := iperfArgs(f, int(d/time.Second))
	receiver := p.Server
	if f.Reverse {
		receiver = p.Client
	}
	before, err := rxPackets(receiver)
	if err != nil {
		return Sample{}, err
	}
	out, runErr := p.Client.Exec(args...)
	after, err := rxPackets(receiver)
	if err != nil {
		return Sample{}, err
	}
	res, err := ParseIperf([]byte(out), f.UDP)
	if err != nil {
		if runErr != nil {
			return Sample{}, fmt.Errorf("bench: %s: %s: %w (%v)", p.Variant, f.Name, err, runErr)
		}
		return Sample{}, fmt.Errorf("bench: %s: %s: %w", p.Variant, f.Name, err)
	}
	if !f.UDP {
		return Sample{Value: res.ReceivedBPS / 1e9}, nil
	}
	return udpSample(res, after-before), nil
}

// udpSample turns a UDP run into a rate in kpps and a loss fraction.
// delivered also counts a few packets of iperf3's control connection,
// hence the clamp.
func udpSample(res IperfResult, delivered uint64) Sample {
	s := Sample{Value: float64(delivered) / res.Seconds / 1e3}
	if res.SentPackets > 0 {
		s.Loss = max(0, 1-float64(delivered)/float64(res.SentPackets))
	}
	return s
}

func rxPackets(ns *testenv.NS) (uint64, error) {
	out, err := ns.Exec("cat", "/sys/class/net/eth0/statistics/rx_packets")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: %s rx_packets %q: %w", ns.Short, out, err)
	}
	return n, nil
}

// loadAverage is the machine's 1-minute load average, or -1.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// kernel is the running kernel's release.
func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
