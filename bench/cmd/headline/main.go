// Command headline runs the project's headline benchmark (`make bench`):
// TCP and small-packet UDP across the seed's topology through plain IPv4
// routing, the parts of MAP-T's CE added one at a time (our nftables
// table, the uplink TUN device), our MAP-T (CE + BR) and tayga,
// interleaved in one run, then profiles each UDP figure with perf, and
// writes the tables, the chart and every sample (JSON) to bench/results/
// (see package bench).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mapt-go/mapt/bench"
	"github.com/mapt-go/mapt/testenv"
)

func main() {
	bin := flag.String("bin", "bin", "directory with ce-agent and br")
	out := flag.String("out", "bench/results", "directory for latest.md, latest.png and latest.json (every sample)")
	dur := flag.Duration("t", 5*time.Second, "length of each measurement (whole seconds)")
	reps := flag.Int("reps", 5, "repetitions of each measurement (the median is reported)")
	from := flag.String("from", "", "measure nothing: render the results of an earlier run (its latest.json)")
	readme := flag.String("readme", "", "also put the table into this file, between "+bench.ReadmeBegin+" and "+bench.ReadmeEnd)
	variants := flag.String("variants", "", "comma-separated variants to run (the baseline always runs; default: all of "+strings.Join(bench.VariantNames(bench.Variants), ",")+")")
	profile := flag.Bool("profile", true, "profile one more UDP run of each variant with perf (skipped when perf is missing)")
	profileRuns := flag.Int("profile-runs", 3, "profiled UDP runs of each variant and figure, merged")
	perfDir := flag.String("perf-dir", "", "keep the perf.data files in this directory")
	before := flag.String("before", "", "an earlier run's JSON to compare with in latest.md (before and after a change)")
	beforeNote := flag.String("before-note", "", "what changed between -before and this run")
	flag.Parse()
	// Interrupted or failing, the Program tears every variant down.
	r, abs := testenv.MustProgram("bench", *bin)

	var res *bench.Results
	var err error
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil {
			r.Fatal(err)
		}
		res = &bench.Results{}
		if err := json.Unmarshal(b, res); err != nil {
			r.Fatalf("bench: %s: %v", *from, err)
		}
	} else {
		cfg := bench.Config{Bin: abs, Duration: *dur, Reps: *reps, Logf: r.Logf, Profile: *profile, ProfileRuns: *profileRuns, PerfDir: *perfDir}
		if *variants != "" {
			if cfg.Variants, err = bench.SelectVariants(strings.Split(*variants, ",")); err != nil {
				r.Fatal(err)
			}
		}
		if _, err := exec.LookPath("perf"); err != nil && cfg.Profile {
			r.Logf("bench: perf not found (Debian package linux-perf): no profiles")
			cfg.Profile = false
		}
		res, err = bench.Run(r, cfg)
		if err != nil {
			r.Fatal(err)
		}
	}
	md := "# Headline benchmark\n\n" + res.Markdown() + "\n" + legend
	if *before != "" {
		b, err := os.ReadFile(*before)
		if err != nil {
			r.Fatal(err)
		}
		var old bench.Results
		if err := json.Unmarshal(b, &old); err != nil {
			r.Fatalf("bench: %s: %v", *before, err)
		}
		md += "\n## Before and after\n\n" + bench.Compare(&old, res, *beforeNote)
	}
	var png bytes.Buffer
	if err := res.WriteChart(&png); err != nil {
		r.Fatal(err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		r.Fatal(err)
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		r.Fatal(err)
	}
	for name, b := range map[string][]byte{"latest.md": []byte(md), "latest.png": png.Bytes(), "latest.json": append(raw, '\n')} {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			r.Fatal(err)
		}
	}
	fmt.Println(md)
	fmt.Printf("written: %s/latest.{md,png,json}\n", *out)
	if *readme != "" {
		doc, err := os.ReadFile(*readme)
		if err != nil {
			r.Fatal(err)
		}
		updated, err := bench.ReplaceMarked(string(doc), bench.ReadmeBegin, bench.ReadmeEnd, res.Summary()+"\n")
		if err != nil {
			r.Fatalf("%s: %v", *readme, err)
		}
		if err := os.WriteFile(*readme, []byte(updated), 0o644); err != nil {
			r.Fatal(err)
		}
		fmt.Printf("updated the table in %s\n", *readme)
	}
	r.Exit(0)
}

