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
 * br_local runs at the egress of the BR's local device (see below).
 */
#include "fast.h"

/* br_ce6 validates a CE's MAP address and the port it uses (RFC 7599
 * s8.3), and returns its IPv4 address; with id set, it records the CE's
 * PSID for the IPv4 identifications made for it (s10.3). */
static __always_inline int br_ce6(const struct xlat_config *c, __u64 hi, __u64 lo, __u16 port, int noport,
				  __u32 *v4, struct pkt *id)
{
	const struct rule *r = lookup_v6(c, hi, lo);
	__u16 psid;

	if (!r)
		return R_SRC_UNKNOWN;
	if (map_v6(r, hi, lo, v4, &psid))
		return R_SRC_ADDR;
	if (!noport && !port_in_set(port, r->psid_a, r->psid_k, r->psid_m, psid))
		return R_SRC_PORT;
	if (id) {
		id->id_psid = psid;
		id->id_a = r->psid_a;
		id->id_k = r->psid_k;
		id->id_m = r->psid_m;
	}
	return 0;
}

/* br_ce4 maps a CE's IPv4 address and port to its MAP address; nr is the
 * reason to drop when the mapping needs a port the packet has not. */
static __always_inline int br_ce4(const struct xlat_config *c, __u32 v4, __u16 port, int noport, int nr, __u64 *hi, __u64 *lo)
{
	const struct rule *r;
	int err = rule_for_dst4(c, v4, port, noport, nr, &r);

	if (err)
		return err;
	if (!r || map_v4(r, v4, port, hi, lo))
		return R_DST_NO_CE;
	return 0;
}

/* br_icmp_src is the IPv4 source of an ICMPv6 error from an address that
 * is no CE's (an IPv6 router of the access network): the configured one,
 * or RFC 7600's dummy address (RFC 7915 s5.2, RFC 6791). */
static __always_inline __u32 br_icmp_src(const struct xlat_config *c)
{
	return c->icmp_src ? c->icmp_src : DUMMY_V4;
}

/* br_hairpin translates a CE-to-CE packet twice at once (RFC 7599 s8.4
 * via s8.3): the IPv4 packet would come straight back into our IPv4 side. */
static __always_inline int br_hairpin(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, __u32 saddr, __u32 daddr)
{
	struct addrs6 o, i;
	__u32 isrc, idst;
	int err;

	if (p->frag == FRAG_LATER)
		return R_FRAGMENT; /* no port to pick the CE by */
	err = br_ce4(c, daddr, p->dport, p->noport, R_PROTO, &o.dhi, &o.dlo);
	if (err)
		return err;
	dmr_embed(c, saddr, &o.shi, &o.slo);
	if (!p->icmp_err)
		return rewrite6(skb, c, p, o.shi, o.slo, o.dhi, o.dlo);
	/* An error about a hairpinned packet: that one went from the other
	 * CE (now the destination) through us to this one. */
	if (!dmr_match(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr)))
		return R_SRC_UNKNOWN;
	isrc = dmr_extract(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr));
	err = br_ce4(c, isrc, p->in.sport, p->in.noport, R_PROTO, &i.shi, &i.slo);
	if (err)
		return err;
	err = br_ce6(c, v6_hi(p->in.ip6.daddr), v6_lo(p->in.ip6.daddr), p->in.dport, p->in.noport, &idst, 0);
	if (err)
		return err;
	dmr_embed(c, idst, &i.dhi, &i.dlo);
	return rewrite6_err(skb, c, p, &o, &i);
}

