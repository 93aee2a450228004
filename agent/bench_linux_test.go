package agent

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

// benchCE is a CE namespace with a WAN, for benchmarks of the kernel side
// of the agent.
func benchCE(b *testing.B) *testenv.NS {
	testenv.Require(b, "ip")
	l := testenv.New(b)
	ce, isp := l.NS("ce"), l.NS("isp")
	l.Veth(ce, "wan", isp, "eth0")
	return ce
}

func seedDesired(b *testing.B, prefix string) *Desired {
	r, err := mapt.ParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0")
	if err != nil {
		b.Fatal(err)
	}
	d, err := Derive([]mapt.Domain{{Name: "seed", DMR: netip.MustParsePrefix("64:ff9b::/96"), Rules: []mapt.Rule{r}}}, netip.MustParsePrefix(prefix))
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkApply measures what the agent adds to a DHCPv6 exchange: from
// a lease to a CE ready to translate (uplink, nat table, translator loaded
// and attached), and from a changed lease to the new binding applied. The
// baseline is one netlink round trip (a link lookup) in the same run.
func BenchmarkApply(b *testing.B) {
	ce := benchCE(b)
	d11b, d774 := seedDesired(b, "2001:db8:ce:11b::/64"), seedDesired(b, "2001:db8:ce:774::/64")
	// Pinned as in production, but on a BPF filesystem of the benchmark's
	// own: the default root would mount one on the host's /sys/fs/bpf
	// (this process is in the initial mount namespace) and leave it.
	cfg := Config{WAN: "wan", Uplink: DefaultUplink, PinRoot: testenv.BPFFS(b), Logger: slog.New(slog.DiscardHandler)}
	run := func(b *testing.B, fn func(k *linuxKernel) error) {
		err := ce.Do(func() error {
			kk, _, err := newKernel(cfg)
			if err != nil {
				return err
			}
			k := kk.(*linuxKernel)
			defer k.close()
			defer k.withdraw(nil)
			return fn(k)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("baseline-netlink-lookup", func(b *testing.B) {
		run(b, func(k *linuxKernel) error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := k.h.LinkByName("wan"); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("first-binding", func(b *testing.B) {
		run(b, func(k *linuxKernel) error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := k.apply(d11b, nil, false); err != nil {
					return err
				}
				b.StopTimer()
				if err := k.withdraw(d11b); err != nil {
					return err
				}
				b.StartTimer()
			}
			return nil
		})
	})
	b.Run("changed-binding", func(b *testing.B) {
		run(b, func(k *linuxKernel) error {
			if err := k.apply(d11b, nil, false); err != nil {
				return err
			}
			old := d11b
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := d774
				if i%2 == 1 {
					d = d11b
				}
				if err := k.apply(d, old, false); err != nil {
					return err
				}
				old = d
			}
			return nil
		})
	})
	b.Run("same-binding", func(b *testing.B) {
		run(b, func(k *linuxKernel) error {
			if err := k.apply(d11b, nil, false); err != nil {
				return err
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := k.apply(d11b, d11b, false); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
