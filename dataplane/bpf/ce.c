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

SEC("tc")
int ce_egress(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt p = {.l3 = ETH_HLEN};
	const struct rule *r;
	__u64 shi, slo, dhi, dlo;
	__u32 saddr, daddr;
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
	err = parse4(skb, &p);
	if (err)
		return drop(err);
	saddr = bpf_ntohl(p.ip4.saddr);
	daddr = bpf_ntohl(p.ip4.daddr);
	if ((saddr & c->v4_mask) != c->v4 ||
	    !port_in_set(p.sport, c->psid_a, c->psid_k, c->psid_m, c->psid))
		return drop(R_SRC_NOT_OURS);

	shi = c->eup_hi;
	slo = c->eup_lo;
	map_address(&shi, &slo, c->eup_len, saddr, c->psid);
	r = rule_for_v4(daddr, p.dport);
	if (r) {
		/* Mesh: straight to the peer CE (RFC 7599 s5.1 FMR). */
		if (map_v4(r, daddr, p.dport, &dhi, &dlo))
			return drop(R_DST_NO_CE);
	} else {
		dmr_embed(c, daddr, &dhi, &dlo);
	}
	err = xlat_4to6(skb, &p, shi, slo, dhi, dlo);
	if (err)
		return drop(err);
	count(R_CE_4TO6);
	return bpf_redirect_neigh(c->wan_ifindex, 0, 0, 0);
}

SEC("tc")
int ce_ingress(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt p = {.l3 = ETH_HLEN};
	const struct rule *r;
	__u64 dst[2];
	__u64 dhi, dlo, shi, slo, ehi, elo;
	__u32 saddr, daddr;
	__u16 psid;
	int err;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return PASS;
	if (!c)
		return PASS;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 24, dst, 16))
		return PASS;
	dhi = v6_hi(dst);
	dlo = v6_lo(dst);
	/* Ours only if it is exactly a MAP address of our binding. */
	if ((dhi & c->eup_mask_hi) != c->eup_hi || (dlo & c->eup_mask_lo) != c->eup_lo) {
		count(R_PASS);
		return PASS;
	}
	daddr = c->v4 | ((__u32)(dlo >> 16) & ~c->v4_mask);
	ehi = c->eup_hi;
	elo = c->eup_lo;
	map_address(&ehi, &elo, c->eup_len, daddr, c->psid);
	if (ehi != dhi || elo != dlo) {
		count(R_PASS);
		return PASS;
	}

	err = parse6(skb, &p);
	if (err)
		return drop(err);
	shi = v6_hi(p.ip6.saddr);
	slo = v6_lo(p.ip6.saddr);
	r = lookup_v6(shi, slo);
	if (r) {
		if (map_v6(r, shi, slo, &saddr, &psid))
			return drop(R_SRC_ADDR);
		if (!port_in_set(p.sport, r->psid_a, r->psid_k, r->psid_m, psid))
			return drop(R_SRC_PORT);
	} else if (dmr_match(c, shi, slo)) {
		saddr = dmr_extract(c, shi, slo);
	} else {
		return drop(R_SRC_UNKNOWN);
	}
	if (!port_in_set(p.dport, c->psid_a, c->psid_k, c->psid_m, c->psid))
		return drop(R_DST_PORT);
	err = xlat_6to4(skb, &p, saddr, daddr);
	if (err)
		return drop(err);
	count(R_CE_6TO4);
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
