// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BR entry programs (RFC 7599 s8.3, s8.4).
 *
 * br_ingress6 runs at TC ingress of the IPv6 side: packets to the DMR from
 * a MAP address are validated (the source port must belong to the PSID the
 * source address carries) and translated 6->4; CE-to-CE packets are
 * translated twice at once (hairpin). br_ingress4 runs at TC ingress of the
 * IPv4 side: packets to an FMR's IPv4 prefix go to the owning CE. Both hand
 * the result to the stack, which routes it and decrements the TTL once.
 */
#include "core.h"

/* br_ce6 validates a CE's MAP address and the port it uses. */
static __always_inline int br_ce6(const struct xlat_config *c, __u64 hi, __u64 lo, __u16 port, int noport, __u32 *v4)
{
	const struct rule *r = lookup_v6(c, hi, lo);
	__u16 psid;

	if (!r)
		return R_SRC_UNKNOWN;
	if (map_v6(r, hi, lo, v4, &psid))
		return R_SRC_ADDR;
	if (!noport && !port_in_set(port, r->psid_a, r->psid_k, r->psid_m, psid))
		return R_SRC_PORT;
	return 0;
}

/* br_ce4 maps a CE's IPv4 address and port to its MAP address. */
static __always_inline int br_ce4(__u32 v4, __u16 port, __u64 *hi, __u64 *lo)
{
	const struct rule *r = rule_for_v4(v4, port);

	if (!r || map_v4(r, v4, port, hi, lo))
		return R_DST_NO_CE;
	return 0;
}

SEC("tc")
int br_ingress6(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p;
	__u64 dst[2];
	__u64 dhi, dlo;
	__u32 saddr, daddr;
	int err;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return PASS;
	if (!c)
		return PASS;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 24, dst, 16))
		return PASS;
	dhi = v6_hi(dst);
	dlo = v6_lo(dst);
	if (!dmr_match(c, dhi, dlo)) {
		count(R_PASS);
		return PASS;
	}
	p = pkt_get();
	if (!p)
		return drop(R_HELPER);
	err = parse6(skb, p);
	if (err)
		return drop(err);
	/* RFC 7599 s8.3: the source port (for an error: the inner destination
	 * port) must belong to the PSID of the source address. */
	/* Later fragments carry no port: the address must still be a
	 * well-formed MAP address under its FMR. */
	err = br_ce6(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr), p->sport, p->frag == FRAG_LATER, &saddr);
	if (err)
		return drop(err);
	daddr = dmr_extract(c, dhi, dlo);

	if (lookup_v4(daddr)) {
		/* Hairpin (RFC 7599 s8.4 via s8.3): the IPv4 packet would come
		 * straight back into our IPv4 side; do both legs at once. */
		struct addrs6 o, i;
		__u32 isrc, idst;

		if (p->frag == FRAG_LATER)
			return drop(R_FRAGMENT); /* no port to pick the CE by */
		err = br_ce4(daddr, p->dport, &o.dhi, &o.dlo);
		if (err)
			return drop(err);
		dmr_embed(c, saddr, &o.shi, &o.slo);
		if (!p->icmp_err) {
			err = rewrite6(skb, p, o.shi, o.slo, o.dhi, o.dlo);
			if (err)
				return drop(err);
			count_xlat(skb, R_BR_HAIRPIN);
			if (p->ip6.hlim <= 1)
				count(R_TTL_EXPIRED);
			return TC_ACT_OK;
		}
		/* An error about a hairpinned packet: that one went from the
		 * other CE (now the destination) through us to this one. */
		if (!dmr_match(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr)))
			return drop(R_SRC_UNKNOWN);
		isrc = dmr_extract(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr));
		err = br_ce4(isrc, p->in.sport, &i.shi, &i.slo);
		if (err)
			return drop(err);
		err = br_ce6(c, v6_hi(p->in.ip6.daddr), v6_lo(p->in.ip6.daddr), p->in.dport, 0, &idst);
		if (err)
			return drop(err);
		dmr_embed(c, idst, &i.dhi, &i.dlo);
		err = rewrite6_err(skb, p, &o, &i);
		if (err)
			return drop(err);
		count_xlat(skb, R_BR_HAIRPIN);
		return TC_ACT_OK;
	}
	if (p->icmp_err) {
		__u32 isrc, idst;

		if (!dmr_match(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr)))
			return drop(R_SRC_UNKNOWN);
		isrc = dmr_extract(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr));
		err = br_ce6(c, v6_hi(p->in.ip6.daddr), v6_lo(p->in.ip6.daddr), p->in.dport, 0, &idst);
		if (!err)
			err = xlat_6to4_err(skb, p, saddr, daddr, isrc, idst);
	} else {
		err = xlat_6to4(skb, p, saddr, daddr);
	}
	if (err)
		return drop(err);
	count_xlat(skb, R_BR_6TO4);
	if (p->ip6.hlim <= 1)
		count(R_TTL_EXPIRED);
	return TC_ACT_OK;
}

