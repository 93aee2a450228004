// Package bench is the project's headline benchmark (`make bench`): TCP
// throughput and small-packet UDP rate from c1 to s and back across the
// seed's topology (c1 - CE 11b - switch - BR - s, see testenv.NewSeed),
// through these data paths, measured in the same run (Variants; each
// nft, nft+tun, map-t adds one part of MAP-T's CE to the one before):
//
//   - plain: IPv4 routing of the same topology with no translation. The
//     switch segment gets 198.51.100.0/24, the CE masquerades its LAN onto
//     its WAN address (NAT44 with conntrack, like a home router) and the BR
//     routes. This is the limit this machine allows.
//   - mapt: the lab of package lab, zero-touch: Kea, br and ce-agent, so
//     the CE's nftables SNAT into its port set plus the TC-eBPF translator
//     (RFC 7599 s5; RFC 7915 header translation) and the BR's translator.
//     Before it, nft (plain with our nftables table in place of
//     masquerade) and nft+tun (and the uplink TUN device, untranslated);
//     after it, map-t-wan (ce-agent --inbound wan).
//   - tayga: a userspace translator as a peer. tayga (RFC 7915 SIIT over a
//     TUN device) stands in for the translators at both ends: the CE NATs
//     its LAN into 192.0.2.8 ports 55296-57343 (CE 11b's MAP binding) and
//     routes IPv4 into tayga, which maps 192.0.2.8 to CE 11b's MAP address
//     with a static map and the destination into an RFC 6052 /96 prefix;
//     the BR's tayga maps both back. The prefix is 2001:db8:64::/96, not
//     the DMR 64:ff9b::/96: tayga 0.9.2 refuses the well-known prefix with
//     the lab's documentation addresses (RFC 6052 s3.1). Otherwise the
//     IPv6 packets on the switch look like MAP-T's; the port-set check and
//     algorithmic mapping are missing, which tayga does not do.
//
// Every variant runs in its own namespaces of the same topology, all are
// up at once, and the repetitions are interleaved (plain, nft, ...,
// tayga, then in reverse) so that load from other users of the machine
// falls on all of them alike. Each figure is the median of the
// repetitions; the report gives each variant's ratio to plain, the median
// of the per-run ratios (ARCHITECTURE.md, Decisions: ratios, not absolute
// numbers, because the machine is shared). Extra UDP runs under perf give
// the path's CPU time per packet by part (Parts) and the ratio at equal
// CPU, with and without the receiver's wake-ups (see wakeParent).
//
// UDP uses iperf3 with 64-byte payloads at an unlimited offered rate; the
// rate reported is the packets that reached the receiver's interface per
// second (its rx counter), not what the iperf3 receiver managed to read,
// because a single receiving process is slower than the kernel path.
// Loss is 1 - delivered/sent.
package bench
