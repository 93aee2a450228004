package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/mapt-go/mapt/mapt"
)

// BPF_PROG_TEST_RUN runs a program `repeat` times on the same skb, and our
// programs rewrite it, so each measured run is a separate call with
// repeat 1; the kernel times the program alone. The pass-through program
// is measured the same way on the same input, interleaved, and the ratio
// is reported: these machines are shared and noisy.
func benchPair(b *testing.B, prog, base *ebpf.Program, in []byte, want uint32) {
	b.Helper()
	var tp, tb time.Duration
	for i := 0; i < b.N; i++ {
		ret, d, err := prog.Benchmark(in, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("verdict %d, want %d", ret, want)
		}
		tp += d
		if _, d, err = base.Benchmark(in, 1, nil); err != nil {
			b.Fatal(err)
		}
		tb += d
	}
	b.ReportMetric(float64(tp.Nanoseconds())/float64(b.N), "ns/pkt")
	b.ReportMetric(float64(tb.Nanoseconds())/float64(b.N), "pass-ns/pkt")
	b.ReportMetric(float64(tp)/float64(max(tb, 1)), "x-pass")
}

// BenchmarkPaths measures each translation path for a small TCP packet
// (64-byte IPv4 frame) and a 1500-byte one.
func BenchmarkPaths(b *testing.B) {
	ce := load(b, ceConfig())
	br := load(b, brConfig())
	base := ce.coll.Programs["passthrough"]
	me := ceBinding.IPv4.Addr()
	our := portOf(b, ceBinding.PortSet, 3)
	sizes := []struct {
		name   string
		v4, v6 int // TCP payload for the IPv4 and IPv6 packet
	}{{"64", 10, 10}, {"1500", 1460, 1440}}
	for _, sz := range sizes {
		paths := []struct {
			name string
			prog *ebpf.Program
			in   []byte
			want uint32
		}{
			{"ce-4to6", ce.Prog4to6(), pkt4(b, me, serverV4, l4{"tcp", our, 443, sz.v4}, nil), actRedirect},
			{"ce-6to4", ce.Prog6to4(), pkt6(b, srvMAP, ceBinding.MAPAddress, l4{"tcp", 443, our, sz.v6}, nil), actOK},
			{"br-6to4", br.Prog6to4(), pkt6(b, ceBinding.MAPAddress, srvMAP, l4{"tcp", our, 443, sz.v6}, nil), actOK},
			{"br-4to6", br.Prog4to6(), pkt4(b, serverV4, me, l4{"tcp", 443, our, sz.v4}, nil), actOK},
		}
		for _, p := range paths {
			b.Run(fmt.Sprintf("%s/%s", p.name, sz.name), func(b *testing.B) {
				benchPair(b, p.prog, base, p.in, p.want)
			})
		}
	}
}

// oneToOne returns n EA-length-0 rules, one CE each (1:1 mode): CE i has
// 2001:db8:<i>::/64 and 10.<i>/32 (from 10.0.0.0/8 and up).
func oneToOne(n int) []mapt.Rule {
	rules := make([]mapt.Rule, n)
	for i := range rules {
		var a [16]byte
		copy(a[:], []byte{0x20, 0x01, 0x0d, 0xb8})
		binary.BigEndian.PutUint32(a[4:], uint32(i))
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], 0x0a000000+uint32(i))
		rules[i] = mapt.Rule{
			IPv6Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 64),
			IPv4Prefix: netip.PrefixFrom(netip.AddrFrom4(v), 32),
			PSIDOffset: 6,
			FMR:        true,
		}
	}
	return rules
}

type loadedBR struct {
	tr     *Translator
	load   time.Duration
	memory uint64
	err    error
}

var (
	brCacheMu sync.Mutex
	brCache   = map[int]*loadedBR{}
)

// brWithRules loads a BR with n rules once per test binary: the
// benchmark framework calls a benchmark several times.
func brWithRules(b *testing.B, n int) *loadedBR {
	brCacheMu.Lock()
	defer brCacheMu.Unlock()
	if l, ok := brCache[n]; ok {
		return l
	}
	l := &loadedBR{}
	rules := oneToOne(n)
	start := time.Now()
	l.tr, l.err = Load(Config{Mode: BR, DMR: dmr, FMRs: rules, Capacity: n})
	l.load = time.Since(start)
	if l.err == nil {
		l.memory, l.err = l.tr.MapMemory()
	}
	brCache[n] = l
	return l
}

// BenchmarkBRRules shows the BR's lookup cost staying flat from 1 to
// 1,000,000 FMRs, with the load time and map memory at each size.
func BenchmarkBRRules(b *testing.B) {
	for _, n := range []int{1, 1000, 1000000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			l := brWithRules(b, n)
			if l.err != nil {
				b.Fatal(l.err)
			}
			ce := oneToOne(n)[n/2]
			bind := mustDerive(ce, ce.IPv6Prefix)
			in := pkt6(b, bind.MAPAddress, mapt.Embed(dmr, serverV4), l4{"tcp", 40000, 443, 10}, nil)
			pass := load(b, ceConfig()).coll.Programs["passthrough"]
			benchPair(b, l.tr.Prog6to4(), pass, in, actOK)
			b.ReportMetric(l.load.Seconds(), "load-s")
			b.ReportMetric(float64(l.memory)/(1<<20), "map-MiB")
		})
	}
}
