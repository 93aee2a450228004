/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP error translation with the packet in error (RFC 7915 s4.2-4.3,
 * s5.2-5.3), RFC 4884 extensions, and the size limits of ICMP errors.
 * One function per step: type and code (icmp4_to_6, icmp6_to_4), the MTU
 * (mtu4_to_6, mtu6_to_4), the extension layout (ext_layout), the moves
 * and cuts of bytes (move_right, icmp_cut), then the two translations.
 */
#ifndef MAPT_ICMP_H
#define MAPT_ICMP_H

#include "xlat.h"

/* plateau is RFC 1191 s7's guess at a path MTU for a Fragmentation Needed
 * that carries none (MTU 0): the greatest plateau below the total length
 * of the packet in error. */
static __always_inline __u32 plateau(__u32 tot)
{
	if (tot > 32000)
		return 32000;
	if (tot > 17914)
		return 17914;
	if (tot > 8166)
		return 8166;
	if (tot > 4352)
		return 4352;
	if (tot > 2002)
		return 2002;
	if (tot > 1492)
		return 1492;
	if (tot > 1006)
		return 1006;
	if (tot > 508)
		return 508;
	if (tot > 296)
		return 296;
	return 68;
}

/* mtu4_to_6 is the MTU of the Packet Too Big a Fragmentation Needed
 * becomes (RFC 7915 s4.2): max(1280, min(MTU + 20, MTU of the IPv6 next
 * hop, MTU of the IPv4 next hop + 20)), the plateau standing in for an
 * MTU of 0. tot is the total length of the IPv4 packet in error. */
static __always_inline __u32 mtu4_to_6(const struct xlat_config *c, __u32 mtu, __u32 tot)
{
	__u32 n;

	if (mtu == 0)
		mtu = plateau(tot);
	n = mtu + 20;
	if (c->v6_mtu && n > c->v6_mtu)
		n = c->v6_mtu;
	if (c->v4_mtu && n > c->v4_mtu + 20)
		n = c->v4_mtu + 20;
	return n < 1280 ? 1280 : n;
}

/* mtu6_to_4 is the MTU of the Fragmentation Needed a Packet Too Big
 * becomes (RFC 7915 s5.2): min(MTU - 20, MTU of the IPv4 next hop, MTU of
 * the IPv6 next hop - 20), 8 less again when the packet in error carried a
 * Fragment Header (its IPv4 form has none). 0: drop (below IPv4's 68). */
static __always_inline __u32 mtu6_to_4(const struct xlat_config *c, __u32 mtu, int frag)
{
	__u32 hdr = frag ? 28 : 20;
	__u32 n;

	if (mtu < 68 + hdr)
		return 0;
	n = mtu - hdr;
	if (c->v4_mtu && n > c->v4_mtu)
		n = c->v4_mtu;
	if (c->v6_mtu && c->v6_mtu > hdr && n > c->v6_mtu - hdr)
		n = c->v6_mtu - hdr;
	return n > 0xffff ? 0xffff : n;
}

/* icmp4_to_6 maps an ICMPv4 error type/code and header bytes 4-7 to
 * ICMPv6; it returns -1 for what RFC 7915 s4.2 drops. */
