/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP error translation with the packet in error (RFC 7915 s4.2-4.3,
 * s5.2-5.3).
 */
#ifndef MAPT_ICMP_H
#define MAPT_ICMP_H

#include "xlat.h"

/* ---- ICMP errors (RFC 7915 s4.2, s4.3, s5.2, s5.3) ---- */

/* Addresses of a translated packet in error. */
struct addrs6 {
	__u64 shi, slo, dhi, dlo;
};

/* icmp4_to_6 maps an ICMPv4 error type/code and header bytes 4-7 to
 * ICMPv6; it returns -1 for what RFC 7915 s4.2 drops. */
static __always_inline int icmp4_to_6(__u8 t, __u8 c, __u32 rest, __u8 *nt, __u8 *nc, __u32 *nrest)
{
	*nrest = 0;
	switch (t) {
	case 3: /* destination unreachable */
		switch (c) {
		case 0: case 1: case 5: case 6: case 7: case 8: case 11: case 12:
			*nt = 1;
			*nc = 0;
			return 0;
		case 2: /* protocol unreachable: parameter problem, next header */
			*nt = 4;
			*nc = 1;
			*nrest = 6;
			return 0;
		case 3:
			*nt = 1;
			*nc = 4;
			return 0;
		case 4: { /* fragmentation needed: packet too big, MTU + 20 */
			__u32 mtu = rest & 0xffff;

			if (mtu == 0)
				return -1;
			*nt = 2;
			*nc = 0;
			*nrest = mtu + 20 < 1280 ? 1280 : mtu + 20;
			return 0;
		}
		case 9: case 10: case 13: case 15:
			*nt = 1;
			*nc = 1;
			return 0;
		}
		return -1;
	case 11: /* time exceeded */
		if (c > 1)
			return -1;
		*nt = 3;
		*nc = c;
		return 0;
	case 12: { /* parameter problem: map the pointer */
		__u8 ptr = rest >> 24;

		if (c != 0 && c != 2)
			return -1;
		*nt = 4;
		*nc = 0;
		if (ptr <= 1)
			*nrest = ptr;
		else if (ptr <= 3)
			*nrest = 4;
		else if (ptr == 8)
			*nrest = 7;
		else if (ptr == 9)
			*nrest = 6;
		else if (ptr >= 12 && ptr <= 15)
			*nrest = 8;
		else if (ptr >= 16 && ptr <= 19)
			*nrest = 24;
		else
			return -1;
		return 0;
	}
	}
	return -1;
}

/* icmp6_to_4 is the reverse mapping (RFC 7915 s5.2). */
static __always_inline int icmp6_to_4(__u8 t, __u8 c, __u32 rest, __u8 *nt, __u8 *nc, __u32 *nrest)
{
	*nrest = 0;
	switch (t) {
	case 1: /* destination unreachable */
		*nt = 3;
		switch (c) {
		case 0: case 2: case 3:
			*nc = 1;
			return 0;
		case 1:
			*nc = 10;
			return 0;
		case 4:
			*nc = 3;
			return 0;
		}
		return -1;
	case 2: /* packet too big: fragmentation needed, MTU - 20 */
		*nt = 3;
		*nc = 4;
		if (rest < 68 + 20)
			return -1;
		*nrest = rest - 20 > 0xffff ? 0xffff : rest - 20;
		return 0;
	case 3: /* time exceeded */
		if (c > 1)
			return -1;
		*nt = 11;
		*nc = c;
		return 0;
	case 4: /* parameter problem */
		if (c == 1) { /* unrecognised next header */
			*nt = 3;
			*nc = 2;
			return 0;
		}
		if (c != 0)
			return -1;
		*nt = 12;
		*nc = 0;
		if (rest <= 1)
			*nrest = rest << 24;
		else if (rest == 4 || rest == 5)
			*nrest = 2 << 24;
		else if (rest == 6)
			*nrest = 9 << 24;
		else if (rest == 7)
			*nrest = 8 << 24;
		else if (rest >= 8 && rest <= 23)
			*nrest = 12 << 24;
		else if (rest >= 24 && rest <= 39)
			*nrest = 16 << 24;
		else
			return -1;
		return 0;
	}
	return -1;
}

