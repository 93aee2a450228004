package bench

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/mapt-go/mapt/testenv"
)

// TestSmoke runs the whole benchmark with 1-second measurements: every
// variant comes up, its packets between CE and BR are the ones it claims
// (captured at the BR), and every figure is non-zero.
func TestSmoke(t *testing.T) {
	testenv.Require(t, "ip", "iperf3", "tayga", "nft", "kea-dhcp6", "tcpdump", "ping", "ss")
	cfg := Config{Bin: testenv.BuildAgentAndBR(t), Duration: time.Second, Reps: 1, Logf: t.Logf}
	// With perf, the profiles too (not required: not every machine has
	// it).
	if _, err := exec.LookPath("perf"); err == nil {
		cfg.Profile = true
	}
	paths := UpAll(t, cfg)
	if len(paths) != len(Variants) {
		t.Fatalf("%d paths, want %d", len(paths), len(Variants))
	}
	for _, p := range paths {
		checkWire(t, p)
	}
	res, err := MeasureAll(paths, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		for _, f := range Figures {
			s, ok := res.Median(p.Variant, f)
			if !ok || s.Value <= 0 {
				t.Errorf("%s %s: %+v, want a positive rate", p.Variant, f.Name, s)
			}
			if s.Loss < 0 || s.Loss >= 1 {
				t.Errorf("%s %s: loss %v, want in [0, 1)", p.Variant, f.Name, s.Loss)
			}
			if q, ok := res.Ratio(p.Variant, f); !ok || q <= 0 {
				t.Errorf("%s %s: no ratio to %s", p.Variant, f.Name, res.Variants[0])
			}
			if !cfg.Profile || !f.UDP {
				continue
			}
			pr, ok := res.Profile(p.Variant, f)
			if p.noProfile {
				if ok {
					t.Errorf("%s %s: profiled, but its path is in user space", p.Variant, f.Name)
				}
				continue
			}
			if !ok || pr.PathNS <= 0 || pr.Packets <= 0 || len(pr.Symbols) == 0 || len(pr.Runs) != 1 {
				t.Errorf("%s %s: profile %+v", p.Variant, f.Name, pr)
			}
			// The parts perf's call chains sort out: every path wakes
			// the receiving iperf3; the BR's source check runs only in
			// the lab's variants (which turn it on), on every packet
			// from the CE to the server. (From the server to the CE it
			// sees only the odd control packet, so no claim there.)
			if pr.Parts["wakeup"] <= 0 || pr.Runs[0].WakeupNS != pr.Parts["wakeup"] {
				t.Errorf("%s %s: no receiver wake-ups told apart: parts %v, runs %+v", p.Variant, f.Name, pr.Parts, pr.Runs)
			}
			lab := strings.HasPrefix(p.Variant, "map-t")
			if savi := pr.Parts["savi"]; (!lab && savi != 0) || (lab && !f.Reverse && savi <= 0) {
				t.Errorf("%s %s: source check time %d ns", p.Variant, f.Name, savi)
			}
		}
	}
	t.Logf("\n%s", res.Markdown())
}

// checkWire sends one datagram from c1 to s and checks, on the BR's
// CE-facing side, that it travelled with the variant's addresses (IPv6
// from CE 11b's MAP address with a source port in its port set when
// translated, IPv4 otherwise) and reached s intact.
func checkWire(t *testing.T, p *Path) {
	t.Helper()
	srv := p.Server.ListenPacket("udp4", testenv.SeedServer+":9999")
	capture := p.BR.Capture("eth0", "udp port 9999")
	c, err := p.Client.Dial("udp4", "", testenv.SeedServer+":9999", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("bench probe")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "bench probe" {
		t.Fatalf("%s: s got %q, %v", p.Variant, buf[:n], err)
	}
	pkts := capture.Packets()
	if len(pkts) != 1 {
		t.Fatalf("%s: captured %d packets at the BR, want 1", p.Variant, len(pkts))
	}
	var src, dst netip.Addr
	switch ip := pkts[0].NetworkLayer().(type) {
	case *layers.IPv4:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	case *layers.IPv6:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	default:
		t.Fatalf("%s: captured %v", p.Variant, pkts[0])
	}
	if src.String() != p.WANSource || dst.String() != p.WANDest {
		t.Fatalf("%s: on the wire %s -> %s, want %s -> %s", p.Variant, src, dst, p.WANSource, p.WANDest)
	}
	udp, ok := pkts[0].TransportLayer().(*layers.UDP)
	if !ok {
		t.Fatalf("%s: no UDP in %v", p.Variant, pkts[0])
	}
	if p.PortSet && (udp.SrcPort < 55296 || udp.SrcPort > 57343) {
		t.Fatalf("%s: source port %d outside CE 11b's port set 55296-57343", p.Variant, udp.SrcPort)
	}
}