static __always_inline int icmp4_to_6(const struct xlat_config *c, const struct pkt *p, __u8 *nt, __u8 *nc, __u32 *nrest)
{
	__u8 t = p->icmp_type, code = p->icmp_code;
	__u32 rest = p->icmp_rest;

	*nrest = 0;
	switch (t) {
	case 3: /* destination unreachable */
		switch (code) {
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
		case 4: /* fragmentation needed: packet too big */
			*nt = 2;
			*nc = 0;
			*nrest = mtu4_to_6(c, rest & 0xffff, p->in.len + 20 + inner_optlen(&p->in));
			return 0;
		case 9: case 10: case 13: case 15:
			*nt = 1;
			*nc = 1;
			return 0;
		}
		return -1;
	case 11: /* time exceeded */
		if (code > 1)
			return -1;
		*nt = 3;
		*nc = code;
		return 0;
	case 12: { /* parameter problem: map the pointer (Figure 3) */
		__u8 ptr = rest >> 24;

		if (code != 0 && code != 2)
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
static __always_inline int icmp6_to_4(const struct xlat_config *c, const struct pkt *p, __u8 *nt, __u8 *nc, __u32 *nrest)
{
	__u8 t = p->icmp_type, code = p->icmp_code;
	__u32 rest = p->icmp_rest;

	*nrest = 0;
	switch (t) {
	case 1: /* destination unreachable */
		*nt = 3;
		switch (code) {
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
	case 2: /* packet too big: fragmentation needed */
		*nt = 3;
		*nc = 4;
		*nrest = mtu6_to_4(c, rest, p->in.frag);
		return *nrest ? 0 : -1;
	case 3: /* time exceeded */
		if (code > 1)
			return -1;
		*nt = 11;
		*nc = code;
		return 0;
	case 4: /* parameter problem (Figure 6) */
		if (code == 1) { /* unrecognised next header */
			*nt = 3;
			*nc = 2;
			return 0;
		}
		if (code != 0)
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

/* csum_apply applies a bpf_csum_diff result to a checksum field. */
static __always_inline __u16 csum_apply(__u16 old, __s64 diff)
{
	__u64 s = (__u16)~old;

	s += (__u32)diff;
	return csum_fold(s);
}

/* csum_sub removes bytes from what a checksum field covers, given the
 * complement of their folded sum (icmp_cut_sum): subtracting in ones'
 * complement is adding the complement. */
static __always_inline __u16 csum_sub(__u16 cs, __u16 neg)
{
	return csum_fold((__u64)(__u16)~cs + neg);
}

/* The RFC 4884 layout of a translated error: how long the original
 * datagram field is, the zero padding after it, the extension structure
 * after that (its length; 0 when there is none or it is left out). */
struct ext_layout {
	__u32 orig;    /* original datagram field, translated, before padding */
	__u32 pad;     /* zeros added after it */
	__u32 ext;     /* extension bytes kept */
	__u32 ext_off; /* where the extension starts in the input (0: none) */
	__u32 cut;     /* bytes of an extension left out, at the input's end */
	__u8 words;    /* the new length attribute */
};

/* Extensions longer than this are left out rather than moved (four
 * rounds of the scratch buffer). */
#define EXT_MOVE_MAX 1024

/* ext_layout plans RFC 4884 for one error: the original datagram field
 * grows (4->6) or shrinks (6->4) by delta with the header translation, is
 * padded to the new word size (8 or 4) and to at least 128 bytes, and the
 * length attribute says so. The extension is kept when the new type has a
 * length attribute (ext_word) and is left out otherwise ("the ICMPv4
 * extension SHOULD be simply truncated", RFC 7915 s4.2). */
static __always_inline void ext_layout(const struct pkt *p, __s32 delta, __u32 new_ext_word, struct ext_layout *e)
{
	__u32 orig_in, target;

	__builtin_memset(e, 0, sizeof(*e));
	orig_in = p->ext_off ? p->ext_off - (p->l4 + 8) : p->l4len - 8;
	e->orig = orig_in + delta;
	if (!p->ext_off)
		return;
	e->ext = p->l4 + p->l4len - p->ext_off;
	if (!new_ext_word || e->ext > EXT_MOVE_MAX) {
		e->cut = e->ext;
		e->ext = 0;
		return;
	}
	e->ext_off = p->ext_off;
	target = (e->orig + new_ext_word - 1) & ~(new_ext_word - 1);
	if (target < 128)
		target = 128;
	e->pad = target - e->orig;
	e->words = new_ext_word == 8 ? target >> 3 : target >> 2; /* no division: 32-bit JITs lack 64-bit div */
}

/* move_right moves len bytes at off by n bytes towards the end (the
 * packet must already be long enough), from the last chunk backwards, and
 * zeroes the n bytes it opened. len <= EXT_MOVE_MAX, n < 128. */
static __always_inline int move_right(struct __sk_buff *skb, __u32 off, __u32 len, __u32 n)
{
	__u32 zero = 0, i;
	struct scratch *buf = bpf_map_lookup_elem(&scratch, &zero);

	if (!buf)
		return R_HELPER;
	asm volatile("" : "+r"(len)); /* keep the loop bound (see sum_bytes) */
	for (i = 0; i < EXT_MOVE_MAX / sizeof(buf->b); i++) {
		__u32 done = i * sizeof(buf->b), c, from;

		if (done >= len)
			break;
		c = len - done;
		if (c > sizeof(buf->b))
			c = sizeof(buf->b);
		asm volatile("%[c] += -1\n\t%[c] &= 0xff\n\t%[c] += 1" : [c] "+r"(c));
		from = off + len - done - c;
		if (bpf_skb_load_bytes(skb, from, buf->b, c))
			return R_TRUNCATED;
		if (bpf_skb_store_bytes(skb, from + n, buf->b, c, BPF_F_RECOMPUTE_CSUM))
			return R_HELPER;
	}
	__builtin_memset(buf->b, 0, 128);
	asm volatile("%[n] += -1\n\t%[n] &= 0x7f\n\t%[n] += 1" : [n] "+r"(n));
	if (bpf_skb_store_bytes(skb, off, buf->b, n, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	return 0;
}

/* icmp_cut_sum is the complement of the folded sum of the bytes
 * [off, off+len) that a cut removes (0 when len is 0), for csum_sub; off
 * is even within the ICMP message. */
static __always_inline int icmp_cut_sum(struct __sk_buff *skb, __u32 off, __u32 len, __u16 *neg)
{
	__s64 sum = 0;
	int err;

	*neg = 0;
	if (!len)
		return 0;
	if (len > UDP_CSUM_MAX)
		return R_ICMP_TYPE;
	err = sum_bytes(skb, off, len, &sum);
	if (err)
		return err;
	*neg = csum_fold(sum);
	return 0;
}

/* icmp6_trim cuts a translated ICMPv6 error to the IPv6 minimum MTU
 * (RFC 4443 s2.4(c)): the checksum loses the cut bytes and the shorter
 * length in the pseudo-header. plen is the current payload length, cs the
 * current checksum. */
static __always_inline int icmp6_trim(struct __sk_buff *skb, __u32 l3, __u32 plen, __u16 cs)
{
	const __u32 keep = ICMP6_ERR_MAX - 40;
	__be32 olen = bpf_htonl(plen), nlen = bpf_htonl(keep);
	__be16 np = bpf_htons(keep);
	__u16 neg;
	__s64 s;
	int err;

	if (plen <= keep)
		return 0;
	err = icmp_cut_sum(skb, l3 + 40 + keep, plen - keep, &neg);
	if (err)
		return err;
	s = bpf_csum_diff(&olen, 4, &nlen, 4, (__u16)~cs);
	cs = csum_sub(csum_fold(s), neg);
	if (bpf_skb_store_bytes(skb, l3 + 4, &np, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, l3 + 40 + 2, &cs, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (bpf_skb_change_tail(skb, l3 + ICMP6_ERR_MAX, 0))
		return R_HELPER;
	return 0;
}

/* rewrite6_err is the BR hairpin for an ICMPv6 error: both address pairs
 * change, outer (o) and inner (i), and with them the inner transport
 * checksum (its pseudo-header) and the ICMPv6 checksum (its pseudo-header,
 * the inner addresses and the inner checksum field). All writes are
 * recorded with BPF_F_RECOMPUTE_CSUM. */
static __always_inline int rewrite6_err(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p,
					const struct addrs6 *o, const struct addrs6 *i)
{
	__u64 on[4], in[4];
	__be32 ocs = 0, ncs = 0;
	__u16 icmp_cs;
	__u32 co = l4_csum_off(p->in.proto);
	__u32 coff = p->in.l4 + co;
	int has_cs = co && coff + 2 <= p->l4 + p->l4len;
	__be32 vtcfl = ipv6_vtcfl(c, ipv4_tos(c, p->ip6.vtcfl));
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

/* inner_csum_delta computes the change of the inner transport checksum
 * (the packet in error is translated like any packet: RFC 7915 s4.3,
 * s5.3) and of an inner echo's type word. old4/new6 are the inner
 * addresses in the pseudo-header form of either family; to6 says which
 * way. It loads the old checksum and type word from the packet. */
struct inner_fix {
	__be32 ocs, ncs, otc, ntc; /* old/new checksum and type word (low 16 bits used) */
	__u32 coff;                 /* where the inner checksum is, 0: none in the message */
};

static __always_inline int inner_fix(struct __sk_buff *skb, const struct pkt *p, const void *oaddr, __u32 olen,
				     const void *naddr, __u32 nlen, int to6, struct inner_fix *f)
{
	__u32 co = l4_csum_off(p->in.proto);
	__s64 s;

	__builtin_memset(f, 0, sizeof(*f));
	if (!co || p->in.l4 + co + 2 > p->l4 + p->l4len)
		return 0; /* no checksum, or cut off in the error */
	f->coff = p->in.l4 + co;
	if (bpf_skb_load_bytes(skb, f->coff, &f->ocs, 2))
		return R_TRUNCATED;
	f->ncs = f->ocs;
	if (p->in.proto == IPPROTO_ICMP || p->in.proto == IPPROTO_ICMPV6) {
		/* An echo: the type changes and the ICMPv6 pseudo-header
		 * comes or goes; the IPv4 addresses are not in ICMPv4's. */
		__be32 ph[10] = {};

		if (bpf_skb_load_bytes(skb, p->in.l4, &f->otc, 2))
			return R_TRUNCATED;
		f->ntc = f->otc;
		if (to6) {
			((__u8 *)&f->ntc)[0] = p->in.icmp_type == 8 ? 128 : 129;
			__builtin_memcpy(ph, naddr, 32);
		} else {
			((__u8 *)&f->ntc)[0] = p->in.icmp_type == 128 ? 8 : 0;
			__builtin_memcpy(ph, oaddr, 32);
		}
		ph[8] = bpf_htonl(p->in.len);
		ph[9] = bpf_htonl(IPPROTO_ICMPV6);
		s = bpf_csum_diff(&f->otc, 4, &f->ntc, 4, 0);
		s = to6 ? bpf_csum_diff(0, 0, ph, sizeof(ph), s) : bpf_csum_diff(ph, sizeof(ph), 0, 0, s);
	} else {
		s = bpf_csum_diff((__be32 *)oaddr, olen, (__be32 *)naddr, nlen, 0);
	}
	if (!(p->in.proto == IPPROTO_UDP && f->ocs == 0)) {
		*(__u16 *)&f->ncs = csum_apply(*(__u16 *)&f->ocs, s);
		if (p->in.proto == IPPROTO_UDP && *(__u16 *)&f->ncs == 0)
			*(__u16 *)&f->ncs = 0xffff;
	}
	return 0;
}

/* inner_fix_store writes the inner checksum (and echo type) at their new
 * place, shift bytes further on (negative: back). */
static __always_inline int inner_fix_store(struct __sk_buff *skb, const struct pkt *p, const struct inner_fix *f, __s32 shift)
{
	if (!f->coff)
		return 0;
	if (bpf_skb_store_bytes(skb, f->coff + shift, &f->ncs, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if ((p->in.proto == IPPROTO_ICMP || p->in.proto == IPPROTO_ICMPV6) &&
	    bpf_skb_store_bytes(skb, p->in.l4 + shift, &f->ntc, 2, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	return 0;
}

/* strip_outer leaves out what an ICMP error's outer header carries
 * beyond its fixed part, n bytes of IPv4 options or IPv6 extension
 * headers: the error is translated "just like a normal IP packet" (RFC
 * 7915 s4.3, s5.3), and those are not translated (s4.1, s5.1). While the
 * header is still of the old family, BPF_ADJ_ROOM_NET cuts right after
 * its fixed part; the offsets parse took move with the bytes. */
static __always_inline int strip_outer(struct __sk_buff *skb, struct pkt *p, __u32 n)
{
	if (!n)
		return 0;
	if (bpf_skb_adjust_room(skb, -(__s32)n, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	p->l4 -= n;
	p->in.l3 -= n;
	p->in.l4 -= n;
	if (p->ext_off)
		p->ext_off -= n;
	return 0;
}

/* xlat_4to6_err translates an ICMPv4 error and the IPv4 packet inside it
 * into an ICMPv6 error: the outer header grows by 20 bytes (change_proto)
 * and so does the inner one, 28 with a Fragment Header for a fragment,
 * less its options (adjust_room right after the new outer header; the
 * outer options are gone before, strip_outer). An RFC 4884 extension
 * is kept behind the padded original datagram and the length attribute
 * set in 64-bit words, or left out where the ICMPv6 type has none. The
 * ICMPv6 checksum is derived from the old one by the exact differences:
 * the rewritten header bytes, the pseudo-header, the inner transport
 * checksum and any bytes left out. Every byte written is recorded with
 * BPF_F_RECOMPUTE_CSUM, so CHECKSUM_COMPLETE stays right. The result is
 * cut to 1280 bytes (RFC 4443 s2.4(c)). */
static __always_inline int xlat_4to6_err(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p,
					 const struct addrs6 *o, const struct addrs6 *i)
{
	struct iphdr6 h6 = {};
	__u64 oldb[11] = {}; /* ICMP header + inner IPv4 header with options: 28-68 bytes */
	__u64 newb[7] = {}; /* ICMPv6 header + inner IPv6 header (+ Fragment Header): 48 or 56 bytes */
	__be32 pseudo[10] = {};
	__u8 *nb = (__u8 *)newb;
	struct iphdr6 *ih = (struct iphdr6 *)(nb + 8);
	__u32 io = inner_optlen(&p->in);
	__s32 ig = (p->in.frag ? 28 : 20) - (__s32)io; /* inner growth */
	__be32 oa[2] = {p->in.ip4.saddr, p->in.ip4.daddr};
	struct inner_fix f;
	struct ext_layout e;
	__u16 old_icmp_cs, cut = 0, cs;
	__u32 plen;
	__u8 nt, nc;
	__u32 nrest;
	__s64 s;
	int err;

	if (icmp4_to_6(c, p, &nt, &nc, &nrest))
		return R_ICMP_TYPE;
	err = strip_outer(skb, p, p->optlen);
	if (err)
		return err;
	ext_layout(p, ig, icmp_ext_len_off(nt, 1) ? 8 : 0, &e);
	if (e.words)
		nrest |= (__u32)e.words << 24;
	plen = 8 + e.orig + e.pad + e.ext;
	if (bpf_skb_load_bytes(skb, p->l4, oldb, 28 + io))
		return R_TRUNCATED;
	old_icmp_cs = ((__u16 *)oldb)[1];
	((__u16 *)oldb)[1] = 0;

	nb[0] = nt;
	nb[1] = nc;
	*(__be32 *)(nb + 4) = bpf_htonl(nrest);
	ih->vtcfl = ipv6_vtcfl(c, p->in.ip4.tos);
	ih->plen = bpf_htons(p->in.len + (p->in.frag ? 8 : 0));
	ih->nexthdr = p->in.proto == IPPROTO_ICMP ? IPPROTO_ICMPV6 : p->in.proto;
	ih->hlim = p->in.ip4.ttl;
	*(__u64 *)&ih->saddr[0] = bpf_cpu_to_be64(i->shi);
	*(__u64 *)&ih->saddr[8] = bpf_cpu_to_be64(i->slo);
	*(__u64 *)&ih->daddr[0] = bpf_cpu_to_be64(i->dhi);
	*(__u64 *)&ih->daddr[8] = bpf_cpu_to_be64(i->dlo);
	if (p->in.frag) {
		/* RFC 7915 s4.1: a fragment gets a Fragment Header, M set,
		 * offset 0 (later fragments have no ports and are dropped). */
		ih->nexthdr = IPPROTO_FRAGMENT;
		newb[6] = bpf_cpu_to_be64(((__u64)p->in.proto << 56) | (1ULL << 32) | (__u16)p->in.frag_id);
	}
	err = inner_fix(skb, p, oa, 8, ih->saddr, 32, 1, &f);
	if (err)
		return err;
	err = icmp_cut_sum(skb, p->l4 + p->l4len - e.cut, e.cut, &cut);
	if (err)
		return err;

	h6.vtcfl = ipv6_vtcfl(c, p->ip4.tos);
	h6.plen = bpf_htons(plen);
	h6.nexthdr = IPPROTO_ICMPV6;
	h6.hlim = p->ip4.ttl;
	*(__u64 *)&h6.saddr[0] = bpf_cpu_to_be64(o->shi);
	*(__u64 *)&h6.saddr[8] = bpf_cpu_to_be64(o->slo);
	*(__u64 *)&h6.daddr[0] = bpf_cpu_to_be64(o->dhi);
	*(__u64 *)&h6.daddr[8] = bpf_cpu_to_be64(o->dlo);

	__builtin_memcpy(pseudo, h6.saddr, 32);
	pseudo[8] = bpf_htonl(plen);
	pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
	s = bpf_csum_diff((__be32 *)oldb, 28 + io, (__be32 *)newb, 28 + io + ig, (__u16)~old_icmp_cs);
	s = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), s);
	s = bpf_csum_diff(&f.ocs, 4, &f.ncs, 4, s);
	s = bpf_csum_diff(&f.otc, 4, &f.ntc, 4, s);
	cs = csum_sub(csum_fold(s), cut);
	((__u16 *)newb)[1] = cs;

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return R_HELPER;
	if (bpf_skb_adjust_room(skb, ig, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (put_l3(skb, p, &h6, sizeof(h6), bpf_htons(ETH_P_IPV6)))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3 + 40, newb, 28 + io + ig, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	err = inner_fix_store(skb, p, &f, 20 + ig);
	if (err)
		return err;
	if (e.cut && bpf_skb_change_tail(skb, p->l3 + 40 + plen, 0))
		return R_HELPER;
	if (e.pad && e.ext) {
		if (bpf_skb_change_tail(skb, p->l3 + 40 + plen, 0))
			return R_HELPER;
		err = move_right(skb, e.ext_off + 20 + ig, e.ext, e.pad);
		if (err)
			return err;
	}
	return icmp6_trim(skb, p->l3, plen, cs);
}

/* xlat_6to4_err translates an ICMPv6 error and the IPv6 packet inside it
 * into an ICMPv4 error, the mirror image of xlat_4to6_err: the inner
 * header shrinks by 20 (28 with a Fragment Header), an RFC 4884 extension
 * stays behind the original datagram field padded to 128 bytes, and the
 * result is cut to 576 bytes (RFC 1812 s4.3.2.3). */
static __always_inline int xlat_6to4_err(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p,
					 __u32 osrc, __u32 odst, __u32 isrc, __u32 idst)
{
	struct iphdr4 h4 = {};
	__u64 oldb[16] = {}; /* ICMPv6 header + inner IPv6 header (+ extension headers, Fragment Header): 48-120 bytes */
	__u64 newb[4] = {}; /* ICMP header + inner IPv4 header: 28 bytes */
	__be32 pseudo[10] = {};
	__u8 *nb = (__u8 *)newb;
	struct iphdr4 *ih = (struct iphdr4 *)(nb + 8);
	/* Inner shrink: 20, and the extension headers and Fragment Header
	 * left out (parse_inner6). */
	__u32 is = p->in.l4 - p->in.l3 - 20;
	struct inner_fix f;
	struct ext_layout e;
	__u32 itot = p->in.len + sizeof(h4);
	__u16 old_icmp_cs, cut = 0, cs;
	__u32 tot;
	__u8 nt, nc;
	__u32 nrest;
	__s64 s;
	int err;

	__u32 olen = 28 + is; /* oldb's bytes */

	if (is > 20 + INNER_EXT_MAX + 8)
		return R_IPV6_EXTHDR; /* not from parse_inner6 */
	if (p->l4len < 8 + 20 + is)
		return R_TRUNCATED;
	if (icmp6_to_4(c, p, &nt, &nc, &nrest))
		return R_ICMP_TYPE;
	err = strip_outer(skb, p, p->v6ext);
	if (err)
		return err;
	ext_layout(p, -(__s32)is, icmp_ext_len_off(nt, 0) ? 4 : 0, &e);
	if (e.words)
		nrest |= (__u32)e.words << 16;
	tot = 20 + 8 + e.orig + e.pad + e.ext;
	/* 1 to 128 for the verifier; olen is 48 to 120. */
	asm volatile("%[n] += -1\n\t%[n] &= 0x7f\n\t%[n] += 1" : [n] "+r"(olen));
	if (bpf_skb_load_bytes(skb, p->l4, oldb, olen))
		return R_TRUNCATED;
	old_icmp_cs = ((__u16 *)oldb)[1];
	((__u16 *)oldb)[1] = 0;

	nb[0] = nt;
	nb[1] = nc;
	*(__be32 *)(nb + 4) = bpf_htonl(nrest);
	ih->ver_ihl = 0x45;
	ih->tos = ipv4_tos(c, p->in.ip6.vtcfl);
	ih->tot_len = bpf_htons(itot);
	if (p->in.frag) {
		ih->id = bpf_htons((__u16)p->in.frag_id);
		ih->frag_off = bpf_htons(IP_MF);
	} else {
		ih->frag_off = itot > XLAT_DF_THRESHOLD ? bpf_htons(IP_DF) : 0;
	}
	ih->ttl = p->in.ip6.hlim;
	ih->protocol = p->in.proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : p->in.proto;
	ih->saddr = bpf_htonl(isrc);
	ih->daddr = bpf_htonl(idst);
	ih->check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)ih, 20, 0));

	err = inner_fix(skb, p, p->in.ip6.saddr, 32, &ih->saddr, 8, 0, &f);
	if (err)
		return err;
	err = icmp_cut_sum(skb, p->l4 + p->l4len - e.cut, e.cut, &cut);
	if (err)
		return err;

	__builtin_memcpy(pseudo, p->ip6.saddr, 32);
	pseudo[8] = bpf_htonl(p->l4len);
	pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
	s = bpf_csum_diff((__be32 *)oldb, olen, (__be32 *)newb, 28, (__u16)~old_icmp_cs);
	s = bpf_csum_diff(pseudo, sizeof(pseudo), 0, 0, s);
	s = bpf_csum_diff(&f.ocs, 4, &f.ncs, 4, s);
	s = bpf_csum_diff(&f.otc, 4, &f.ntc, 4, s);
	cs = csum_sub(csum_fold(s), cut);
	((__u16 *)newb)[1] = cs;

	h4.ver_ihl = 0x45;
	h4.tos = ipv4_tos(c, p->ip6.vtcfl);
	h4.id = (__be16)bpf_get_prandom_u32();
	h4.ttl = p->ip6.hlim;
	h4.protocol = IPPROTO_ICMP;
	h4.saddr = bpf_htonl(osrc);
	h4.daddr = bpf_htonl(odst);

	/* Write the new ICMP and inner headers so that they end where the
	 * inner transport header starts, then cut what is before them and
	 * the 20 extra bytes of the outer header. */
	if (bpf_skb_store_bytes(skb, p->l4 + is, newb, 28, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	err = inner_fix_store(skb, p, &f, 0);
	if (err)
		return err;
	if (bpf_skb_adjust_room(skb, -(__s32)is, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return R_HELPER;
	if (put_ethertype(skb, p, bpf_htons(ETH_P_IP)))
		return R_HELPER;
	if (e.cut && bpf_skb_change_tail(skb, p->l3 + tot, 0))
		return R_HELPER;
	if (e.pad && e.ext) {
		if (bpf_skb_change_tail(skb, p->l3 + tot, 0))
			return R_HELPER;
		err = move_right(skb, e.ext_off - 20 - is, e.ext, e.pad);
		if (err)
			return err;
	}
	if (tot > ICMP4_ERR_MAX) {
		err = icmp_cut_sum(skb, p->l3 + ICMP4_ERR_MAX, tot - ICMP4_ERR_MAX, &cut);
		if (err)
			return err;
		cs = csum_sub(cs, cut);
		if (bpf_skb_store_bytes(skb, p->l3 + 20 + 2, &cs, 2, BPF_F_RECOMPUTE_CSUM))
			return R_HELPER;
		if (bpf_skb_change_tail(skb, p->l3 + ICMP4_ERR_MAX, 0))
			return R_HELPER;
		tot = ICMP4_ERR_MAX;
	}
	h4.tot_len = bpf_htons(tot);
	h4.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&h4, sizeof(h4), 0));
	if (bpf_skb_store_bytes(skb, p->l3, &h4, sizeof(h4), BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	return 0;
}

#endif /* MAPT_ICMP_H */
