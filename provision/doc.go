// Package provision turns what an ISP's DHCPv6 server says into MAP-T
// domains for the CE.
//
// The S46 option codec (RFC 7598) decodes and encodes OPTION_S46_RULE (89,
// s4.1), OPTION_S46_BR (90, s4.2), OPTION_S46_DMR (91, s4.3),
// OPTION_S46_PORTPARAMS (93, s4.5) and the containers OPTION_S46_CONT_MAPE,
// _MAPT and _LW (94-96, s5). The option types implement
// insomniacslk/dhcp's dhcpv6.Option, so a server (or a test) can add them
// to a message; insomniacslk decodes the containers it receives as
// dhcpv6.OptionGeneric, and Domains / MessageDomains turn them into
// validated mapt.Domain values.
//
// Conventions, and where servers differ:
//   - The F flag is the low bit of the flags octet (s4.1 Figure 2), not 128
//     as Kea's manual says.
//   - Rule and DMR IPv6 prefixes are padded to whole octets (s4.1, s4.3);
//     Kea sends a /51 as 7 octets. Padding bits are masked off.
//   - The PSID is left-aligned in PORTPARAMS on the wire and right-aligned
//     in mapt. A PSID with bits set past psid-len is rejected: that is what a
//     right-aligned (misencoded) PSID looks like.
//   - Without PORTPARAMS the PSID offset is 6 (RFC 7597 s5.1); with it, its
//     value, 0 included. For a rule with EA bits, psid-len 0 means that k
//     follows from the EA bits.
//   - A MAP-T container must hold at least one rule and exactly one DMR and
//     no BR or V4V6BIND (s5.2, s6); its rules must be valid (mapt). A
//     container that breaks this is ignored as a whole, as s6 requires, and
//     the reason is returned for the caller to log. S46 options outside a
//     container are not looked at; unknown options inside a rule or a
//     container are skipped. Length errors are errors naming the option,
//     never panics.
package provision
