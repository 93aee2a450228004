// Package s46 is the DHCPv6 option codec of RFC 7598 ("DHCPv6 Options for
// Configuration of Softwire Address and Port-Mapped Clients"): the options
// a MAP-T CE receives its rules in, and the BR's Kea configuration writes.
//
// It is a package of its own so that the two sides of the wire share one
// codec without sharing anything else: provision (the CE's DHCPv6 client)
// decodes what a server sends, kea (the server's configuration) encodes
// what the CE will decode, and neither has to import the other. It
// depends only on mapt (the rules it yields) and insomniacslk/dhcp's
// dhcpv6.Option interface.
//
// The RFC 7598 sections, by file:
//
//   - options.go: the option codes (s4, s5, as IANA assigned them), their
//     names in errors, the RFC 8415 s21.1 option framing every S46 option
//     uses, inside containers and rules too, and the IPv6 prefix padded to
//     whole octets of s4.1 and s4.3.
//   - rule.go: OPTION_S46_RULE (89, s4.1), a BMR or FMR, and its
//     conversion to a mapt.Rule.
//   - portparams.go: OPTION_S46_PORTPARAMS (93, s4.5), the PSID offset,
//     length and value of a rule.
//   - dmr.go: OPTION_S46_DMR (91, s4.3), the BR's RFC 6052 prefix for
//     MAP-T, and OPTION_S46_BR (90, s4.2), the BR address of MAP-E and
//     Lightweight 4over6.
//   - container.go: the containers OPTION_S46_CONT_MAPE, _MAPT and _LW
//     (94-96, s5.1-s5.3), the encapsulation rules of s6, and a message's
//     MAP-T domains.
//
// OPTION_S46_V4V6BIND (92, s4.4) belongs to Lightweight 4over6 only: it is
// named in errors and kept undecoded.
//
// The option types implement dhcpv6.Option, so a server (or a test) can
// add them to a message; insomniacslk decodes the containers it receives
// as dhcpv6.OptionGeneric, and Domains / MessageDomains turn those into
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
//     the reason is returned for the caller to log (s8: "discard that S46
//     container option and log the event"). S46 options outside a
//     container are not looked at; unknown options inside a rule or a
//     container are skipped. Length errors are errors naming the option,
//     never panics; every parser of received bytes has a fuzz target.
//
// Errors start with "s46: ", but those of SplitOptions, which start with
// the caller's name for the run of options it splits.
package s46
