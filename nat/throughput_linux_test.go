package nat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mapt-go/mapt/testenv"
)

// BenchmarkThroughput measures TCP throughput LAN -> sink through the CE
// (iperf3, 2 s per run) with this package's table, against the same lab
// with one plain address-only snat rule (conntrack and NAT, none of our
// slots or counters), measured in the same run. The ratio metric is ours
// / plain; the extra cost sits in the forward chain's one rule (the MSS
// clamp's SYN test), which every forwarded packet passes, and in the
// per-connection slot choice.
func BenchmarkThroughput(b *testing.B) {
	testenv.Require(b, "nft", "iperf3")
	lab := newNATLab(b)
	srv := lab.sink.Start("iperf3", "-s", "-B", sinkAddr.String())
	if !testenv.WaitFor(5*time.Second, func() bool {
		_, err := lab.sink.Exec("sh", "-c", "ss -ltn | grep -q :5201")
		return err == nil
	}) {
		b.Fatalf("iperf3 server did not start: %s", srv.Output())
	}
	plain := filepath.Join(b.TempDir(), "plain.nft")
	rules := fmt.Sprintf("table ip plain {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat;\n\t\toifname %q snat to 192.0.2.18\n\t}\n}\n", uplink)
	if err := os.WriteFile(plain, []byte(rules), 0o644); err != nil {
		b.Fatal(err)
	}
	nat, err := Open(int(lab.ce.Handle()), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nat.Close() })
	run := func() float64 {
		out := lab.lan.MustExec("iperf3", "-c", sinkAddr.String(), "-t", "2", "-J")
		var res struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			b.Fatal(err)
		}
		return res.End.SumReceived.BitsPerSecond
	}
	var ours, base float64
	for b.Loop() {
		lab.ce.MustExec("nft", "-f", plain)
		base += run()
		lab.ce.MustExec("nft", "delete", "table", "ip", "plain")
		if _, err := nat.Apply(ex1(b)); err != nil {
			b.Fatal(err)
		}
		ours += run()
		if err := nat.Teardown(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(ours/base, "x-plain-snat")
	b.ReportMetric(ours/float64(b.N)/1e9, "Gbit/s")
}
