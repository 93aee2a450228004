// Package agent is the CE's lifecycle (RFC 7599 s7-s11): it turns a DHCPv6
// lease with S46 options (RFC 7598), or a static domain, into the kernel
// state of a MAP-T CE in one network namespace, and keeps that state right
// for as long as it runs.
//
// What it applies, in order, each step only when it changed:
//
//  1. the IPv4 uplink device (an L3 TUN device, ARCHITECTURE.md, A TUN
//     uplink) with the CE's IPv4 address, MTU = min(WAN MTU,
//     lowest-ipv6-mtu) - 28 (RFC 7599 s10.1: the IPv6 header is 20 bytes
//     longer, and a fragment also gains an 8-byte Fragment Header;
//     ARCHITECTURE.md, The uplink MTU) and, by default, the IPv4 default
//     route;
//  2. the nat table: SNAT of everything routed out of the uplink into the
//     port set (package nat, RFC 7599 s8.1 and s11);
//  3. the translator on the uplink (4->6) and the WAN (6->4) (package
//     dataplane).
//
// A renewal that delegates the same prefix with the same rules changes
// nothing in the kernel. A new binding replaces the old one and flushes the
// conntrack entries of an old IPv4 address. When the lease expires or the
// agent stops, everything it created is removed, unless it was told to
// leave the state in place for a restart; a restarted agent adopts what it
// finds instead of duplicating it.
//
// The agent follows its WAN device through rtnetlink: the carrier's return
// makes the DHCPv6 client Rebind (RFC 8415 s18.2.12), a device created again
// under the same name gets the translator and the DHCPv6 socket on its new
// ifindex, and an MTU change re-applies the uplink MTU, the MSS clamp and
// the translator. The hook runs on every lease event (a renewal's fresh
// lifetimes are news for netifd) with the lease's DNS, search list and NTP
// servers besides the binding. The lifecycle is a state machine over the
// kernel interface; machine_test.go drives it with a recording fake.
package agent
