package dataplane

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/mapt"
)

// TestUpdate checks that Update changes what the programs do: FMRs come
// and go, the binding changes, and bad updates are refused.
func TestUpdate(t *testing.T) {
	tr := load(t, ceConfig())
	me := ceBinding.IPv4.Addr()
	our := portOf(t, ceBinding.PortSet, 3)
	peerPort := portOf(t, peerPS, 3)
	in := pkt4(t, me, peerV4, l4{"udp", our, peerPort, 10}, nil)

	dst := func() netip.Addr {
		t.Helper()
		ret, out := run(t, tr.Prog4to6(), in)
		if ret != actRedirect {
			t.Fatalf("verdict %d", ret)
		}
		return addr(decode(t, out).Layer(layers.LayerTypeIPv6).(*layers.IPv6).DstIP)
	}
	if got, want := dst(), mapV4(t, ruleA, peerV4, peerPort); got != want {
		t.Fatalf("with FMR: dst %v, want mesh %v", got, want)
	}
	noFMR := ceConfig()
	noFMR.FMRs = []mapt.Rule{ruleFull}
	if err := tr.Update(noFMR); err != nil {
		t.Fatal(err)
	}
	if got, want := dst(), mapt.Embed(dmr, peerV4); got != want {
		t.Fatalf("without FMR: dst %v, want DMR %v", got, want)
	}
	// A new binding: the old source address escaped the NAT now.
	moved := ceConfig()
	moved.Binding = mustDerive(ruleA, netip.MustParsePrefix("2001:db8:13:3400::/56"))
	if err := tr.Update(moved); err != nil {
		t.Fatal(err)
	}
	d := counterDelta(t, tr, func() {
		if ret, _ := run(t, tr.Prog4to6(), in); ret != actShot {
			t.Errorf("old source after rebinding: verdict %d, want drop", ret)
		}
	})
	if d["src_not_ours"] != 1 {
		t.Errorf("counters %v, want src_not_ours", d)
	}

	// A config built from scratch keeps the devices Attach recorded.
	withDev := ceConfig()
	withDev.IPv6Side, withDev.IPv4Side = Link{Ifindex: 7}, Link{Ifindex: 8, L3: true}
	if err := tr.Update(withDev); err != nil {
		t.Fatal(err)
	}
	fresh := ceConfig()
	fresh.IPv6Side, fresh.IPv4Side = Link{}, Link{}
	if err := tr.Update(fresh); err != nil {
		t.Fatal(err)
	}
	if c := tr.Config(); c.IPv6Side.Ifindex != 7 || c.IPv4Side.Ifindex != 8 || !c.IPv4Side.L3 {
		t.Errorf("devices after update: %+v %+v, want 7 and 8 (L3)", c.IPv6Side, c.IPv4Side)
	}

	if err := tr.Update(brConfig()); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Errorf("mode change: error %v", err)
	}
	big := ceConfig()
	big.Capacity = 1
	small, err := Load(big)
	if err != nil {
		if !strings.Contains(err.Error(), "capacity") {
			t.Fatalf("load beyond capacity: %v", err)
		}
	} else {
		small.Close()
		t.Fatal("load with 4 rules and capacity 1 succeeded")
	}
}

