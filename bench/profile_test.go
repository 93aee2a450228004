package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func testProfile(t *testing.T) Profile {
	t.Helper()
	b, err := os.ReadFile("testdata/perf-report.txt")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parsePerfReport(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 15 {
		t.Fatalf("%d rows, want 15", len(rows))
	}
	if r := rows[2]; r.NS != 750000 || r.PID != 4242 || r.Comm != "iperf3" || !r.Kernel || r.Sym != "bpf_prog_6deef7357e7b4530_ce_egress" {
		t.Errorf("row 3: %+v", r)
	}
	if r := rows[11]; r.Kernel || r.Sym != "__libc_sendto" || r.Parent != "" {
		t.Errorf("row 12 (user): %+v", r)
	}
	if r := rows[6]; r.PID != 14 || r.Comm != "ksoftirqd/0" {
		t.Errorf("row 7 (ksoftirqd): %+v", r)
	}
	if r := rows[8]; r.Parent != wakeParent || r.Sym != "_raw_spin_unlock_irqrestore" || rows[7].Parent != "" {
		t.Errorf("rows 8, 9 (under %s or not): %+v %+v", wakeParent, rows[7], rows[8])
	}
	p := newProfile(rows, 4242, 4243)
	p.Variant, p.Figure, p.Packets = "map-t", Figures[2].Name, 1000
	return p
}

// TestProfile: perf's rows are split into the path (sender and
// ksoftirqd), the receiver, idle and other tasks, and the path's time
// into parts and symbols.
func TestProfile(t *testing.T) {
	p := testProfile(t)
	if p.PathNS != 9000000 || p.ReceiverNS != 3000000 || p.IdleNS != 5000000 || p.OtherNS != 7500000 {
		t.Errorf("path %d receiver %d idle %d other %d", p.PathNS, p.ReceiverNS, p.IdleNS, p.OtherNS)
	}
	want := map[string]int64{"nftables": 2500000, "netfilter": 1000000, "bpf-prog": 750000, "bpf-helpers": 500000,
		"qdisc": 250000, "tun": 250000, "kernel": 1250000, "user": 500000, "wakeup": 1000000, "savi": 1000000}
	for k, v := range want {
		if p.Parts[k] != v {
			t.Errorf("part %s = %d, want %d", k, p.Parts[k], v)
		}
	}
	if len(p.Parts) != len(want) {
		t.Errorf("parts %v", p.Parts)
	}
	// Symbols merge over the path's tasks, most time first.
	if s := p.Symbols[0]; s.Name != "nft_do_chain" || s.NS != 2500000 || !s.Kernel {
		t.Errorf("top symbol %+v", s)
	}
	for _, s := range p.Symbols {
		if s.Name == "__skb_recv_udp" || s.Name == "cpu_exec" {
			t.Errorf("symbol %s of another task on the path", s.Name)
		}
	}
	if got := p.perPacket(p.PathNS); got != 9000 {
		t.Errorf("%v ns per packet, want 9000", got)
	}
	for _, tc := range []struct {
		sym    string
		kernel bool
		parent string
		part   string
	}{
		{"bpf_lsm_socket_sendmsg", true, "", "kernel"},
		{"tcx_run", true, "", "bpf-helpers"},
		{"nf_hook_slow", true, "", "netfilter"},
		{"ipv4_conntrack_in", true, "", "netfilter"},
		{"nft_rbtree_lookup", true, "", "nftables"},
		{"fq_codel_enqueue", true, "", "qdisc"},
		{"fib6_node_lookup_1", true, "", "ipv6"},
		{"fib6_node_lookup_1", true, "bpf_prog_9e156e7aa6f38f06_savi_ingress", "savi"},
		{"bpf_prog_9e156e7aa6f38f06_savi_ingress", true, "bpf_prog_9e156e7aa6f38f06_savi_ingress", "savi"},
		{"_raw_spin_unlock_irqrestore", true, "sock_def_readable", "wakeup"},
		{"nft_do_chain", false, "sock_def_readable", "user"},
	} {
		if got := partOf(tc.sym, tc.kernel, tc.parent); got != tc.part {
			t.Errorf("partOf(%s under %q) = %s, want %s", tc.sym, tc.parent, got, tc.part)
		}
	}
	if _, err := parsePerfReport([]byte(" 1 | 2 | x\n")); err == nil {
		t.Error("short line parsed")
	}
	if _, err := parsePerfReport([]byte(" 1 | 2 | 7:x | d | [k] s\n")); err == nil {
		t.Error("line without parent parsed")
	}
	if _, err := parsePerfReport([]byte(" 1 | 2 | nopid | d | [k] s | [other]\n")); err == nil {
		t.Error("line without pid parsed")
	}
}

// TestProfileMarkdown: parts per packet, top kernel symbols and the
// increases from one variant to the next.
func TestProfileMarkdown(t *testing.T) {
	r := sampleResults()
	mt := testProfile(t)
	plain := Profile{Variant: "plain", Figure: Figures[2].Name, Packets: 1000, PathNS: 3000000, OtherNS: 1000000, IdleNS: 1000000,
		Parts:   map[string]int64{"netfilter": 1000000, "kernel": 2000000},
		Symbols: []Symbol{{Name: "__dev_queue_xmit", Kernel: true, NS: 2000000}, {Name: "nf_conntrack_in", Kernel: true, NS: 1000000}}}
	r.Profiles = []Profile{plain, mt}
	md := r.Markdown()
	hasLines(t, md,
		"#### UDP 64 B c1 -> s: CPU time per packet by part",
		"| variant | path ns/packet | BPF programs | BPF helpers, TC hooks | nftables rules | conntrack, NAT, hooks | qdisc | TUN device | IPv6 stack | BR source check | receiver wake-ups | rest of the kernel | user space | other load |",
		"| plain | 3000 | - | - | - | 1000 | - | - | - | - | - | 2000 | - | 20% |",
		"| map-t | 9000 | 750 | 500 | 2500 | 1000 | 250 | 250 | - | 1000 | 1000 | 1250 | 500 | 31% |",
		"- plain: `__dev_queue_xmit` 66.7%, `nf_conntrack_in` 33.3%",
		"- map-t: `nft_do_chain` 27.8%, `__dev_queue_xmit` 13.9%, `_raw_spin_unlock_irqrestore` 11.1%, `nf_conntrack_in` 11.1%, `bpf_prog_6deef7357e7b4530_ce_egress` 8.3%, `fib6_node_lookup_1` 8.3%, `bpf_skb_change_head` 5.6%, `bpf_prog_9e156e7aa6f38f06_savi_ingress` 2.8%",
		"- map-t over plain: `nft_do_chain` +2500, `_raw_spin_unlock_irqrestore` +1000, `bpf_prog_6deef7357e7b4530_ce_egress` +750, `fib6_node_lookup_1` +750, `bpf_skb_change_head` +500, `bpf_prog_9e156e7aa6f38f06_savi_ingress` +250",
	)
	if strings.Contains(md, "UDP 64 B s -> c1: CPU time") {
		t.Errorf("section for a figure without profiles:\n%s", md)
	}
	// The summary (README) has the parts, not the symbols.
	sum := r.Summary()
	if !strings.Contains(sum, "| map-t | 9000 | 750 |") || strings.Contains(sum, "`nft_do_chain`") {
		t.Errorf("summary:\n%s", sum)
	}
	// Profiles survive the JSON round trip.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil || back.Markdown() != md {
		t.Errorf("round trip: %v\n%s", err, back.Markdown())
	}
}

