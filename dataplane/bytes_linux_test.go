package dataplane

import (
	"testing"
)

// TestBytes checks that a translated packet adds its translated size to
// the byte counter of its path, and that drops add nothing.
func TestBytes(t *testing.T) {
	tr := load(t, ceConfig())
	me, our := ceBinding.IPv4.Addr(), portOf(t, ceBinding.PortSet, 5)
	total := 0
	for _, size := range []int{10, 1000} {
		_, out := run(t, tr.Prog4to6(), pkt4(t, me, serverV4, l4{"udp", our, 4053, size}, nil))
		total += len(out) // skb->len at a TC hook counts the Ethernet header
	}
	run(t, tr.Prog4to6(), pkt4(t, me, serverV4, l4{"udp", notIn(t, ceBinding.PortSet), 4053, 500}, nil))
	b, err := tr.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if got := int(b["ce_4to6"]); got != total {
		t.Fatalf("ce_4to6 bytes = %d, want %d", got, total)
	}
	if b["src_not_ours"] != 0 || b["ce_6to4"] != 0 {
		t.Fatalf("bytes counted for a drop or another path: %v", b)
	}
}