SEC("tc")
int br_ingress6(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	__u64 dst[2], dhi, dlo;
	int l3 = ingress_dst(skb, c, bpf_htons(ETH_P_IPV6), CFG_V6_L3, 24, dst, sizeof(dst));
	__u32 saddr, daddr;
	int err, router = 0;
	struct pkt *p;

	if (l3 == ENTRY_OTHER)
		return PASS;
	if (l3 < 0)
		return drop(R_TRUNCATED);
	dhi = v6_hi(dst);
	dlo = v6_lo(dst);
	if (!dmr_match(c, dhi, dlo)) {
		count(R_PASS);
		return PASS;
	}
	err = parse_at(skb, l3, 1, &p);
	if (err == R_IPV6_EXTHDR && p->err_ptr) /* RFC 7915 s5.1: segments left */
		return reply(skb, p, err, 4, 0, p->err_ptr, 0, 0, 0);
	if (err)
		return drop(err);
	daddr = dmr_extract(c, dhi, dlo);
	/* RFC 7599 s8.3: the source port (for an error: the inner destination
	 * port) must belong to the PSID of the source address. Later
	 * fragments carry no port: they pass when their first did. */
	err = br_ce6(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr), p->sport, p->noport, &saddr, p);
	if (err == R_SRC_UNKNOWN && p->icmp_err) {
		/* An IPv6 router of the access network reporting on a packet
		 * to a CE: translated from the ICMP source address, as long
		 * as the packet it quotes went to a real CE (below). */
		saddr = br_icmp_src(c);
		router = 1;
	} else if (err) {
		return reply(skb, p, err, 1, 5, 0, 0, 0, 0); /* RFC 7599 s8.3 */
	} else if (p->noport && p->frag != FRAG_LATER && p->id_k) {
		return drop(R_PROTO); /* a shared address needs ports */
	}
	if (p->frag) {
		err = frag6_check(p, daddr);
		if (err)
			return drop(err);
	}

	fin_set(p, R_BR_6TO4, FIN_STACK, 0);
	p->fin.ttl_check = 1;
	p->fin.ttl = p->ip6.hlim;
	if (lookup_v4(c, daddr)) {
		err = br_hairpin(skb, c, p, saddr, daddr);
		if (err)
			return drop(err);
		p->fin.xlat = R_BR_HAIRPIN;
		return end_br(skb, c, p, 0, 1);
	}
	if (p->icmp_err) {
		__u64 ihi = v6_hi(p->in.ip6.daddr), ilo = v6_lo(p->in.ip6.daddr);

		if (!dmr_match(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr)))
			return drop(R_SRC_UNKNOWN);
		/* A CE reports only on packets it was sent itself. */
		if (!router && (ihi != v6_hi(p->ip6.saddr) || ilo != v6_lo(p->ip6.saddr)))
			return drop(R_ICMP_INNER);
		p->isrc = dmr_extract(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr));
		err = br_ce6(c, ihi, ilo, p->in.dport, p->in.noport, &p->idst, 0);
		if (err)
			return drop(err);
		p->osrc = saddr;
		p->odst = daddr;
		/* The ICMP source may be the BR's own address: the stack would
		 * take the error for a martian, so it leaves by the IPv4 side
		 * at once, the BR's own error as it were. */
		if (router)
			fin_side(p, R_BR_6TO4, c->v4_ifindex, c->flags & CFG_V4_L3);
		return tail(skb, p, T_XLAT_ERR6TO4);
	}
	return end_br(skb, c, p, xlat_6to4(skb, c, p, saddr, daddr), 0);
}

/* br_map4 maps an IPv4 packet to a CE (RFC 7599 s8.4) into p->o (and,
 * for an ICMP error, the packet in error into p->i), then translates it
 * or, for an error, jumps to the error translation. */
static __always_inline int br_map4(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, __u32 daddr)
{
	struct addrs6 *o = &p->o, *i = &p->i;
	__u32 isrc;
	int err;

	/* The destination port (for an error: the inner source port) picks
	 * the CE; later fragments use their first fragment's (RFC 7597
	 * s8.3.3), so a first fragment seen late costs the datagram. */
	if (p->frag)
		frag_ports(p);
	err = br_ce4(c, daddr, p->dport, p->noport, p->frag == FRAG_LATER ? R_FRAG_MISS : R_PROTO, &o->dhi, &o->dlo);
	if (err)
		return drop(err);
	if (v4_martian(bpf_ntohl(p->ip4.saddr)))
		return drop(R_SRC_MARTIAN);
	dmr_embed(c, bpf_ntohl(p->ip4.saddr), &o->shi, &o->slo);
	if (!p->icmp_err) {
		return end_br(skb, c, p, xlat_4to6(skb, c, p, o->shi, o->slo, o->dhi, o->dlo), 1);
	}
	/* The quoted packet must be one the destination CE sent. */
	isrc = bpf_ntohl(p->in.ip4.saddr);
	if (isrc != daddr)
		return drop(R_ICMP_INNER);
	err = br_ce4(c, isrc, p->in.sport, p->in.noport, R_PROTO, &i->shi, &i->slo);
	if (err)
		return drop(err);
	dmr_embed(c, bpf_ntohl(p->in.ip4.daddr), &i->dhi, &i->dlo);
	return tail(skb, p, T_XLAT_ERR4TO6);
}

