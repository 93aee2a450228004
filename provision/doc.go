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
//
// The DHCPv6 client (RFC 8415) keeps one IA_PD (s21.21) on the WAN
// interface. Its ORO (s21.7) asks for OPTION_S46_CONT_MAPT (RFC 7598 s7:
// servers send the container only when asked) and OPTION_S46_PRIORITY (RFC
// 8026 s3), for the DNS servers and search list (RFC 3646) and NTP servers
// (RFC 5908) the LAN needs, and SOL_MAX_RT as s21.24 requires. It builds
// its messages itself: insomniacslk's NewSolicit would add an IA_NA and a
// time-based DUID.
//
//	c, err := provision.NewClient(provision.ClientConfig{Interface: "wan", StateDir: "/var/lib/ce-agent"})
//	defer c.Close()
//	err = c.Run(ctx, func(e provision.Event) { ... e.Kind, e.Lease ... })
//
// NewClient resolves the interface and opens the socket in the network
// namespace of the calling thread; Run may then run anywhere.
//
//   - Identity: a DUID-LL from the interface MAC (s11.4), or a random
//     DUID-UUID without one, and an IAID hashed from the interface name;
//     both persisted in StateDir (identity.json), so that the server keeps
//     handing out the same prefix.
//   - Exchanges: Solicit / Advertise / Request / Reply (s18.2.1, s18.2.2),
//     or Solicit / Reply with Rapid Commit (s18.2.1, on unless
//     NoRapidCommit); Advertises are collected for the first retransmission
//     time unless one has preference 255, and those without a usable prefix
//     (NoPrefixAvail, lifetime 0, T1 > T2) are skipped (s18.2.9). A Reply
//     with NoPrefixAvail sends the client back to Solicit, after a backoff.
//   - Timers: Renew at T1 to the server (s18.2.4), Rebind at T2 to all
//     (s18.2.5), expiry at the valid lifetime; T1/T2 of 0 become 0.5 and 0.8
//     of the preferred lifetime (s14.2). NoBinding in a Renew or Rebind
//     Reply is answered with Request (s18.2.10.1). Retransmission follows
//     s15 (IRT, MRT, MRC, MRD, RAND in [-0.1, 0.1], positive for the first
//     Solicit) with the s7.6 constants; the elapsed-time option (s21.9)
//     counts from the first transmission.
//   - Persistence: the lease is written to StateDir/lease.json atomically
//     (temporary file, fsync, rename) on every change. A restarted client
//     reports the saved lease at once (Bound, Resumed) and confirms it with
//     Renew, or Rebind after T2, never with a fresh Solicit.
//   - Answers: a Reply to Request or Renew counts only from the server the
//     message named by its Server Identifier (s18.2.2, s18.2.4); a Reply to
//     Rebind from any (s18.2.5). Datagrams are parsed by parseMessage: a
//     broken header, framing or critical option (identifiers, IA_PD,
//     status) drops the message; any other option that does not decode,
//     or a domain name with characters that could do harm in a shell or
//     resolv.conf, is left out and named (Lease.IgnoredOptions). Every drop
//     is counted by reason with the last one kept (Client.Stats).
//   - Softwires: SelectS46 applies RFC 8026 to the containers: MAP-T when
//     the server's priority lists it (or sends none), MAP-E and lw4o6
//     ignored with a reason (Lease.Ignored, Lease.Selection).
//   - Link events: LinkUp (carrier back) and Reopen (the device created
//     again: a new socket on the new ifindex) bring a Rebind forward with
//     Confirm's timing (s18.2.12); without an answer within CNF_MAX_RD
//     the lease is kept for its lifetimes.
//   - Events: Bound, Renewed, Rebound, Changed, Expired, Released.
//     Renewed and Rebound mean that prefix and domains are unchanged
//     (Lease.SameBinding), so the caller need not touch the kernel;
//     Changed carries the Previous lease. Expired comes when the valid
//     lifetime ends without an answer or the server withdraws the prefix;
//     Released after Release on stop (ReleaseOnStop).
package provision