// TestProfileMerge: runs of one figure and variant add up, symbols by
// name, and trim keeps the ones with the most time.
func TestProfileMerge(t *testing.T) {
	p := testProfile(t)
	q := Profile{Packets: 1000, PathNS: 1000000, OtherNS: 10, Parts: map[string]int64{"tun": 1000000},
		Symbols: []Symbol{{Name: "tun_net_xmit", Kernel: true, NS: 1000000}, {Name: "tun_new", Kernel: true, NS: 1}}}
	p.add(q)
	if p.Packets != 2000 || p.PathNS != 10000000 || p.OtherNS != 7500010 || p.Parts["tun"] != 1250000 {
		t.Errorf("merged %+v", p)
	}
	if s := p.Symbols[2]; s.Name != "tun_net_xmit" || s.NS != 1250000 {
		t.Errorf("third symbol %+v, want tun_net_xmit with both runs' time", s)
	}
	if s := p.Symbols[len(p.Symbols)-1]; s.Name != "tun_new" {
		t.Errorf("last symbol %+v, want the new one", s)
	}
	for i := range 2 * maxSymbols {
		p.Symbols = append(p.Symbols, Symbol{Name: fmt.Sprint("f", i)})
	}
	p.trim()
	if len(p.Symbols) != maxSymbols || p.Symbols[0].Name != "nft_do_chain" {
		t.Errorf("trimmed to %d, first %+v", len(p.Symbols), p.Symbols[0])
	}
	var empty Profile
	empty.add(q)
	if empty.Parts["tun"] != 1000000 || empty.otherShare() == 0 {
		t.Errorf("merge into an empty profile: %+v", empty)
	}
}
