// Package savi is the BR's source address validation (in the spirit of
// SAVI, RFC 7039, and strict uRPF, BCP 84/RFC 3704): a TC program, run
// before the translator on the CE-facing side, that accepts an IPv6 packet
// only from the neighbour the BR routes its source address to.
//
// RFC 7599 s8.3's check proves that a packet's source port belongs to the
// PSID its source address embeds; it cannot tell who sent the packet. With
// routes to delegated prefixes via each CE (as the lab's Kea hook installs
// them), this check can: a CE that sends with another CE's MAP address and
// port set arrives from the wrong MAC address and is dropped and counted.
// It is for BRs on the CEs' link (or behind routers that keep per-CE next
// hops); elsewhere leave it off. A packet whose next hop the BR has not
// resolved yet is let through (counted "unverified"): dropping it would
// keep the neighbour unresolved forever, and the first reply resolves it.
package savi
