package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// profileAll takes one profile of each UDP figure on each path, the
// paths interleaved as the measurements are.
func profileAll(r *Results, paths []*Path, c Config) error {
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("bench: profile: perf not found (Debian package linux-perf): %w", err)
	}
	dir := c.PerfDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "bench-perf-")
		if err != nil {
			return fmt.Errorf("bench: profile: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: profile: %w", err)
	}
	runs := max(c.ProfileRuns, 1)
	merged := map[[2]string]int{}
	for run := 1; run <= runs; run++ {
		for i, f := range Figures {
			if !f.UDP {
				continue
			}
			for _, p := range interleave(paths, run) {
				if p.noProfile {
					continue
				}
				file := filepath.Join(dir, fmt.Sprintf("perf-%d-%s-%d.data", i, strings.ReplaceAll(p.Variant, "+", "-"), run))
				prof, err := profileRun(p, f, c.Duration, file)
				if err != nil {
					return err
				}
				c.Logf("bench: profile %d/%d %-18s %-7s %6.0f ns/packet on the path, %d packets, other load %.0f%%", run, runs, f.Name, p.Variant,
					prof.perPacket(prof.PathNS), prof.Packets, 100*prof.otherShare())
				key := [2]string{p.Variant, f.Name}
				if j, ok := merged[key]; ok {
					r.Profiles[j].add(prof)
				} else {
					merged[key] = len(r.Profiles)
					r.Profiles = append(r.Profiles, prof)
				}
			}
		}
	}
	for i := range r.Profiles {
		r.Profiles[i].trim()
	}
	r.ProfileRuns = runs
	return nil
}

// profileRun runs one UDP figure on p with perf recording the whole
// machine, and reads the profile back while p is still up (so that the
// BPF programs' symbols resolve).
func profileRun(p *Path, f Figure, d time.Duration, file string) (Profile, error) {
	if p.iperf == nil {
		return Profile{}, fmt.Errorf("bench: %s: no iperf3 server to profile", p.Variant)
	}
	var perfOut bytes.Buffer
	rec := exec.Command("perf", "record", "-e", "cpu-clock", "-a", "-g", "-q", "-o", file)
	rec.Stdout, rec.Stderr = &perfOut, &perfOut
	if err := rec.Start(); err != nil {
		return Profile{}, fmt.Errorf("bench: perf record: %w", err)
	}
	stop := func() error {
		rec.Process.Signal(syscall.SIGINT)
		if err := rec.Wait(); err != nil && !strings.Contains(err.Error(), "interrupt") {
			return fmt.Errorf("bench: perf record: %w: %s", err, perfOut.Bytes())
		}
		return nil
	}
	// perf is sampling once it has opened its events; samples before
	// the client starts are not the sender's.
	time.Sleep(500 * time.Millisecond)

	var out bytes.Buffer
	client := exec.Command("ip", append([]string{"netns", "exec", p.Client.Name}, iperfArgs(f, int(d/time.Second))...)...)
	client.Stdout, client.Stderr = &out, &out
	if err := client.Start(); err != nil {
		stop()
		return Profile{}, fmt.Errorf("bench: %s: iperf3: %w", p.Variant, err)
	}
	sender, receiver := client.Process.Pid, p.iperf.Cmd.Process.Pid
	if f.Reverse {
		sender, receiver = receiver, sender
	}
	runErr := client.Wait()
	if err := stop(); err != nil {
		return Profile{}, err
	}
	res, err := ParseIperf(out.Bytes(), true)
	if err != nil {
		return Profile{}, fmt.Errorf("bench: %s: %s: %w (%v)", p.Variant, f.Name, err, runErr)
	}
	rep, err := exec.Command("perf", append([]string{"report", "-i", file}, perfArgs...)...).Output()
	if err != nil {
		return Profile{}, fmt.Errorf("bench: perf report %s: %w", file, err)
	}
	rows, err := parsePerfReport(rep)
	if err != nil {
		return Profile{}, err
	}
	prof := newProfile(rows, sender, receiver)
	prof.Variant, prof.Figure, prof.Packets = p.Variant, f.Name, res.SentPackets
	prof.Runs = []RunCost{{Packets: prof.Packets, PathNS: prof.PathNS, WakeupNS: prof.Parts["wakeup"]}}
	if prof.PathNS == 0 {
		return prof, fmt.Errorf("bench: %s: %s: perf saw no samples of the sender (pid %d)", p.Variant, f.Name, sender)
	}
	return prof, nil
}
