package nat

import (
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/mapt-go/mapt/testenv"
)

// BenchmarkApply measures Apply against the cheapest nftables request, a
// table listing (one netlink round trip), timed in the same run: the
// x-listing metric is the ratio. "noop" re-applies the applied binding
// (state read and compare only); "replace" alternates two bindings (one
// full transaction each, conntrack flush included).
func BenchmarkApply(b *testing.B) {
	testenv.Require(b, "nft")
	for _, bc := range []struct {
		name string
		a, c Config
	}{
		{"rfc7597-ex1", ex1(b), bindingConfig(b, "2001:db8::/40,192.0.2.0/24,16,a=6", "2001:db8:12:3500::/56", uplink, 1480)},
		{"seed-ce11b", seed11b(b, "2001:db8:ce:11b::/64"), seed11b(b, "2001:db8:ce:11c::/64")},
	} {
		l := testenv.New(b)
		ns := l.NS("ce")
		n, err := Open(int(ns.Handle()), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		if _, err := n.Apply(bc.a); err != nil {
			b.Fatal(err)
		}
		base := baseline(b, n.nft)
		report := func(b *testing.B, start time.Time) {
			per := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(per)/float64(base), "x-listing")
		}
		b.Run(bc.name+"/noop", func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				if changed, err := n.Apply(bc.a); err != nil || changed {
					b.Fatalf("changed %v, %v", changed, err)
				}
			}
			report(b, start)
		})
		b.Run(bc.name+"/replace", func(b *testing.B) {
			start := time.Now()
			i := 0
			for b.Loop() {
				cfg := bc.a
				if i%2 == 0 {
					cfg = bc.c
				}
				i++
				if _, err := n.Apply(cfg); err != nil {
					b.Fatal(err)
				}
			}
			report(b, start)
		})
	}
}

// baseline is the mean duration of one table listing.
func baseline(b *testing.B, c *nftables.Conn) time.Duration {
	const n = 200
	start := time.Now()
	for range n {
		if _, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / n
}
