package nat

import "testing"

// TestExhaustionCounted: flows beyond the port set (to one destination)
// fail, and InsertFailed counts each of them.
func TestExhaustionCounted(t *testing.T) {
	tc := cases[1] // RFC 7597 example 1: 252 ports
	lab := newNATLab(t)
	n := openIn(t, lab.ce)
	if _, err := n.Apply(bindingConfig(t, tc.rule, tc.eup, uplink, 1480)); err != nil {
		t.Fatal(err)
	}
	before, err := n.InsertFailed()
	if err != nil {
		t.Fatal(err)
	}
	const extra = 5
	lab.addLANAddrs(tc.count + extra)
	f := fillUDP(t, lab, tc.count+extra, func(int) uint16 { return 9 }, 0)
	if f.delivered != tc.count {
		t.Fatalf("%d flows delivered, want the %d ports of the set", f.delivered, tc.count)
	}
	after, err := n.InsertFailed()
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d != extra {
		t.Fatalf("InsertFailed moved by %d, want %d (the flows beyond the set)", d, extra)
	}
}
