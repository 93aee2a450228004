// Package dataplane is the MAP-T translator: TC-eBPF programs doing RFC 7915
// header translation with RFC 7597/7599 address mapping, and their Go loader.
//
// One translation core (bpf/core.h) is shared by two thin entry objects:
//
//   - CE (bpf/ce.c, RFC 7599 s8.1-8.2): ce_egress on the IPv4 uplink
//     translates 4->6 (source = our MAP address, destination = the peer CE
//     when an FMR matches, else the DMR-embedded address, RFC 6052) and
//     redirects to the WAN with bpf_redirect_neigh; ce_ingress on the WAN
//     translates packets for our MAP address 6->4 and lets them go on into
//     the IPv4 stack (InboundViaUplink: into the uplink's ingress). Packets
//     whose source escaped the NAT, and packets to
//     ports outside our port set, are dropped and counted.
//   - BR (bpf/br.c, RFC 7599 s8.3-8.4): br_ingress6 validates that a CE uses
//     only its own address and port set and translates 6->4, or translates
//     twice for CE-to-CE traffic (hairpin); br_ingress4 maps an IPv4
//     destination and port (ICMP echo identifier) to the owning CE;
//     br_local, on a TUN device the BR routes the DMR and the CE prefixes
//     to, translates the BR's own ICMP errors (Packet Too Big, Time
//     Exceeded) so that PMTU discovery works through it.
//
// Configuration lives in BPF maps fed from the mapt types:
//
//	t, err := dataplane.Load(dataplane.Config{Mode: dataplane.CE, Binding: b, DMR: dmr, FMRs: fmrs})
//	err = t.AttachCE("mapt0", "wan", dataplane.AttachAuto) // TCX, else clsact
//	err = t.Update(newCfg)  // atomic from the packets' point of view
//	n, err := t.Counters()  // per-reason packet counts, summed over CPUs
//	t.Close()               // detaches, then frees programs and maps
//
// A BR attaches with AttachBR(ipv6Side, ipv4Side, local, mode), where local
// is the TUN device for its own ICMP errors and for packets its stack
// fragments (or "" for none). AttachMode reports "tcx" or "clsact"; only
// our own hooks are added and removed (cls_bpf filters are ours by
// priority and handle, and are replaced when a restarted agent attaches
// again). LoadPinned keeps programs, maps and TCX links in the BPF
// filesystem, so that a restarted agent or BR adopts them without a gap.
//
// A translator that must outlive its process (an agent or BR killed,
// restarting or upgrading) is loaded with LoadPinned(cfg, dir): maps,
// programs and TCX links are pinned under dir (DefaultPinRoot plus
// CEPinName or BRPinName), and the next LoadPinned adopts them: the same
// programs (by tag) and maps that fit are kept, so the packets see
// nothing; other programs are loaded with new maps and swapped onto the
// pinned links atomically. Close removes everything, the pins too;
// LeaveInPlace only lets go. Claim and CheckHooks keep a second process
// from attaching next to a live one.
//
// The binding and DMR sit in a two-slot array: Update writes the idle slot
// whole and then flips the active index. Rules live in LPM tries keyed on
// their IPv4 and IPv6 prefixes, except the 1:1 rules (EA length 0, one per
// CE), which go to exact-match hashes so that the lookup cost stays flat up
// to a million CEs; IPv4 addresses shared by EA-length-0 rules are resolved
// through a hash on (address, PSID). Update inserts or replaces new rules
// before it deletes stale ones, so a packet always finds either the old or
// the new rule.
//
// The programs do not decrement the TTL or hop limit: every path hands the
// translated packet to a stack that forwards it (and decrements once, and
// sends Time Exceeded), which keeps the "exactly once per hop" rule.
//
// No CO-RE is used (OpenWrt kernels have no BTF); objects for both byte
// orders are committed (ce_bpfel.o, ce_bpfeb.o, br_bpfel.o, br_bpfeb.o).
package dataplane