SEC("tc")
int br_ingress4(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	__u8 dst[4];
	int l3 = ingress_dst(skb, c, bpf_htons(ETH_P_IP), CFG_V4_L3, 16, dst, sizeof(dst));
	struct pkt *p;
	__u32 daddr;
	int err;

	if (l3 == ENTRY_OTHER)
		return PASS;
	if (l3 < 0)
		return drop(R_TRUNCATED);
	daddr = bpf_ntohl(*(__be32 *)dst);
	if (!lookup_v4(c, daddr)) {
		count(R_PASS);
		return PASS;
	}
	/* RFC 7915 s4.1: an IPv4 packet with DF clear whose translation would
	 * exceed lowest-ipv6-mtu SHOULD be fragmented. A TC program cannot
	 * make packets, the IPv4 stack can: it forwards the packet to the
	 * local device (routes with an MTU of frag_mtu - 28), fragmenting it,
	 * and br_local translates each piece. Fragments all take that path,
	 * so a datagram's pieces stay in order and its first one fills the
	 * fragment cache before the others need it. */
	if (c->frag_mtu && (c->flags & CFG_LOCAL)) {
		struct { __be16 len, id, frag; } h;
		__u16 frag;

		if (bpf_skb_load_bytes(skb, l3 + 2, &h, sizeof(h)))
			return PASS;
		if (bpf_ntohs(h.len) > skb->len - l3)
			return drop(R_TRUNCATED);
		frag = bpf_ntohs(h.frag);
		if ((frag & (IP_MF | IP_OFFMASK)) ||
		    (!(frag & IP_DF) && !skb->gso_size && bpf_ntohs(h.len) + 20 > c->frag_mtu)) {
			count(R_BR_VIA_STACK);
			return TC_ACT_OK;
		}
	}
	err = parse_at(skb, l3, 0, &p);
	if (err == R_IPV4_OPTIONS && !p->icmp_err) /* RFC 7915 s4.1: Source Route Failed */
		return reply(skb, p, err, 3, 5, 0, br_icmp_src(c), 0, 0);
	if (err)
		return drop(err);
	fin_set(p, R_BR_4TO6, FIN_STACK, 0);
	p->fin.ttl_check = 1;
	p->fin.ttl = p->ip4.ttl;
	return br_map4(skb, c, p, daddr);
}

/* br_local4: an IPv4 packet from the BR itself (an ICMPv4 error about a
 * CE's packet) or a piece the stack fragmented for br_ingress4. */
static __always_inline int br_local4(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p)
{
	__u8 dst[4];
	__u32 daddr;
	int err;

	if (bpf_skb_load_bytes(skb, p->l3 + 16, dst, 4))
		return drop(R_TRUNCATED);
	daddr = bpf_ntohl(*(__be32 *)dst);
	if (!lookup_v4(c, daddr))
		return drop(R_LOCAL);
	err = parse4(skb, p, 1);
	if (err)
		return drop(err);
	fin_side(p, R_BR_4TO6, c->v6_ifindex, c->flags & CFG_V6_L3);
	return br_map4(skb, c, p, daddr);
}

/* br_local6: IPv6 from the BR itself to the DMR: only errors about
 * packets from the IPv4 Internet to a CE. */
static __always_inline int br_local6(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p)
{
	int err;

	err = parse6(skb, p);
	if (err)
		return drop(err);
	if (!p->icmp_err || !dmr_match(c, v6_hi(p->ip6.daddr), v6_lo(p->ip6.daddr)))
		return drop(R_LOCAL);
	p->odst = dmr_extract(c, v6_hi(p->ip6.daddr), v6_lo(p->ip6.daddr));
	p->osrc = br_icmp_src(c); /* the BR's IPv6 address has no IPv4 form */
	if (dmr_match(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr)))
		p->osrc = dmr_extract(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr));
	if (!dmr_match(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr)))
		return drop(R_LOCAL);
	p->isrc = dmr_extract(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr));
	err = br_ce6(c, v6_hi(p->in.ip6.daddr), v6_lo(p->in.ip6.daddr), p->in.dport, p->in.noport, &p->idst, 0);
	if (err)
		return drop(err);
	fin_side(p, R_BR_6TO4, c->v4_ifindex, c->flags & CFG_V4_L3);
	return tail(skb, p, T_XLAT_ERR6TO4);
}

/*
 * br_local runs at the egress of a link-layer-less device (TUN) that the
 * BR routes the DMR prefix and the CEs' IPv4 prefixes to, so that what the
 * BR's own stack sends there gets translated too: an ICMPv6 Packet Too Big
 * for a packet that grew past the IPv6 link's MTU in translation, a Time
 * Exceeded for a CE's packet whose TTL ran out here, the pieces of a
 * packet the stack fragmented for br_ingress4. Without it those have no
 * route and PMTU discovery breaks. Translated packets leave by the other
 * side's device.
 */
SEC("tc")
int br_local(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	__be16 proto = skb->protocol;
	struct pkt *p;
	int err;

	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return PASS;
	err = egress_at(skb, c, CFG_LOCAL_L3, &p); /* the local device is a TUN */
	if (err)
		return drop(err);
	if (proto == bpf_htons(ETH_P_IP))
		return br_local4(skb, c, p);
	return br_local6(skb, c, p);
}

char __license[] SEC("license") = "Dual BSD/GPL";