/* csum_add_diff applies a bpf_csum_diff result to a checksum field. */
static __always_inline __u16 csum_apply(__u16 old, __s64 diff)
{
	__u64 s = (__u16)~old;

	s += (__u32)diff;
	return csum_fold(s);
}

/* inner_csum_off is where the inner transport checksum sits. */
static __always_inline __u32 inner_csum_off(const struct inner *in)
{
	switch (in->proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	}
	return 2;
}

/* icmp6_trim cuts a translated ICMPv6 error to the IPv6 minimum MTU
 * (RFC 4443 s2.4(c)): the checksum loses the cut bytes and the shorter
 * length in the pseudo-header. plen is the current payload length, cs the
 * current checksum. */
static __always_inline int icmp6_trim(struct __sk_buff *skb, __u32 l3, __u32 plen, __u16 cs)
{
	const __u32 keep = 1280 - 40;
	__be32 olen = bpf_htonl(plen), nlen = bpf_htonl(keep);
	__be16 np = bpf_htons(keep);
	__s64 cut = 0, s;
	int err;

	if (plen <= keep)
		return 0;
	if (plen - keep > UDP_CSUM_MAX)
		return R_ICMP_TYPE;
	err = sum_bytes(skb, l3 + 40 + keep, plen - keep, &cut);
	if (err)
		return err;
	/* new = old - old length + new length - cut bytes; subtracting in
	 * ones' complement is adding the complement of the folded sum. */
	s = bpf_csum_diff(&olen, 4, &nlen, 4, (__u16)~cs);
	cs = csum_fold((__u64)(__u32)s + csum_fold(cut));
	if (bpf_skb_store_bytes(skb, l3 + 4, &np, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, l3 + 40 + 2, &cs, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_change_tail(skb, l3 + 1280, 0))
		return R_HELPER;
	return 0;
}

/* rewrite6_err is the BR hairpin for an ICMPv6 error: both address pairs
 * change, outer (o) and inner (i), and with them the inner transport
 * checksum (its pseudo-header) and the ICMPv6 checksum (its pseudo-header,
 * the inner addresses and the inner checksum field). All writes are
 * recorded with BPF_F_RECOMPUTE_CSUM. */
static __always_inline int rewrite6_err(struct __sk_buff *skb, struct pkt *p, const struct addrs6 *o, const struct addrs6 *i)
{
	__u64 on[4], in[4];
	__be32 ocs = 0, ncs = 0;
	__u16 icmp_cs;
	__u32 coff = p->in.l4 + inner_csum_off(&p->in);
	int has_cs = coff + 2 <= p->l4 + p->l4len;
	__be32 vtcfl = bpf_htonl(bpf_ntohl(p->ip6.vtcfl) & 0xfff00000);
	__s64 d;

	on[0] = bpf_cpu_to_be64(o->shi);
	on[1] = bpf_cpu_to_be64(o->slo);
	on[2] = bpf_cpu_to_be64(o->dhi);
	on[3] = bpf_cpu_to_be64(o->dlo);
	in[0] = bpf_cpu_to_be64(i->shi);
	in[1] = bpf_cpu_to_be64(i->slo);
	in[2] = bpf_cpu_to_be64(i->dhi);
	in[3] = bpf_cpu_to_be64(i->dlo);
	if (has_cs) {
		if (bpf_skb_load_bytes(skb, coff, &ocs, 2))
			return R_TRUNCATED;
		ncs = ocs;
		if (!(p->in.proto == IPPROTO_UDP && ocs == 0)) {
			d = bpf_csum_diff((__be32 *)p->in.ip6.saddr, 32, (__be32 *)in, 32, 0);
			*(__u16 *)&ncs = csum_apply(*(__u16 *)&ocs, d);
			if (p->in.proto == IPPROTO_UDP && *(__u16 *)&ncs == 0)
				*(__u16 *)&ncs = 0xffff;
		}
	}
	if (bpf_skb_load_bytes(skb, p->l4 + 2, &icmp_cs, 2))
		return R_TRUNCATED;
	d = bpf_csum_diff((__be32 *)p->ip6.saddr, 32, (__be32 *)on, 32, 0);
	d = bpf_csum_diff((__be32 *)p->in.ip6.saddr, 32, (__be32 *)in, 32, d);
	d = bpf_csum_diff(&ocs, 4, &ncs, 4, d);
	icmp_cs = csum_apply(icmp_cs, d);

	if (bpf_skb_store_bytes(skb, p->l3, &vtcfl, 4, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3 + 8, on, 32, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->in.l3 + 8, in, 32, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (has_cs && bpf_skb_store_bytes(skb, coff, &ncs, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l4 + 2, &icmp_cs, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	return 0;
}

/* xlat_4to6_err translates an ICMPv4 error and the IPv4 packet inside it
 * into an ICMPv6 error: the outer header grows by 20 bytes (change_proto)
 * and so does the inner one (adjust_room right after the new outer
 * header). The ICMPv6 checksum is derived from the old one by the exact
 * differences: the 28 rewritten bytes, the pseudo-header and the inner
 * transport checksum. Every byte written is recorded with
 * BPF_F_RECOMPUTE_CSUM, so CHECKSUM_COMPLETE stays right. */
static __always_inline int xlat_4to6_err(struct __sk_buff *skb, struct pkt *p, const struct addrs6 *o, const struct addrs6 *i)
{
	struct iphdr6 h6 = {};
	__u64 oldb[4] = {}; /* ICMP header + inner IPv4 header: 28 bytes */
	__u64 newb[6] = {}; /* ICMPv6 header + inner IPv6 header: 48 bytes */
	__be32 pseudo[10] = {};
	__u8 *nb = (__u8 *)newb;
	struct iphdr6 *ih = (struct iphdr6 *)(nb + 8);
	__be32 ocs = 0, ncs = 0, otc = 0, ntc = 0;
	__u32 coff = p->in.l4 + inner_csum_off(&p->in);
	int has_cs = coff + 2 <= p->l4 + p->l4len; /* inside the ICMP message */
	__be16 eth_proto = bpf_htons(ETH_P_IPV6);
	__u16 old_icmp_cs;
	__u8 nt, nc;
	__u32 nrest;
	__s64 s;

	if (icmp4_to_6(p->icmp_type, p->icmp_code, p->icmp_rest, &nt, &nc, &nrest))
		return R_ICMP_TYPE;
	if (bpf_skb_load_bytes(skb, p->l4, oldb, 28))
		return R_TRUNCATED;
	old_icmp_cs = ((__u16 *)oldb)[1];
	((__u16 *)oldb)[1] = 0;

	nb[0] = nt;
	nb[1] = nc;
	*(__be32 *)(nb + 4) = bpf_htonl(nrest);
	ih->vtcfl = bpf_htonl((6U << 28) | ((__u32)p->in.ip4.tos << 20));
	ih->plen = bpf_htons(p->in.len);
	ih->nexthdr = p->in.proto == IPPROTO_ICMP ? IPPROTO_ICMPV6 : p->in.proto;
	ih->hlim = p->in.ip4.ttl;
	*(__u64 *)&ih->saddr[0] = bpf_cpu_to_be64(i->shi);
	*(__u64 *)&ih->saddr[8] = bpf_cpu_to_be64(i->slo);
	*(__u64 *)&ih->daddr[0] = bpf_cpu_to_be64(i->dhi);
	*(__u64 *)&ih->daddr[8] = bpf_cpu_to_be64(i->dlo);

	/* The inner transport checksum, if the error carries it. */
	if (has_cs) {
		if (bpf_skb_load_bytes(skb, coff, &ocs, 2))
			return R_TRUNCATED;
		if (p->in.proto == IPPROTO_ICMP) {
			__be32 ip[10] = {};

			if (bpf_skb_load_bytes(skb, p->in.l4, &otc, 2))
				return R_TRUNCATED;
			ntc = otc;
			((__u8 *)&ntc)[0] = p->in.icmp_type == 8 ? 128 : 129;
			__builtin_memcpy(ip, ih->saddr, 32);
			ip[8] = bpf_htonl(p->in.len);
			ip[9] = bpf_htonl(IPPROTO_ICMPV6);
			s = bpf_csum_diff(&otc, 4, &ntc, 4, 0);
			s = bpf_csum_diff(0, 0, ip, sizeof(ip), s);
		} else {
			__be32 oa[2] = {p->in.ip4.saddr, p->in.ip4.daddr};

			s = bpf_csum_diff(oa, 8, (__be32 *)ih->saddr, 32, 0);
		}
		ncs = ocs;
		if (!(p->in.proto == IPPROTO_UDP && ocs == 0)) {
			*(__u16 *)&ncs = csum_apply(*(__u16 *)&ocs, s);
			if (p->in.proto == IPPROTO_UDP && *(__u16 *)&ncs == 0)
				*(__u16 *)&ncs = 0xffff;
		}
	}

	h6.vtcfl = bpf_htonl((6U << 28) | ((__u32)p->ip4.tos << 20));
	h6.plen = bpf_htons(p->l4len + 20);
	h6.nexthdr = IPPROTO_ICMPV6;
	h6.hlim = p->ip4.ttl;
	*(__u64 *)&h6.saddr[0] = bpf_cpu_to_be64(o->shi);
	*(__u64 *)&h6.saddr[8] = bpf_cpu_to_be64(o->slo);
	*(__u64 *)&h6.daddr[0] = bpf_cpu_to_be64(o->dhi);
	*(__u64 *)&h6.daddr[8] = bpf_cpu_to_be64(o->dlo);

	__builtin_memcpy(pseudo, h6.saddr, 32);
	pseudo[8] = bpf_htonl(p->l4len + 20);
	pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
	s = bpf_csum_diff((__be32 *)oldb, 28, (__be32 *)newb, 48, (__u16)~old_icmp_cs);
	s = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), s);
	s = bpf_csum_diff(&ocs, 4, &ncs, 4, s);
	s = bpf_csum_diff(&otc, 4, &ntc, 4, s);
	((__u16 *)newb)[1] = csum_fold(s);

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return R_HELPER;
	if (bpf_skb_adjust_room(skb, 20, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3, &h6, sizeof(h6), BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (p->l3 >= ETH_HLEN && bpf_skb_store_bytes(skb, p->l3 - 2, &eth_proto, 2, 0))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3 + 40, newb, 48, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (has_cs) {
		if (bpf_skb_store_bytes(skb, coff + 40, &ncs, 2, BPF_F_RECOMPUTE_CSUM))
			return R_HELPER;
		if (p->in.proto == IPPROTO_ICMP &&
		    bpf_skb_store_bytes(skb, p->in.l4 + 40, &ntc, 2, BPF_F_RECOMPUTE_CSUM))
			return R_HELPER;
	}
	return icmp6_trim(skb, p->l3, p->l4len + 20, ((__u16 *)newb)[1]);
}

/* xlat_6to4_err translates an ICMPv6 error and the IPv6 packet inside it
 * into an ICMPv4 error, the mirror image of xlat_4to6_err. */
static __always_inline int xlat_6to4_err(struct __sk_buff *skb, struct pkt *p, __u32 osrc, __u32 odst, __u32 isrc, __u32 idst)
{
	struct iphdr4 h4 = {};
	__u64 oldb[6] = {}; /* ICMPv6 header + inner IPv6 header: 48 bytes */
	__u64 newb[4] = {}; /* ICMP header + inner IPv4 header: 28 bytes */
	__be32 pseudo[10] = {};
	__u8 *nb = (__u8 *)newb;
	struct iphdr4 *ih = (struct iphdr4 *)(nb + 8);
	__be32 ocs = 0, ncs = 0, otc = 0, ntc = 0;
	__u32 coff = p->in.l4 + inner_csum_off(&p->in);
	int has_cs = coff + 2 <= p->l4 + p->l4len; /* inside the ICMP message */
	__be16 eth_proto = bpf_htons(ETH_P_IP);
	__u32 tot = p->l4len - 20 + sizeof(h4);
	__u32 itot = p->in.len + sizeof(h4);
	__u16 old_icmp_cs;
	__u8 nt, nc;
	__u32 nrest;
	__s64 s;

	if (p->l4len < 48)
		return R_TRUNCATED;
	if (icmp6_to_4(p->icmp_type, p->icmp_code, p->icmp_rest, &nt, &nc, &nrest))
		return R_ICMP_TYPE;
	if (bpf_skb_load_bytes(skb, p->l4, oldb, 48))
		return R_TRUNCATED;
	old_icmp_cs = ((__u16 *)oldb)[1];
	((__u16 *)oldb)[1] = 0;

	nb[0] = nt;
	nb[1] = nc;
	*(__be32 *)(nb + 4) = bpf_htonl(nrest);
	ih->ver_ihl = 0x45;
	ih->tos = (bpf_ntohl(p->in.ip6.vtcfl) >> 20) & 0xff;
	ih->tot_len = bpf_htons(itot);
	ih->frag_off = itot > XLAT_DF_THRESHOLD ? bpf_htons(IP_DF) : 0;
	ih->ttl = p->in.ip6.hlim;
	ih->protocol = p->in.proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : p->in.proto;
	ih->saddr = bpf_htonl(isrc);
	ih->daddr = bpf_htonl(idst);
	ih->check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)ih, 20, 0));

	if (has_cs) {
		if (bpf_skb_load_bytes(skb, coff, &ocs, 2))
			return R_TRUNCATED;
		if (p->in.proto == IPPROTO_ICMPV6) {
			__be32 ip[10] = {};

			if (bpf_skb_load_bytes(skb, p->in.l4, &otc, 2))
				return R_TRUNCATED;
			ntc = otc;
			((__u8 *)&ntc)[0] = p->in.icmp_type == 128 ? 8 : 0;
			__builtin_memcpy(ip, p->in.ip6.saddr, 32);
			ip[8] = bpf_htonl(p->in.len);
			ip[9] = bpf_htonl(IPPROTO_ICMPV6);
			s = bpf_csum_diff(&otc, 4, &ntc, 4, 0);
			s = bpf_csum_diff(ip, sizeof(ip), 0, 0, s);
		} else {
			s = bpf_csum_diff((__be32 *)p->in.ip6.saddr, 32, &ih->saddr, 8, 0);
		}
		ncs = ocs;
		if (!(p->in.proto == IPPROTO_UDP && ocs == 0)) {
			*(__u16 *)&ncs = csum_apply(*(__u16 *)&ocs, s);
			if (p->in.proto == IPPROTO_UDP && *(__u16 *)&ncs == 0)
				*(__u16 *)&ncs = 0xffff;
		}
	}

	__builtin_memcpy(pseudo, p->ip6.saddr, 32);
	pseudo[8] = bpf_htonl(p->l4len);
	pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
	s = bpf_csum_diff((__be32 *)oldb, 48, (__be32 *)newb, 28, (__u16)~old_icmp_cs);
	s = bpf_csum_diff(pseudo, sizeof(pseudo), 0, 0, s);
	s = bpf_csum_diff(&ocs, 4, &ncs, 4, s);
	s = bpf_csum_diff(&otc, 4, &ntc, 4, s);
	((__u16 *)newb)[1] = csum_fold(s);

	h4.ver_ihl = 0x45;
	h4.tos = (bpf_ntohl(p->ip6.vtcfl) >> 20) & 0xff;
	h4.tot_len = bpf_htons(tot);
	h4.id = (__be16)bpf_get_prandom_u32();
	h4.ttl = p->ip6.hlim;
	h4.protocol = IPPROTO_ICMP;
	h4.saddr = bpf_htonl(osrc);
	h4.daddr = bpf_htonl(odst);
	h4.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&h4, sizeof(h4), 0));

	/* Write the new ICMP and inner headers so that they end where the
	 * inner transport header starts, then cut the 20 bytes before them
	 * and the 20 extra bytes of the outer header. */
	if (bpf_skb_store_bytes(skb, p->l4 + 20, newb, 28, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (has_cs) {
		if (bpf_skb_store_bytes(skb, coff, &ncs, 2, BPF_F_RECOMPUTE_CSUM))
			return R_HELPER;
		if (p->in.proto == IPPROTO_ICMPV6 &&
		    bpf_skb_store_bytes(skb, p->in.l4, &ntc, 2, BPF_F_RECOMPUTE_CSUM))
			return R_HELPER;
	}
	if (bpf_skb_adjust_room(skb, -20, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3, &h4, sizeof(h4), BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (p->l3 >= ETH_HLEN && bpf_skb_store_bytes(skb, p->l3 - 2, &eth_proto, 2, 0))
		return R_HELPER;
	return 0;
}

#endif /* MAPT_ICMP_H */
