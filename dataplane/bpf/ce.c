// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * CE entry programs (RFC 7599 s8.1, s8.2).
 *
 * ce_egress runs at TC egress of the IPv4 uplink device, after nftables
 * SNAT has put the LAN into our port set: 4->6, then out of the WAN with
 * bpf_redirect_neigh. ce_ingress runs at TC ingress of the WAN: packets to
 * our MAP address are checked and translated 6->4, then handed to the IPv4
 * uplink's ingress so conntrack can undo the NAT. Neither touches the TTL:
 * both directions are forwarded by the CE's own stack, which decrements it
 * once.
 */
#include "core.h"

/* ce_remote4 maps a remote IPv4 address: straight to a mesh peer when an
 * FMR matches (RFC 7599 s5.1), else into the DMR (RFC 6052). */
static __always_inline int ce_remote4(const struct xlat_config *c, __u32 v4, __u16 port, __u64 *hi, __u64 *lo)
{
	const struct rule *r = rule_for_v4(v4, port);

	if (r)
		return map_v4(r, v4, port, hi, lo) ? R_DST_NO_CE : 0;
	dmr_embed(c, v4, hi, lo);
	return 0;
}

/* ce_remote6 maps a remote IPv6 address back: an FMR source must use a
 * port of the PSID it carries; otherwise it must be in the DMR. */
static __always_inline int ce_remote6(const struct xlat_config *c, __u64 hi, __u64 lo, __u16 port, int noport, __u32 *v4)
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

/* id_into_set puts our PSID into an IPv4 fragment identification the way
 * a port carries it, so CEs sharing an address never reuse each other's
 * identifications (RFC 7599 s10.3, RFC 6346 s5.3). It is a function of the
 * original value, so all fragments of a datagram keep one identification. */
static __always_inline __u16 id_into_set(const struct xlat_config *c, __u16 id)
{
	__u16 mask;

	if (c->psid_k == 0)
		return id;
	mask = ((1U << c->psid_k) - 1) << c->psid_m;
	id = (id & ~mask) | (c->psid << c->psid_m);
	if (c->psid_a > 0 && (id >> (16 - c->psid_a)) == 0)
		id |= 1U << (16 - c->psid_a);
	return id;
}

/* ce_local6 returns our IPv4 address for one of our MAP addresses. */
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

SEC("tc")
int ce_egress(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p;
	struct addrs6 o, i;
	__u32 saddr, daddr;
	int noport = 0;
	int err;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PASS;
	if (!c)
		return drop(R_NO_CONFIG);
	/* A TUN uplink hands us a bare IP packet; give it the Ethernet header
	 * bpf_redirect_neigh needs (DESIGN s3). */
	if (c->flags & CFG_UPLINK_L3) {
		if (bpf_skb_change_head(skb, ETH_HLEN, 0))
			return drop(R_HELPER);
	}
	p = pkt_get();
	if (!p)
		return drop(R_HELPER);
	err = parse4(skb, p);
	if (err)
		return drop(err);
	saddr = bpf_ntohl(p->ip4.saddr);
	daddr = bpf_ntohl(p->ip4.daddr);
	/* Later fragments take their ports from the first; without it they
	 * can only go where no port is needed. */
	if (p->frag && frag_ports(p)) {
		if (rule_needs_port(daddr))
			return drop(R_FRAG_MISS);
		noport = 1;
	}
	/* The source port (for an error: the inner destination port) must be
	 * ours; anything else escaped the NAT. */
	if ((saddr & c->v4_mask) != c->v4 ||
	    (!noport && !port_in_set(p->sport, c->psid_a, c->psid_k, c->psid_m, c->psid)))
		return drop(R_SRC_NOT_OURS);
	if (p->frag)
		p->frag_id = id_into_set(c, p->frag_id);

	o.shi = c->eup_hi;
	o.slo = c->eup_lo;
	map_address(&o.shi, &o.slo, c->eup_len, saddr, c->psid);
	err = ce_remote4(c, daddr, p->dport, &o.dhi, &o.dlo);
	if (err)
		return drop(err);
	if (p->icmp_err) {
		/* The packet in error came to us: its source is remote, its
		 * destination one of our addresses. */
		__u32 isrc = bpf_ntohl(p->in.ip4.saddr), idst = bpf_ntohl(p->in.ip4.daddr);

		if ((idst & c->v4_mask) != c->v4)
			return drop(R_SRC_NOT_OURS);
		i.dhi = c->eup_hi;
		i.dlo = c->eup_lo;
		map_address(&i.dhi, &i.dlo, c->eup_len, idst, c->psid);
		err = ce_remote4(c, isrc, p->in.sport, &i.shi, &i.slo);
		if (!err)
			err = xlat_4to6_err(skb, p, &o, &i);
	} else {
		err = xlat_4to6(skb, p, o.shi, o.slo, o.dhi, o.dlo);
	}
	if (err)
		return drop(err);
	if (c->wan_mtu && !skb->gso_size && skb->len - ETH_HLEN > c->wan_mtu)
		return drop(R_TOO_BIG);
	count_xlat(skb, R_CE_4TO6);
	return bpf_redirect_neigh(c->wan_ifindex, 0, 0, 0);
}

SEC("tc")
int ce_ingress(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p;
	__u64 dst[2];
	__u32 saddr, daddr;
	int noport;
	int err;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return PASS;
	if (!c)
		return PASS;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 24, dst, 16))
		return PASS;
	/* Ours only if it is exactly a MAP address of our binding. */
	if (ce_local6(c, v6_hi(dst), v6_lo(dst), &daddr)) {
		count(R_PASS);
		return PASS;
	}
	p = pkt_get();
	if (!p)
		return drop(R_HELPER);

	err = parse6(skb, p);
	if (err)
		return drop(err);
	/* Later fragments carry no ports: the address checks still hold. */
	noport = p->frag == FRAG_LATER;
	err = ce_remote6(c, v6_hi(p->ip6.saddr), v6_lo(p->ip6.saddr), p->sport, noport, &saddr);
	if ((err == R_SRC_UNKNOWN || err == R_SRC_ADDR) && p->icmp_err)
		saddr = DUMMY_V4; /* an IPv6 router reporting on our packet */
	else if (err)
		return drop(err);
	/* RFC 7599 s8.2: the destination port (for an error: the inner
	 * source port) must be in our port set. */
	if (!noport && !port_in_set(p->dport, c->psid_a, c->psid_k, c->psid_m, c->psid))
		return drop(R_DST_PORT);
	if (p->icmp_err) {
		__u32 isrc, idst;

		if (ce_local6(c, v6_hi(p->in.ip6.saddr), v6_lo(p->in.ip6.saddr), &isrc))
			return drop(R_DST_PORT);
		err = ce_remote6(c, v6_hi(p->in.ip6.daddr), v6_lo(p->in.ip6.daddr), p->in.dport, 0, &idst);
		if (!err)
			err = xlat_6to4_err(skb, p, saddr, daddr, isrc, idst);
	} else {
		err = xlat_6to4(skb, p, saddr, daddr);
	}
	if (err)
		return drop(err);
	count_xlat(skb, R_CE_6TO4);
	return bpf_redirect(c->uplink_ifindex, BPF_F_INGRESS);
}

/* passthrough is the benchmarks' baseline: the cost of running a TC
 * program at all. */
SEC("tc")
int passthrough(struct __sk_buff *skb)
{
	return PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
