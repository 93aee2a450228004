/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header translation (RFC 7915 s4, s5): 4->6, 6->4, the BR hairpin rewrite,
 * UDP checksum completion, fragments.
 */
#ifndef MAPT_XLAT_H
#define MAPT_XLAT_H

#include "parse.h"

/* ---- header translation (RFC 7915 s4 and s5) ---- */

/* sum_bytes adds bytes [off, off+len) of the packet to a checksum, len at
 * most UDP_CSUM_MAX; off must be even relative to the checksummed data. */
static __always_inline int sum_bytes(struct __sk_buff *skb, __u32 off, __u32 len, __s64 *sum)
{
	__u32 zero = 0;
	struct scratch *buf = bpf_map_lookup_elem(&scratch, &zero);
	__u32 i, k;

	if (!buf)
		return R_HELPER;
	/* Hide what the compiler knows of len: it would drop the loop bound
	 * that the verifier needs when a caller's len is provably small. */
	asm volatile("" : "+r"(len));
	for (i = 0; i < UDP_CSUM_MAX / sizeof(buf->b); i++) {
		__u32 pos = i * sizeof(buf->b);
		__u32 n;

		if (pos >= len)
			break;
		n = len - pos;
		if (n >= sizeof(buf->b)) {
			if (bpf_skb_load_bytes(skb, off + pos, buf->b, sizeof(buf->b)))
				return R_TRUNCATED;
			*sum = bpf_csum_diff(0, 0, (__be32 *)buf->b, sizeof(buf->b), *sum);
			continue;
		}
		/* The tail: 0 < n < 256. The mask is in asm because the
		 * compiler knows it changes nothing, and the verifier needs
		 * to see it. */
		asm volatile("%[n] += -1\n\t%[n] &= 0xff\n\t%[n] += 1" : [n] "+r"(n));
		if (bpf_skb_load_bytes(skb, off + pos, buf->b, n))
			return R_TRUNCATED;
		/* Zero padding up to 4 bytes leaves a ones' complement sum be. */
		for (k = 0; k < 3; k++) {
			__u32 j = n + k;

			if ((j & 3) == 0)
				break;
			buf->b[j & (sizeof(buf->b) - 1)] = 0;
		}
		n = ((n + 3) & ~3U) & (2 * sizeof(buf->b) - 1);
		if (n > sizeof(buf->b))
			return R_HELPER;
		*sum = bpf_csum_diff(0, 0, (__be32 *)buf->b, n, *sum);
	}
	return 0;
}

/* udp_complete computes the checksum an IPv4 UDP datagram went without,
 * over the translated datagram and the IPv6 pseudo-header (RFC 7915 s4.5:
 * IPv6 UDP must carry one). The datagram is at most UDP_CSUM_MAX bytes. */