/* br_xlat4 translates an IPv4 packet to a CE (RFC 7599 s8.4). */
static __always_inline int br_xlat4(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, __u32 daddr)
{
	struct addrs6 o, i;
	int err;

	err = parse4(skb, p);
	if (err)
		return err;
	/* The destination port (for an error: the inner source port) picks
	 * the CE; later fragments use their first fragment's (RFC 7597
	 * s8.3.3), so a first fragment seen late costs the datagram. */
	if (p->frag && frag_ports(p) && rule_needs_port(daddr))
		return R_FRAG_MISS;
	err = br_ce4(daddr, p->dport, &o.dhi, &o.dlo);
	if (err)
		return err;
	dmr_embed(c, bpf_ntohl(p->ip4.saddr), &o.shi, &o.slo);
	if (!p->icmp_err)
		return xlat_4to6(skb, p, o.shi, o.slo, o.dhi, o.dlo);
	err = br_ce4(bpf_ntohl(p->in.ip4.saddr), p->in.sport, &i.shi, &i.slo);
	if (err)
		return err;
	dmr_embed(c, bpf_ntohl(p->in.ip4.daddr), &i.dhi, &i.dlo);
	return xlat_4to6_err(skb, p, &o, &i);
}

SEC("tc")
int br_ingress4(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p;
	__u8 dst[4];
	__u32 daddr;
	int err;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PASS;
	if (!c)
		return PASS;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 16, dst, 4))
		return PASS;
	daddr = bpf_ntohl(*(__be32 *)dst);
	if (!lookup_v4(daddr)) {
		count(R_PASS);
		return PASS;
	}
	/* RFC 7915 s4: an IPv4 packet with DF clear that would not fit the
	 * IPv6 side translated SHOULD be fragmented. A TC program cannot make
	 * packets, the IPv4 stack can: it forwards the packet to the local
	 * device (MTU = IPv6 side - 28), fragmenting it, and br_local
	 * translates each piece. Fragments all take that path, so a
	 * datagram's pieces stay in order and its first one fills the
	 * fragment cache before the others need it. */
	if (c->wan_mtu && (c->flags & CFG_UPLINK_L3)) { /* br_local is attached */
		struct { __be16 len, id, frag; } h;

		if (bpf_skb_load_bytes(skb, ETH_HLEN + 2, &h, sizeof(h)))
			return PASS;
		__u16 frag = bpf_ntohs(h.frag);
		if ((frag & (IP_MF | IP_OFFMASK)) ||
		    (!(frag & IP_DF) && !skb->gso_size && bpf_ntohs(h.len) + 20 > c->wan_mtu)) {
			count(R_BR_VIA_STACK);
			return TC_ACT_OK;
		}
	}
	p = pkt_get();
	if (!p)
		return drop(R_HELPER);
	err = br_xlat4(skb, c, p, daddr);
	if (err)
		return drop(err);
	count_xlat(skb, R_BR_4TO6);
	if (p->ip4.ttl <= 1)
		count(R_TTL_EXPIRED);
	return TC_ACT_OK;
}