// TestUpdateAtomic flips between two bindings while packets run: every
// packet must see one whole configuration, never a mix.
func TestUpdateAtomic(t *testing.T) {
	a := ceConfig()
	b := ceConfig()
	b.Binding = mustDerive(ruleA, netip.MustParsePrefix("2001:db8:99:4500::/56"))
	tr := load(t, a)
	inA := pkt4(t, a.Binding.IPv4.Addr(), serverV4, l4{"tcp", portOf(t, a.Binding.PortSet, 1), 443, 10}, nil)
	inB := pkt4(t, b.Binding.IPv4.Addr(), serverV4, l4{"tcp", portOf(t, b.Binding.PortSet, 1), 443, 10}, nil)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var updErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cfg := a
			if i%2 == 1 {
				cfg = b
			}
			if err := tr.Update(cfg); err != nil {
				updErr = err
				return
			}
		}
	}()
	seen := map[string]int{}
	for i := 0; i < 3000; i++ {
		for j, in := range [][]byte{inA, inB} {
			ret, out := run(t, tr.Prog4to6(), in)
			switch ret {
			case actShot:
				seen["drop"]++
			case actRedirect:
				src := addr(decode(t, out).Layer(layers.LayerTypeIPv6).(*layers.IPv6).SrcIP)
				want := []netip.Addr{a.Binding.MAPAddress, b.Binding.MAPAddress}[j]
				if src != want {
					t.Fatalf("packet %d from binding %d translated to %v, want %v: torn configuration", i, j, src, want)
				}
				seen["ok"]++
			default:
				t.Fatalf("verdict %d", ret)
			}
		}
	}
	close(stop)
	wg.Wait()
	if updErr != nil {
		t.Fatal(updErr)
	}
	if seen["ok"] == 0 || seen["drop"] == 0 {
		t.Errorf("outcomes %v: the updates did not interleave with the packets", seen)
	}
}

// TestThousandOneToOneFMRs binds a CE with 1,000 1:1 FMRs (EA length 0,
// one per peer) and sends to the last of them. The rule hashes are
// preallocated at this size: on MIPS, maps allocated on demand refill
// their free lists only on a timer tick, and fast inserts failed with
// ENOMEM after about four elements (the kernel matrix runs this there).
func TestThousandOneToOneFMRs(t *testing.T) {
	cfg := ceConfig()
	cfg.FMRs = append(oneToOne(1000), ruleA)
	tr := load(t, cfg)
	var n int
	var k uint32
	var v ceRule
	it := tr.coll.Maps["rules_v4x"].Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil || n != 1000 {
		t.Fatalf("rules_v4x holds %d entries (%v), want 1000", n, err)
	}
	last := cfg.FMRs[999]
	peer := last.IPv4Prefix.Addr()
	our := portOf(t, ceBinding.PortSet, 2)
	ret, out := run(t, tr.Prog4to6(), pkt4(t, ceBinding.IPv4.Addr(), peer, l4{"udp", our, 4000, 8}, nil))
	if ret != actRedirect {
		t.Fatalf("verdict %d, want redirect", ret)
	}
	want := mustDerive(last, last.IPv6Prefix).MAPAddress
	check6(t, out, want6{src: ceBinding.MAPAddress, dst: want, sport: our, dport: 4000, next: layers.IPProtocolUDP})
}

// TestLargeCapacityOnDemand: beyond preallocMax the rule hashes are
// allocated on demand (a BR with many 1:1 rules would otherwise pay for
// its whole capacity up front), and the rules still load.
func TestLargeCapacityOnDemand(t *testing.T) {
	rules := oneToOne(3000)
	tr := load(t, Config{Mode: BR, DMR: dmr, FMRs: rules, Capacity: preallocMax + 1})
	info, err := tr.coll.Maps["rules_v4x"].Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Flags&unix.BPF_F_NO_PREALLOC == 0 {
		t.Errorf("rules_v4x flags %#x: preallocated at capacity %d", info.Flags, preallocMax+1)
	}
	small := load(t, Config{Mode: BR, DMR: dmr, FMRs: rules})
	if info, err = small.coll.Maps["rules_v4x"].Info(); err != nil {
		t.Fatal(err)
	}
	if info.Flags&unix.BPF_F_NO_PREALLOC != 0 {
		t.Errorf("rules_v4x flags %#x: not preallocated at the default capacity", info.Flags)
	}
	b := mustDerive(rules[2999], rules[2999].IPv6Prefix)
	port := portOf(t, b.PortSet, 1)
	ret, out := run(t, tr.Prog6to4(), pkt6(t, b.MAPAddress, mapt.Embed(dmr, serverV4), l4{"udp", port, 4053, 8}, nil))
	if ret != actOK {
		t.Fatalf("verdict %d", ret)
	}
	check4(t, out, want4{src: rules[2999].IPv4Prefix.Addr(), dst: serverV4, sport: port, dport: 4053, proto: layers.IPProtocolUDP})
}