const legend = `- plain: IPv4 routing of the same topology, no translation; CE 11b
  masquerades its LAN onto its WAN address (198.51.100.11) like a home
  router (conntrack, NAT), the BR routes. The limit this machine allows.
- nft: plain with our nftables table (package nat, as ce-agent programs
  it for CE 11b: slots over the port set 55296-57343, guard, MSS clamp to
  1440, mesh chains) on the WAN in place of masquerade.
- nft+tun: nft with ce-agent's uplink: a TUN device mapt0 (MTU 1480,
  192.0.2.8, the IPv4 default route) holds the table, and two TC programs
  (TCX) move IPv4 between it and the WAN untranslated with the helpers
  the translator uses (bpf_skb_change_head + bpf_redirect_neigh out,
  bpf_redirect into the uplink's ingress back).
- map-t: our ce-agent (nftables SNAT into the port set + TC-eBPF
  translator) and br, provisioned zero-touch by Kea as in ` + "`make demo`" + `.
- map-t-wan: map-t with ce-agent --inbound wan (opt-in): ce_ingress lets
  what it translates go on into the CE's stack on the WAN instead of
  redirecting it into the uplink's ingress (bpf_redirect with
  BPF_F_INGRESS), where map-t receives it a second time from the CPU's
  backlog.
- tayga: tayga 0.9.2 (userspace SIIT over TUN) as both translators: the CE
  NATs into 192.0.2.8:55296-57343 and its tayga maps that to CE 11b's MAP
  address with a static map and the destination into 2001:db8:64::/96
  (tayga will not use 64:ff9b::/96 with documentation addresses); the BR's
  tayga maps back. Same packet sizes on the wire as MAP-T, no port-set
  check.
- TCP: one iperf3 stream, goodput at the receiver, first second omitted;
  offloads on (GSO/GRO on veth), so per-packet costs are spread over
  64 KB super-packets. tayga's TUN has no offloads.
- UDP: iperf3, 64-byte payloads, unlimited offered rate; rate = packets
  that reached the receiver's interface per second, loss = share of the
  packets sent that did not. veth forwards in the sender's softirq, so at
  0 % loss the rate is what one core does with the whole path charged to
  it: the per-packet cost of the path.
- Each variant runs in its own namespaces of the same topology, all up at
  once, and the measurements are interleaved, in reverse order every
  other run (plain, nft, nft+tun, map-t, tayga, then tayga, map-t, ...,
  plain). A ratio is the median (min-max) of the per-run ratios (each
  run against the plain run of the same round). The machine is shared,
  so raw numbers move with its load; the ratios are the figures to
  compare.
- Profiles: perf record -e cpu-clock -a -g (no hardware counters here)
  during more UDP runs of each figure and variant after the measured
  ones, interleaved the same way; self time of the sending process and
  ksoftirqd per packet sent, grouped by the functions' names
  (bench.Parts). "At equal CPU" is plain's CPU time per packet over the
  variant's, run by run: the throughput ratio on a core of their own.
  tayga's path runs in its user-space processes and is not profiled.
  cpu-clock in a VM: samples that fall in a region with interrupts off
  land where they come back on (_raw_spin_unlock_irqrestore,
  finish_task_switch), so those symbols stand for the code before them.
- BR source check: the samples under savi_ingress, the BR's optional
  check that a CE's packets come from the neighbour its prefix is routed
  to (br.source-check: neighbor, on in the lab as in make demo): the
  program and the FIB lookup it makes per packet. Plain routing checks
  no source.
- Receiver wake-ups: the samples under sock_def_readable, where the
  path, having queued a datagram on the receiving iperf3's socket, wakes
  it from select (try_to_wake_up, an IPI to the other core, interrupts
  off). It is the test endpoints' cost: a router forwards to other
  machines and wakes no one. It is also the noisiest part of the path
  (it hangs on whether, and how deeply, the receiver's core is asleep
  when a datagram comes); "no wake-ups" is the equal-CPU ratio without
  it on either side.
`
