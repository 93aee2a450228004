// Package mapt is the shared core of the MAP-T CE and BR: mapping rules,
// port sets, CE bindings and address mapping, as specified by RFC 7597
// (sections 5 and 6, Appendix A and B), RFC 7599 (sections 5, 6, 8 and 9)
// and RFC 6052 (section 2.2, IPv4-embedded IPv6 addresses).
//
// The package is pure: it performs no I/O and keeps no global state, so the
// agent, the BR, the BPF map loaders and the command-line tools all derive
// exactly the same numbers from the same rules.
//
// # Conventions
//
// A PSID is right-aligned inside every type of this package: a PSID of
// length k holds its value in the k low bits. The DHCPv6 S46_PORTPARAMS
// option carries it left-aligned in 16 bits; package s46 converts at
// the wire boundary.
//
// The PSID offset a defaults to 6 (RFC 7597 s5.1) only where a rule is
// written without one (ParseRule, or a container without S46_PORTPARAMS).
// An explicit 0 means one contiguous port range.
//
// A port set (RFC 7597 s5.1, Appendix B) holds the ports
//
//	port = A·2^(16-a) + PSID·2^m + j,   m = 16-a-k,  0 <= j < 2^m
//
// with 1 <= A < 2^a when a > 0 (the system ports 0-1023 are excluded by
// A >= 1 when a >= 6) and A = 0 when a = 0. A rule without address sharing
// (k = 0) gives the whole port space 0-65535.
//
// # MAP IPv6 addresses and IPv4 prefixes
//
// The interface identifier of a MAP IPv6 address is 16 zero bits, the IPv4
// address (32 bits) and the PSID (16 bits, right-aligned), RFC 7599 s6. When
// the end-user prefix is longer than /64 it overwrites the leading bits of
// the interface identifier.
//
// When a rule gives a CE a whole IPv4 prefix (EA + r < 32) RFC 7599 s6 says
// the interface identifier carries the prefix right-padded with zeros. That
// loses the host part of the packet's address, which the BR needs to
// translate 6->4. This package therefore places the packet's full IPv4
// address in the interface identifier (Binding.AddressFor); the CE's own
// MAP address (Binding.MAPAddress) uses the prefix's first address. The 16
// leading interface identifier bits stay 0 unless a longer-than-/64
// end-user prefix overwrites them; such a prefix also overwrites host bits
// of the embedded address, so IPv4 prefix bindings need end-user prefixes
// of at most /64 to be reachable through a BR.
package mapt
