// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * CE entry programs (RFC 7599 s8.1, s8.2).
 *
 * ce_egress runs at TC egress of the IPv4 uplink device, after nftables
 * SNAT has put the LAN into our port set: 4->6, then out of the WAN with
 * bpf_redirect_neigh (bpf_redirect for a WAN without link layer: PPP, raw
 * IP). ce_ingress runs at TC ingress of the WAN: packets to our MAP
 * address are checked and translated 6->4, then go on into the IPv4 stack
 * (or, with CFG_VIA_UPLINK, into the uplink's ingress), where conntrack
 * undoes the NAT. Neither touches the TTL:
 * both directions are forwarded by the CE's own stack, which decrements it
 * once.
 */
#include "tail.h"

/* ce_remote4 maps a remote IPv4 address: straight to a mesh peer when an
 * FMR matches by address and port, longest first (RFC 7599 s8.1), else
 * into the DMR (RFC 6052). nr is the reason to drop when the mapping needs
 * a port the packet does not have. */
static __always_inline int ce_remote4(const struct xlat_config *c, __u32 v4, __u16 port, int noport, int nr,
				      __u64 *hi, __u64 *lo)
{
	const struct rule *r;
	int err = rule_for_dst4(c, v4, port, noport, nr, &r);

	if (err)
		return err;
	if (r)
		return map_v4(r, v4, port, hi, lo) ? R_DST_NO_CE : 0;
	dmr_embed(c, v4, hi, lo);
	return 0;
}

/* ce_remote6 maps a remote IPv6 address back: an FMR source must use a
 * port of the PSID it carries (RFC 7599 s8.2); otherwise it must be in
 * the DMR. */
static __always_inline int ce_remote6(const struct xlat_config *c, __u64 hi, __u64 lo, __u16 port, int noport,
				      __u32 *v4)
{
	const struct rule *r = lookup_v6(c, hi, lo);
	__u16 psid;

	if (r) {
		if (map_v6(r, hi, lo, v4, &psid))
			return R_SRC_ADDR;
		if (!noport && !port_in_set(port, r->psid_a, r->psid_k, r->psid_m, psid))
			return R_SRC_PORT;
		return 0;
	}
	if (dmr_match(c, hi, lo)) {
		*v4 = dmr_extract(c, hi, lo);
		return 0;
	}
	return R_SRC_UNKNOWN;
}

/* ce_local6 returns our IPv4 address for one of our MAP addresses (one
 * per address of an IPv4 prefix: the interface identifier carries it). */
static __always_inline int ce_local6(const struct xlat_config *c, __u64 hi, __u64 lo, __u32 *v4)
{
	__u64 ehi = c->eup_hi, elo = c->eup_lo;
	__u32 a;

	if ((hi & c->eup_mask_hi) != c->eup_hi || (lo & c->eup_mask_lo) != c->eup_lo)
		return -1;
	a = c->v4 | ((__u32)(lo >> 16) & ~c->v4_mask);
	map_address(&ehi, &elo, c->eup_len, a, c->psid);
	if (ehi != hi || elo != lo)
		return -1;
	*v4 = a;
	return 0;
}

/* unalias maps the mesh alias back to our shared address: the stack sent
 * a packet for a CE sharing it (nat DNATs those to the alias, RFC 7599
 * s8.1: the destination port, not the address, picks the CE). */
static __always_inline __u32 unalias(const struct xlat_config *c, __u32 v4)
{
	return c->mesh_alias && v4 == c->mesh_alias ? c->v4 : v4;
}

/* alias is the reverse, for sources: a packet from a CE that shares our
 * address must not look like one from ourselves to our stack. */
static __always_inline __u32 alias(const struct xlat_config *c, __u32 v4)
{
	return c->mesh_alias && v4 == c->v4 ? c->mesh_alias : v4;
}

SEC("tc")
int ce_egress(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p;
	struct addrs6 *o;
	__u32 saddr, daddr;
	int err, nr;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PASS;
	err = egress_at(skb, c, CFG_V4_L3, &p); /* the uplink is a TUN */
	if (err)
		return drop(err);
	err = parse4(skb, p, 1);
	if (err == R_IPV4_OPTIONS && !p->icmp_err) /* RFC 7915 s4.1: Source Route Failed, into our stack */
		return reply(skb, p, err, 3, 5, 0, DUMMY_V4, c->v4_ifindex, 1);
	if (err)
		return drop(err);
	saddr = bpf_ntohl(p->ip4.saddr);
	daddr = unalias(c, bpf_ntohl(p->ip4.daddr));
	/* Later fragments take their ports from the first (noport stays set
	 * when it was not seen); without them they can only go where no
	 * port is needed. */
	if (p->frag)
		frag_ports(p);
	nr = p->frag == FRAG_LATER ? R_FRAG_MISS : R_PROTO;
	/* The source (for an error: the inner destination) must be ours;
	 * anything else escaped the NAT. A shared address needs the port. */
	if ((saddr & c->v4_mask) != c->v4)
		return drop(R_SRC_NOT_OURS);
	if (p->noport) {
		if (c->psid_k && p->frag != FRAG_LATER)
			return drop(R_PROTO);
	} else if (!port_in_set(p->sport, c->psid_a, c->psid_k, c->psid_m, c->psid)) {
		return drop(R_SRC_NOT_OURS);
	}
	if (p->frag)
		p->frag_id = id_into_set(p->frag_id, c->psid_a, c->psid_k, c->psid_m, c->psid);

	o = &p->o;
	o->shi = c->eup_hi;
	o->slo = c->eup_lo;
	map_address(&o->shi, &o->slo, c->eup_len, saddr, c->psid);
	err = ce_remote4(c, daddr, p->dport, p->noport, nr, &o->dhi, &o->dlo);
	if (err)
		return drop(err);
	fin_side(p, R_CE_4TO6, c->v6_ifindex, c->flags & CFG_V6_L3);
	p->fin.mtu_check = 1;
	if (p->icmp_err) {
		/* The packet in error came to us: its source is remote, its
		 * destination one of our addresses. */
		__u32 isrc = unalias(c, bpf_ntohl(p->in.ip4.saddr)), idst = bpf_ntohl(p->in.ip4.daddr);
		struct addrs6 *i = &p->i;

		if ((idst & c->v4_mask) != c->v4)
			return drop(R_SRC_NOT_OURS);
		i->dhi = c->eup_hi;
		i->dlo = c->eup_lo;
		map_address(&i->dhi, &i->dlo, c->eup_len, idst, c->psid);
		err = ce_remote4(c, isrc, p->in.sport, p->in.noport, R_PROTO, &i->shi, &i->slo);
		if (err)
			return drop(err);
		return tail(skb, p, T_XLAT_ERR4TO6);
	}
	return end(skb, c, p, xlat_4to6(skb, c, p, o->shi, o->slo, o->dhi, o->dlo));
}

SEC("tc")
int ce_ingress(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	__u64 dst[2];
	int l3 = ingress_dst(skb, c, bpf_htons(ETH_P_IPV6), CFG_V6_L3, 24, dst, sizeof(dst));
	__u32 saddr, daddr;
	struct pkt *p;
	int err;

	if (l3 == ENTRY_OTHER)
		return PASS;
	if (l3 < 0)
		return drop(R_TRUNCATED);
	/* Ours only if it is exactly a MAP address of our binding. */
	if (ce_local6(c, v6_hi(dst), v6_lo(dst), &daddr)) {
		count(R_PASS);
		return PASS;
	}
	err = parse_at(skb, l3, 1, &p);
	if (err == R_IPV6_EXTHDR && p->err_ptr) /* RFC 7915 s5.1: segments left */
		goto reply;
	if (err)
		return drop(err);
	err = ce_remote6(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr), p->sport, p->noport, &saddr);
	if ((err == R_SRC_UNKNOWN || err == R_SRC_ADDR) && p->icmp_err)
		saddr = DUMMY_V4; /* an IPv6 router reporting on our packet (RFC 7915 s5.2, RFC 7600) */
	else if (err == R_SRC_PORT) /* RFC 7599 s8.2 */
		goto reply;
	else if (err)
		return drop(err);
	saddr = alias(c, saddr);
	/* RFC 7599 s8.2: the destination port (for an error: the inner
	 * source port) must be in our port set. Later fragments carry none;
	 * the address checks still hold. */
	if (p->noport) {
		if (c->psid_k && p->frag != FRAG_LATER)
			return drop(R_PROTO);
	} else if (!port_in_set(p->dport, c->psid_a, c->psid_k, c->psid_m, c->psid)) {
		err = R_DST_PORT;
		goto reply;
	}
	/* With CFG_VIA_UPLINK (ce-agent's default) the translated packet is
	 * redirected into the uplink's ingress, where a firewall sees it
	 * arrive; it waits in the CPU's backlog and is received a second
	 * time. Without, it goes on up the WAN's own receive path into the
	 * IPv4 stack (the agent turns the WAN's rp_filter off: the route back
	 * to the source is the uplink). Either way conntrack undoes the NAPT
	 * and the stack routes it to the LAN. */
	if (c->flags & CFG_VIA_UPLINK)
		fin_set(p, R_CE_6TO4, FIN_INGRESS, c->v4_ifindex);
	else
		fin_set(p, R_CE_6TO4, FIN_STACK, 0);
	if (p->icmp_err) {
		__u32 idst;

		if (ce_local6(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr), &p->isrc))
			return drop(R_DST_PORT);
		err = ce_remote6(c, v6_hi(p->in.ip6.daddr), v6_lo(p->in.ip6.daddr), p->in.dport, p->in.noport, &idst);
		if (err)
			return drop(err);
		p->osrc = saddr;
		p->odst = daddr;
		p->idst = alias(c, idst);
		return tail(skb, p, T_XLAT_ERR6TO4);
	}
	return end(skb, c, p, xlat_6to4(skb, c, p, saddr, daddr));
reply:
	/* Parameter Problem at the Segments Left field, or Destination
	 * Unreachable, source address failed ingress/egress policy. */
	if (err == R_IPV6_EXTHDR)
		return reply(skb, p, err, 4, 0, p->err_ptr, 0, 0, 0);
	return reply(skb, p, err, 1, 5, 0, 0, 0, 0);
}

/* passthrough is the benchmarks' baseline: the cost of running a TC
 * program at all. */
SEC("tc")
int passthrough(struct __sk_buff *skb)
{
	return PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