static __always_inline int udp_complete(struct __sk_buff *skb, struct pkt *p, const struct iphdr6 *h6)
{
	__be32 pseudo[10] = {};
	__s64 sum = 0;
	__u16 cs;
	int err;

	err = sum_bytes(skb, p->l4, p->l4len, &sum);
	if (err)
		return err;
	__builtin_memcpy(pseudo, h6->saddr, 32);
	pseudo[8] = bpf_htonl(p->l4len);
	pseudo[9] = bpf_htonl(IPPROTO_UDP);
	sum = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), sum);
	cs = csum_fold(sum);
	if (cs == 0)
		cs = 0xffff;
	if (bpf_skb_store_bytes(skb, p->l4 + 6, &cs, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	return 0;
}

/* l4_pseudo_fixup applies a change of the pseudo-header addresses (diff,
 * from bpf_csum_diff) to the transport checksum at off, for the protocols
 * that have one. UDP's zero checksum stays zero (MARK_MANGLED_0: "none"). */
static __always_inline int l4_pseudo_fixup(struct __sk_buff *skb, __u8 proto, __u32 off, __s64 diff)
{
	__u64 flags = BPF_F_PSEUDO_HDR;

	if (proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(skb, off, 0, diff, flags))
		return R_HELPER;
	return 0;
}

/* icmp_type_fixup rewrites an echo's type (RFC 7915 s4.2, s5.2) and adds
 * or removes the ICMPv6 pseudo-header (ph: its 40 bytes with the addresses
 * and the ICMPv6 length) in the checksum. */
static __always_inline int icmp_type_fixup(struct __sk_buff *skb, const struct pkt *p, __u8 ntype, const __be32 *ph, int to6)
{
	__u16 old_tc = ((__u16)p->icmp_type << 8) | p->icmp_code;
	__be16 otc = bpf_htons(old_tc), ntc = bpf_htons((__u16)ntype << 8);
	__u32 off = p->l4 + 2;
	__s64 diff;

	if (bpf_skb_store_bytes(skb, p->l4, &ntc, 2, 0))
		return R_HELPER;
	if (bpf_l4_csum_replace(skb, off, otc, ntc, 2))
		return R_HELPER;
	diff = to6 ? bpf_csum_diff(0, 0, (__be32 *)ph, 40, 0) : bpf_csum_diff((__be32 *)ph, 40, 0, 0, 0);
	if (bpf_l4_csum_replace(skb, off, 0, diff, BPF_F_PSEUDO_HDR))
		return R_HELPER;
	return 0;
}

/* put_ethertype writes the packet's new family into its Ethernet
 * header, if it has one. */
static __always_inline int put_ethertype(struct __sk_buff *skb, const struct pkt *p, __be16 proto)
{
	if (p->l3 >= ETH_HLEN && bpf_skb_store_bytes(skb, p->l3 - 2, &proto, 2, 0))
		return R_HELPER;
	return 0;
}

/* put_l3 writes the new IP header (len bytes) at p->l3, and its family. */
static __always_inline int put_l3(struct __sk_buff *skb, const struct pkt *p, const void *h, __u32 len, __be16 proto)
{
	if (bpf_skb_store_bytes(skb, p->l3, h, len, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	return put_ethertype(skb, p, proto);
}

/* ---- the DS field: RFC 7915 s4.1, s5.1 ---- */

/* ipv6_vtcfl is the first word of a translated IPv6 header: version 6, the
 * Traffic Class copied from the IPv4 TOS octet, or the operator's value
 * (CFG_SET_TCLASS: s4.1's option for IPv4 networks that still give TOS
 * its old precedence meaning), and no flow label. */
static __always_inline __be32 ipv6_vtcfl(const struct xlat_config *c, __u8 tos)
{
	__u32 tc = c->flags & CFG_SET_TCLASS ? c->tclass : tos;

	return bpf_htonl((6U << 28) | (tc << 20));
}

/* ipv4_tos is a translated IPv4 header's TOS octet: the IPv6 Traffic Class
 * (all 8 bits) or the operator's value (CFG_SET_TOS, s5.1). */
static __always_inline __u8 ipv4_tos(const struct xlat_config *c, __be32 vtcfl)
{
	if (c->flags & CFG_SET_TOS)
		return c->tos;
	return (bpf_ntohl(vtcfl) >> 20) & 0xff;
}

/* xlat_4to6 replaces the IPv4 header at p->l3 by an IPv6 header with the
 * given addresses. TTL is copied: the stack decrements it on each node. */
static __always_inline int xlat_4to6(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, __u64 shi, __u64 slo, __u64 dhi, __u64 dlo)
{
	struct iphdr6 h6 = {};
	__be32 old[2] = {p->ip4.saddr, p->ip4.daddr};
	__be32 pseudo[10] = {};
	/* The transport header ends up after the IPv6 header and, for a
	 * fragment, the Fragment Header; IPv4 options are gone. */
	__u32 nl4 = p->l3 + 40 + (p->frag ? 8 : 0);
	__u32 coff = l4_csum_off(p->proto);
	__u32 fh[2];
	__s64 diff;

	h6.vtcfl = ipv6_vtcfl(c, p->ip4.tos);
	h6.plen = bpf_htons(p->l4len + (p->frag ? 8 : 0));
	h6.nexthdr = p->proto == IPPROTO_ICMP ? IPPROTO_ICMPV6 : p->proto;
	if (p->frag) {
		h6.nexthdr = IPPROTO_FRAGMENT;
		fh[0] = bpf_htonl(((__u32)p->proto << 24) | ((__u32)p->frag_off << 3) | p->mf);
		fh[1] = bpf_htonl(p->frag_id);
	}
	h6.hlim = p->ip4.ttl;
	*(__u64 *)&h6.saddr[0] = bpf_cpu_to_be64(shi);
	*(__u64 *)&h6.saddr[8] = bpf_cpu_to_be64(slo);
	*(__u64 *)&h6.daddr[0] = bpf_cpu_to_be64(dhi);
	*(__u64 *)&h6.daddr[8] = bpf_cpu_to_be64(dlo);

	/* While still IPv4, BPF_ADJ_ROOM_NET cuts right after the fixed
	 * header: exactly the options. */
	if (p->optlen && bpf_skb_adjust_room(skb, -(__s32)p->optlen, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return R_HELPER;
	if (p->frag && bpf_skb_adjust_room(skb, 8, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (p->frag && bpf_skb_store_bytes(skb, p->l3 + sizeof(h6), fh, 8, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (put_l3(skb, p, &h6, sizeof(h6), bpf_htons(ETH_P_IPV6)))
		return R_HELPER;
	p->l4 = nl4;
	if (p->frag == FRAG_LATER)
		return 0;

	if (p->udp_nocsum)
		return udp_complete(skb, p, &h6);
	if (p->proto == IPPROTO_ICMP) {
		/* ICMP echo -> ICMPv6 echo: new type, and the checksum
		 * gains the IPv6 pseudo-header (RFC 7915 s4.2). */
		__builtin_memcpy(pseudo, h6.saddr, 32);
		pseudo[8] = bpf_htonl(p->l4len);
		pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
		return icmp_type_fixup(skb, p, p->icmp_type == 8 ? 128 : 129, pseudo, 1);
	}
	if (!coff || p->l4len < coff + 2)
		return 0; /* no pseudo-header checksum (SCTP, GRE, ESP, ...) */
	diff = bpf_csum_diff(old, sizeof(old), (__be32 *)h6.saddr, 32, 0);
	return l4_pseudo_fixup(skb, p->proto, nl4 + coff, diff);
}

/* xlat_6to4 replaces the IPv6 header at p->l3 by an IPv4 header. */
static __always_inline int xlat_6to4(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, __u32 saddr, __u32 daddr)
{
	struct iphdr4 h4 = {};
	__be32 pseudo[10] = {};
	__u32 tot = p->l4len + sizeof(h4);
	/* The transport header ends up right after the IPv4 header; the
	 * extension headers (Fragment Header included) are gone. */
	__u32 nl4 = p->l3 + sizeof(h4);
	__u32 coff = l4_csum_off(p->proto);
	__s64 diff;

	h4.ver_ihl = 0x45;
	h4.tos = ipv4_tos(c, p->ip6.vtcfl);
	h4.tot_len = bpf_htons(tot);
	/* RFC 7915 s5.1: small packets may be fragmented later on the IPv4
	 * path, so they get DF clear and an identification; fragments keep
	 * theirs (s5.1.1). */
	if (p->frag) {
		h4.id = bpf_htons((__u16)p->frag_id);
		h4.frag_off = bpf_htons(p->frag_off | (p->mf ? IP_MF : 0));
	} else if (tot > XLAT_DF_THRESHOLD) {
		h4.frag_off = bpf_htons(IP_DF);
	} else {
		__u16 id = bpf_get_prandom_u32();

		if (p->id_k)
			id = id_into_set(id, p->id_a, p->id_k, p->id_m, p->id_psid);
		h4.id = bpf_htons(id);
	}
	h4.ttl = p->ip6.hlim;
	h4.protocol = p->proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : p->proto;
	h4.saddr = bpf_htonl(saddr);
	h4.daddr = bpf_htonl(daddr);
	h4.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&h4, sizeof(h4), 0));

	__builtin_memcpy(pseudo, p->ip6.saddr, 32);
	/* The extension headers sit right after the fixed IPv6 header,
	 * which is where BPF_ADJ_ROOM_NET cuts. */
	if (p->v6ext && bpf_skb_adjust_room(skb, -(__s32)p->v6ext, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return R_HELPER;
	if (put_l3(skb, p, &h4, sizeof(h4), bpf_htons(ETH_P_IP)))
		return R_HELPER;
	p->l4 = nl4;
	if (p->frag == FRAG_LATER)
		return 0;

	if (p->proto == IPPROTO_ICMPV6) {
		pseudo[8] = bpf_htonl(p->l4len);
		pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
		return icmp_type_fixup(skb, p, p->icmp_type == 128 ? 8 : 0, pseudo, 0);
	}
	if (!coff || p->l4len < coff + 2)
		return 0;
	diff = bpf_csum_diff(pseudo, 32, &h4.saddr, 8, 0);
	return l4_pseudo_fixup(skb, p->proto, nl4 + coff, diff);
}

/* rewrite6 changes both addresses of an IPv6 packet in place (the BR's
 * hairpin: 6->4->6 in one step; the DS field and flow label as the IPv4
 * leg would leave them). */
static __always_inline int rewrite6(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, __u64 shi, __u64 slo,
				    __u64 dhi, __u64 dlo)
{
	__u64 na[4];
	__be32 vtcfl = ipv6_vtcfl(c, ipv4_tos(c, p->ip6.vtcfl));
	__s64 diff;

	na[0] = bpf_cpu_to_be64(shi);
	na[1] = bpf_cpu_to_be64(slo);
	na[2] = bpf_cpu_to_be64(dhi);
	na[3] = bpf_cpu_to_be64(dlo);
	diff = bpf_csum_diff((__be32 *)p->ip6.saddr, 32, (__be32 *)na, 32, 0);
	if (bpf_skb_store_bytes(skb, p->l3, &vtcfl, 4, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3 + 8, na, 32, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (!l4_csum_off(p->proto) || p->frag == FRAG_LATER)
		return 0;
	return l4_pseudo_fixup(skb, p->proto, p->l4 + l4_csum_off(p->proto), diff);
}

/* ---- fragments ---- */

/* frag_ports remembers the ports of a first fragment, or finds them for a
 * later one (RFC 7597 s8.3.3); it returns -1 when a later fragment's first
 * was not seen, or so long ago (FRAG_TIMEOUT_NS) that the identification
 * may have been reused. */
static __always_inline int frag_ports(struct pkt *p)
{
	struct frag_key k = {
		.src = p->ip4.saddr,
		.dst = p->ip4.daddr,
		.id = (__u16)p->frag_id,
		.proto = p->proto,
	};
	struct frag_val v = {.seen_ns = bpf_ktime_get_ns(), .sport = p->sport, .dport = p->dport};
	struct frag_val *f;

	if (p->frag == FRAG_FIRST) {
		bpf_map_update_elem(&frag_cache, &k, &v, BPF_ANY);
		return 0;
	}
	f = bpf_map_lookup_elem(&frag_cache, &k);
	if (!f || v.seen_ns - f->seen_ns > FRAG_TIMEOUT_NS)
		return -1;
	p->sport = f->sport;
	p->dport = f->dport;
	p->noport = 0;
	return 0;
}

/* frag6_check is the BR's guard for fragments from CEs (RFC 7599 s10.2,
 * s10.3): a first fragment that passed the port check is remembered by its
 * source MAP address, destination, identification and protocol; a later
 * fragment passes only when its first did, recently, from the same source.
 * Otherwise a CE could slip fragments into the datagrams of another CE
 * that shares its IPv4 address. */
static __always_inline int frag6_check(const struct pkt *p, __u32 daddr)
{
	struct frag6_key k = {
		.shi = v6_hi(p->ip6.saddr),
		.slo = v6_lo(p->ip6.saddr),
		.dst = daddr,
		.id = p->frag_id,
		.proto = p->proto,
	};
	__u64 now = bpf_ktime_get_ns(), *seen;

	if (p->frag == FRAG_FIRST) {
		bpf_map_update_elem(&frag6_seen, &k, &now, BPF_ANY);
		return 0;
	}
	seen = bpf_map_lookup_elem(&frag6_seen, &k);
	if (!seen || now - *seen > FRAG_TIMEOUT_NS)
		return R_FRAG_MISS;
	return 0;
}


#endif /* MAPT_XLAT_H */
