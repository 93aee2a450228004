// Package nat programs the CE's NAPT44 into its MAP port set with nftables
// (RFC 7597 s5.1 and s8, RFC 7599 s8.1 and s11): everything routed out of
// the IPv4 uplink device, from the LAN or from the router itself, leaves
// with the CE's IPv4 address and a source port (TCP, UDP, UDP-Lite, SCTP,
// DCCP) or ICMP echo identifier from its port set.
//
// # The table
//
// The package owns one table, "ip mapt" (TableName), and touches nothing
// else, so it coexists with other firewalls such as OpenWrt's "inet fw4".
// Apply deletes and recreates the table in one netlink transaction, so a
// change of binding is atomic; it sends nothing when the kernel already
// holds the rules for the same configuration (every rule carries a
// fingerprint of the configuration in its comment). Because the name is
// fixed, an agent that restarts finds its table again: Current reads the
// binding back from the kernel.
//
//	table ip mapt {
//		map slots { 0 : jump ports-1232-1235, 1 : jump ports-2256-2259, ... }
//		map tcp-buckets { 0 : jump tcp-rr-0, ..., 15 : jump tcp-rr-15 }
//		...
//		chain postrouting {  # nat, srcnat
//			oifname "up0" jhash ip daddr . tcp dport mod 16 seed 0x6d617074 vmap @tcp-buckets
//			oifname "up0" jhash ip daddr . udp dport mod 16 seed 0x6d617074 vmap @udp-buckets
//			oifname "up0" meta l4proto icmp jhash ip daddr mod 16 seed 0x6d617074 vmap @icmp-buckets
//			oifname "up0" meta l4proto { dccp, sctp, udplite } jhash ip daddr . th dport mod 16 ... vmap @udplite-sctp-dccp-buckets
//			oifname "up0" snat to 192.0.2.18      # other protocols: address only
//		}
//		chain tcp-rr-0 { numgen inc mod 63 vmap @slots }   # one counter per bucket
//		...
//		chain ports-1232-1235 { snat to 192.0.2.18:1232-1235 }
//		...
//		set ports { type inet_service; flags interval; elements = { 1232-1235, ... } }  # shared address: mesh
//		chain forward {      # filter, mangle: MSS clamp, both directions
//			tcp flags syn / syn,rst jump mss-clamp
//		}
//		chain mss-clamp {
//			oifname "up0" tcp option maxseg size > 1440 tcp option maxseg size set 1440
//			iifname "up0" tcp option maxseg size > 1440 tcp option maxseg size set 1440
//			iifname "wan" tcp option maxseg size > 1440 tcp option maxseg size set 1440
//		}
//	}
//
// The CE translator hands what it translates from the MAP domain to the
// stack at the WAN's ingress (Config.WAN), so those packets come in on the
// WAN, not on the uplink: the clamp and the mesh chain name both.
//
// The full listings for the test bindings are in testdata/*.nft.
//
// # Spreading flows over the port set
//
// The kernel's snat takes one contiguous port range, and it searches only
// part of it: at most 128 ports (NF_NAT_MAX_ATTEMPTS) from a random
// offset, then 64, 32 and 16 more from new random offsets. When none of
// these tuples is free the packet is dropped when conntrack confirms the
// entry; no later rule gets a second chance, because NAT is set up once
// per connection. A port set with a > 0 is 2^a - 1 ranges of 2^m ports,
// and even a single range larger than 128 ports can fail while ports are
// free.
//
// So the set is cut into slots of at most 128 ports (every range of the
// set, in near-equal pieces, larger pieces first), each slot a chain with
// one snat statement whose range the kernel therefore searches
// completely. An incrementing counter (numgen inc) picks the slot of each
// new connection, round robin. Flows to one destination thus fill every
// slot evenly, and the first one fails only when every port of the set is
// taken for that destination: 100% of the set, measured for the seed's
// CE 11b (2048 of 2048), RFC 7597 example 1 (252 of 252) and a full
// address (65535 of 65535; port 0 is never used). README.md has the
// figures of the designs we rejected: one rule per range as OpenWrt's fw4
// writes them (4 of 252), one snat over a 2048-port range (86-95%), slots
// picked at random (19-45% with 63 ranges of 4, 86-90% with 16 x 128).
//
// Uniqueness is per 5-tuple, so a slot only becomes "full" for flows to
// the same destination address, port and protocol. A counter shared by all
// traffic would let flows to other destinations shift the sequence of
// slots that flows to D get, and a slot already full for D would fail
// that first packet. Each protocol therefore has Buckets (16) counters,
// and jhash(ip daddr . th dport) (ip daddr for ICMP echo) picks the
// counter: a destination shares its round robin only with the
// destinations that hash alike. When a first packet does fail, the
// connection has no conntrack entry yet; its retransmission (TCP SYN, the
// application's next datagram or echo) is a new connection that takes the
// next slot of the counter, so no flow is stranded while its destination
// has a free port. Measured with 20 destinations filled at once in random
// order: 1.5% (a = 0) and 8.9% (63 ranges of 4) of first packets failed,
// against 3.0% and 18.7% with one counter, and every flow got through on
// retransmission.
//
// ICMP echo identifiers are mapped like ports: given a proto range, the
// kernel's ICMP NAT rewrites the identifier into it. UDP-Lite, SCTP and
// DCCP have ports at the same place and are mapped like UDP, and the
// translator carries them (checking their ports like TCP's). Protocols
// without ports (GRE, ESP, ...) get address-only SNAT, and the translator
// carries them only for bindings without port sharing (a full address or
// a prefix): with a shared address no port says which CE a reply is for,
// so the translator drops them and counts "proto".
//
// # Bindings without port sharing
//
// A full address or an IPv4 prefix is the CE's alone (RFC 7597 s5.2): the
// "own" rule first lets packets from its own addresses (LAN hosts given an
// address of the prefix, the router itself) leave unchanged; private LAN
// addresses are NAPTed into the prefix, the kernel spreading connections
// over its addresses (snat to first-last).
//
// # CEs sharing our address (mesh, RFC 7599 s8.1)
//
// With a shared address, a LAN packet to our own address but a port of
// another CE's set belongs to that CE, yet the stack would deliver it
// here. The mesh chains DNAT those (from the LAN in prerouting, from the
// router in output) to MeshAlias, a stand-in address that routes out of
// the uplink; the translator maps it back to our address, and packets
// from those CEs get it as their source. Ports of our own set are not
// touched: the router's services and port forwards keep them.
//
//	chain mesh-prerouting {  # nat, dstnat
//		iifname != "up0" iifname != "wan" ip daddr 192.0.2.18 meta l4proto { tcp, udp, dccp, sctp, udplite } th dport != @ports dnat to 192.0.0.7
//	}
//
// Port 0 is never handed out. System ports (1-1023) are used only when the
// port set contains them, which happens only with a = 0 and PSID 0 (or
// without sharing): an ISP that wants to keep them away from subscribers
// uses a > 0 (the ranges with A = 0, ports 0-1023 for a = 6, belong to no
// PSID) or does not assign PSID 0 with a = 0.
//
// # Packets NAT does not translate
//
// Packets that conntrack calls invalid or does not track (an ICMP error
// for no known connection, a notrack rule elsewhere) are never
// translated: they reach the uplink with their LAN address, or a port or
// echo identifier outside the set. The table does not check for them.
// The CE translator (package dataplane) is the one enforcement point:
// everything leaving the uplink passes it, and it drops a packet whose
// source address (for an ICMP error: the inner destination), port or echo
// identifier is not the binding's and counts it as src_not_ours, which
// ce-agent status shows. Nothing leaves with a LAN address or a port
// another CE owns. (An nftables guard chain after NAT did the same check
// a second time, three rules for every packet out of the uplink: about
// 100-200 ns of the 5 us a 64-byte packet costs on the benchmark's path,
// bench/results/latest.md. It went.)
//
// # Conntrack
//
// When the binding changes or is withdrawn, Apply and Teardown delete the
// conntrack entries that were translated to the old address and a port
// (or identifier) the new binding does not own, so no flow keeps using a
// port the CE no longer holds.
//
// # MSS clamping
//
// Forwarded TCP SYNs leaving or entering through the uplink get their MSS
// lowered to the uplink MTU - 40, so neither end sends segments the
// uplink (and the IPv6 path behind the translator) cannot carry. The
// router's own connections already take the MSS from the route MTU.
// Every forwarded packet passes the forward chain, so its one rule tests
// the cheap and rarely true condition first (a TCP SYN, from the headers
// already parsed) and only SYNs jump to the clamp, which compares the
// device names (a copy of each name per test).
package nat
