// Command headline runs the project's headline benchmark (`make bench`):
// TCP and small-packet UDP across the seed's topology through plain IPv4
// routing, our MAP-T (CE + BR) and tayga, interleaved in one run, and
// writes the table, the chart and every sample (JSON) to bench/results/
// (see package bench).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mapt-go/mapt/bench"
	"github.com/mapt-go/mapt/testenv"
)

func main() {
	bin := flag.String("bin", "bin", "directory with ce-agent and br")
	out := flag.String("out", "bench/results", "directory for latest.md, latest.png and latest.json (every sample)")
	dur := flag.Duration("t", 5*time.Second, "length of each measurement (whole seconds)")
	reps := flag.Int("reps", 3, "repetitions of each measurement (the median is reported)")
	from := flag.String("from", "", "measure nothing: render the results of an earlier run (its latest.json)")
	readme := flag.String("readme", "", "also put the table into this file, between "+bench.ReadmeBegin+" and "+bench.ReadmeEnd)
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	// Interrupted or failing, the Program tears every variant down.
	r, err := testenv.NewProgram("bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}

	var res *bench.Results
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
		res, err = bench.Run(r, bench.Config{Bin: abs, Duration: *dur, Reps: *reps, Logf: r.Logf})
		if err != nil {
			r.Fatal(err)
		}
	}
	md := "# Headline benchmark\n\n" + res.Markdown() + "\n" + legend
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
		updated, err := bench.ReplaceMarked(string(doc), bench.ReadmeBegin, bench.ReadmeEnd, res.Markdown()+"\n")
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
  router, the BR routes. The limit this machine allows.
- map-t: our ce-agent (nftables SNAT into the port set + TC-eBPF
  translator) and br, provisioned zero-touch by Kea as in ` + "`make demo`" + `.
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
- Each variant runs in its own namespaces of the same topology, all three
  up at once, and the measurements are interleaved (plain, map-t, tayga,
  plain, ...). Cells: median (min-max) of the runs; a ratio is the median
  of the per-run ratios (each run against the plain run measured just
  before it). The machine is shared, so raw numbers move with its load;
  the ratios are the figures to compare.
`
