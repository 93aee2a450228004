package dataplane

// counterNames are the per-CPU counter reasons, in the order of enum reason
// in bpf/core.h.
var counterNames = [...]string{
	"ce_4to6",       // CE translated IPv4 -> IPv6
	"ce_6to4",       // CE translated IPv6 -> IPv4
	"br_4to6",       // BR translated IPv4 -> IPv6
	"br_6to4",       // BR translated IPv6 -> IPv4
	"br_hairpin",    // BR: CE -> CE, translated twice
	"pass",          // not MAP-T traffic, left to the stack
	"no_config",     // dropped: nothing loaded yet
	"src_not_ours",  // CE 4->6: source outside our address/port set
	"dst_port",      // CE 6->4: destination port/id outside our port set (RFC 7599 s8.2)
	"src_unknown",   // 6->4: source matches no FMR nor the DMR
	"src_port",      // 6->4: source port/id not in the source's PSID (RFC 7599 s8.3)
	"src_addr",      // 6->4: source inside an FMR but not a MAP address
	"dst_no_ce",     // 4->6: destination port/id belongs to no CE
	"bad_header",    // malformed IP header
	"truncated",     // shorter than its headers
	"ipv4_options",  // IPv4 source route, or options on an ICMP error
	"ipv6_exthdr",   // IPv6 routing header with segments left, AH, ESP, ...
	"fragment",      // a fragment we do not translate (ICMP, hairpin)
	"proto",         // transport protocol without ports
	"icmp_type",     // ICMP type RFC 7915 drops
	"udp_zero_csum", // IPv4 UDP without checksum
	"helper",        // a BPF helper failed
	"frag_miss",     // 4->6: later fragment whose first was not seen
	"local",         // BR: own packet on br_local that is not for a CE
	"too_big",       // CE 4->6: translated packet exceeds the WAN MTU
	"ttl_expired",   // BR: translated, but its TTL/hop limit ends here (the stack answers Time Exceeded)
	"br_via_stack",  // BR 4->6: fragment, or DF clear and too big: the stack (re)fragments, br_local translates
}
