/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The BR's fast path. A translated packet would go to the BR's stack,
 * which routes it, decrements the TTL or hop limit and resolves the next
 * hop: a second walk through IP input, forwarding and netfilter for every
 * packet. Where nothing but that routing is needed, the program does it
 * itself: a FIB lookup, the decrement (the translator is a router, RFC
 * 7915 s4.1, s5.1), the next hop's MACs, a redirect. Anything else stays
 * with the stack as before, so that its answers keep working: TTL or hop
 * limit 1 (Time Exceeded), a packet too big for the next hop (Packet Too
 * Big, Fragmentation Needed, or fragmentation of a DF-clear IPv4 packet),
 * no route or no neighbour yet, a local destination, a next hop out of a
 * device other than the side's own, or a side without link layer.
 */
#ifndef MAPT_FAST_H
#define MAPT_FAST_H

#include "tail.h"

#define AF_INET 2
#define AF_INET6 10

/* fast_forward returns the redirect of a translated packet (IPv6 when v6)
 * to its next hop, or -1 when the stack must have it. */
static __always_inline int fast_forward(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, int v6)
{
	struct bpf_fib_lookup fib = {};
	__u32 side = v6 ? c->v6_ifindex : c->v4_ifindex;
	__u8 ttl, proto;
	int err;

	/* Only what would go to the stack: not br_local's redirects. */
	if (!(c->flags & CFG_FAST) || p->fin.how != FIN_STACK || p->l3 != ETH_HLEN || (c->flags & (v6 ? CFG_V6_L3 : CFG_V4_L3)))
		return -1;
	if (v6) {
		struct iphdr6 h;

		if (bpf_skb_load_bytes(skb, p->l3, &h, sizeof(h)))
			return -1;
		ttl = h.hlim;
		proto = h.nexthdr;
		fib.family = AF_INET6;
		fib.flowinfo = h.vtcfl & bpf_htonl(0x0fffffff);
		__builtin_memcpy(fib.ipv6_src, h.saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, h.daddr, 16);
	} else {
		struct iphdr4 h;

		if (bpf_skb_load_bytes(skb, p->l3, &h, sizeof(h)))
			return -1;
		ttl = h.ttl;
		proto = h.protocol;
		fib.family = AF_INET;
		fib.tos = h.tos;
		fib.ipv4_src = h.saddr;
		fib.ipv4_dst = h.daddr;
	}
	if (ttl <= 1)
		return -1;
	fib.l4_protocol = proto;
	/* tot_len 0: the kernel checks the skb against the next hop's MTU
	 * itself, GSO packets by their segments. */
	fib.ifindex = skb->ingress_ifindex;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS || fib.ifindex != side)
		return -1;
	/* From here the packet is ours to send: a failed store drops it
	 * rather than hand the stack a half-forwarded packet. */
	ttl--;
	if (v6) {
		err = bpf_skb_store_bytes(skb, p->l3 + 7, &ttl, 1, 0);
	} else {
		/* TTL and protocol are one 16-bit word of the checksum. */
		__be16 old = bpf_htons((__u16)(ttl + 1) << 8 | proto), new = bpf_htons((__u16)ttl << 8 | proto);

		err = bpf_skb_store_bytes(skb, p->l3 + 8, &ttl, 1, 0) ||
		      bpf_l3_csum_replace(skb, p->l3 + 10, old, new, 2);
	}
	if (err || bpf_skb_store_bytes(skb, 0, fib.dmac, 6, 0) || bpf_skb_store_bytes(skb, 6, fib.smac, 6, 0))
		return drop(R_HELPER);
	count_xlat(skb, p->fin.xlat);
	count(R_BR_FAST);
	return bpf_redirect(fib.ifindex, 0);
}

/* end_br is end for the BR's translations: the fast path when it can,
 * else the stack. */
static __always_inline int end_br(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, int err, int v6)
{
	int ret;

	if (err)
		return drop(err);
	ret = fast_forward(skb, c, p, v6);
	if (ret >= 0)
		return ret;
	return finish(skb, c, p);
}

#endif /* MAPT_FAST_H */