/*
 * br_local runs at the egress of a link-layer-less device (TUN) that the
 * BR routes the DMR prefix and the CEs' IPv4 prefixes to, so that what the
 * BR's own stack sends there gets translated too: an ICMPv6 Packet Too Big
 * for a packet that grew past the IPv6 link's MTU in translation, a Time
 * Exceeded for a CE's packet whose TTL ran out here. Without it those
 * have no route and PMTU discovery breaks.
 */
/* The two halves of br_local return a drop reason or 0. They are inlined:
 * the 32-bit JITs (arm, mips) refuse programs with BPF-to-BPF calls and
 * leave them to the interpreter. */
static __always_inline int br_local4(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p = pkt_get();
	__u8 dst[4];
	__u32 daddr;

	if (!c)
		return R_NO_CONFIG;
	if (!p)
		return R_HELPER;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 16, dst, 4))
		return R_TRUNCATED;
	daddr = bpf_ntohl(*(__be32 *)dst);
	if (!lookup_v4(daddr))
		return R_LOCAL;
	return br_xlat4(skb, c, p, daddr);
}

/* IPv6 from the BR itself to the DMR: only errors about packets from the
 * IPv4 Internet to a CE. */
static __always_inline int br_local6(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p = pkt_get();
	__u32 saddr, daddr, isrc, idst;
	int err;

	if (!c)
		return R_NO_CONFIG;
	if (!p)
		return R_HELPER;
	err = parse6(skb, p);
	if (err)
		return err;
	if (!p->icmp_err || !dmr_match(c, v6_hi(p->ip6.daddr), v6_lo(p->ip6.daddr)))
		return R_LOCAL;
	daddr = dmr_extract(c, v6_hi(p->ip6.daddr), v6_lo(p->ip6.daddr));
	saddr = DUMMY_V4; /* the BR's IPv6 address has no IPv4 form */
	if (dmr_match(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr)))
		saddr = dmr_extract(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr));
	if (!dmr_match(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr)))
		return R_LOCAL;
	isrc = dmr_extract(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr));
	err = br_ce6(c, v6_hi(p->in.ip6.daddr), v6_lo(p->in.ip6.daddr), p->in.dport, 0, &idst);
	if (err)
		return err;
	return xlat_6to4_err(skb, p, saddr, daddr, isrc, idst);
}

/*
 * br_local runs at the egress of a link-layer-less device (TUN) that the
 * BR routes the DMR prefix and the CEs' IPv4 prefixes to, so that what the
 * BR's own stack sends there gets translated too: an ICMPv6 Packet Too Big
 * for a packet that grew past the IPv6 link's MTU in translation, a Time
 * Exceeded for a CE's packet whose TTL ran out here. Without it those
 * have no route and PMTU discovery breaks.
 */
SEC("tc")
int br_local(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	__be16 proto = skb->protocol;
	int err;

	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return PASS;
	if (!c)
		return drop(R_NO_CONFIG);
	if ((c->flags & CFG_UPLINK_L3) && bpf_skb_change_head(skb, ETH_HLEN, 0))
		return drop(R_HELPER);
	if (proto == bpf_htons(ETH_P_IP)) {
		err = br_local4(skb);
		if (err)
			return drop(err);
		count_xlat(skb, R_BR_4TO6);
		return bpf_redirect_neigh(c->wan_ifindex, 0, 0, 0);
	}
	err = br_local6(skb);
	if (err)
		return drop(err);
	count_xlat(skb, R_BR_6TO4);
	return bpf_redirect_neigh(c->uplink_ifindex, 0, 0, 0);
}

char __license[] SEC("license") = "Dual BSD/GPL";
