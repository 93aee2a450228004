// Package provision is the CE's DHCPv6 client: it turns what an ISP's
// DHCPv6 server says into a lease with MAP-T domains.
//
// The S46 options (RFC 7598) are decoded by package s46, which kea uses to
// encode them on the server side; this package asks for them, picks the
// softwire mechanism (RFC 8026) and keeps the MAP-T containers that s46
// validates. A container that breaks RFC 7598 is left out of the lease with
// the reason (Lease.Ignored), as RFC 7598 s6 and s8 require.
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
