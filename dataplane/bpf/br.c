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

SEC("tc")
int br_ingress6(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt p = {.l3 = ETH_HLEN};
	const struct rule *r, *r2;
	__u64 dst[2];
	__u64 dhi, dlo, shi, slo;
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
	if (!dmr_match(c, dhi, dlo)) {
		count(R_PASS);
		return PASS;
	}
	err = parse6(skb, &p);
	if (err)
		return drop(err);
	shi = v6_hi(p.ip6.saddr);
	slo = v6_lo(p.ip6.saddr);
	r = lookup_v6(shi, slo);
	if (!r)
		return drop(R_SRC_UNKNOWN);
	if (map_v6(r, shi, slo, &saddr, &psid))
		return drop(R_SRC_ADDR);
	if (!port_in_set(p.sport, r->psid_a, r->psid_k, r->psid_m, psid))
		return drop(R_SRC_PORT);
	daddr = dmr_extract(c, dhi, dlo);

	r2 = rule_for_v4(daddr, p.dport);
	if (r2) {
		/* Hairpin (RFC 7599 s8.4 via s8.3): the IPv4 packet would come
		 * straight back into our IPv4 side; do both legs at once. */
		__u64 nshi, nslo, ndhi, ndlo;

		if (map_v4(r2, daddr, p.dport, &ndhi, &ndlo))
			return drop(R_DST_NO_CE);
		dmr_embed(c, saddr, &nshi, &nslo);
		err = rewrite6(skb, &p, nshi, nslo, ndhi, ndlo);
		if (err)
			return drop(err);
		count(R_BR_HAIRPIN);
		return TC_ACT_OK;
	}
	err = xlat_6to4(skb, &p, saddr, daddr);
	if (err)
		return drop(err);
	count(R_BR_6TO4);
	return TC_ACT_OK;
}

SEC("tc")
int br_ingress4(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt p = {.l3 = ETH_HLEN};
	const struct rule *r;
	__u8 dst[4];
	__u64 dhi, dlo, shi, slo;
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
	err = parse4(skb, &p);
	if (err)
		return drop(err);
	r = rule_for_v4(daddr, p.dport);
	if (!r || map_v4(r, daddr, p.dport, &dhi, &dlo))
		return drop(R_DST_NO_CE);
	dmr_embed(c, bpf_ntohl(p.ip4.saddr), &shi, &slo);
	err = xlat_4to6(skb, &p, shi, slo, dhi, dlo);
	if (err)
		return drop(err);
	count(R_BR_4TO6);
	return TC_ACT_OK;
}

char __license[] SEC("license") = "Dual BSD/GPL";
