/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address arithmetic: port sets, MAP addresses (RFC 7597 s5, RFC 7599 s6),
 * RFC 6052 embedding, rule lookup and mapping.
 */
#ifndef MAPT_ADDR_H
#define MAPT_ADDR_H

#include "maps.h"

/* ---- bit arithmetic on 128-bit addresses (hi, lo) ---- */

static __always_inline __u64 mask64(__u32 n)
{
	return n >= 64 ? ~0ULL : (1ULL << n) - 1;
}

/* Mask of the leading len bits of a 128-bit address. */
static __always_inline void prefix_mask(__u32 len, __u64 *hi, __u64 *lo)
{
	if (len >= 128) {
		*hi = ~0ULL;
		*lo = ~0ULL;
	} else if (len >= 64) {
		*hi = ~0ULL;
		*lo = ~mask64(128 - len);
	} else {
		*hi = len == 0 ? 0 : ~mask64(64 - len);
		*lo = 0;
	}
}

/* get_bits reads n (<= 48) bits starting at bit start (0 = most significant). */
static __always_inline __u64 get_bits(__u64 hi, __u64 lo, __u32 start, __u32 n)
{
	__u32 end = start + n;
	__u64 v = 0;

	if (n == 0 || end > 128)
		return 0;
	if (start < 64) {
		__u32 e = end < 64 ? end : 64;
		v = (hi >> (64 - e)) & mask64(e - start);
	}
	if (end > 64) {
		__u32 s = start > 64 ? start : 64;
		__u32 cnt = end - s;
		v = (v << cnt) | ((lo >> (128 - end)) & mask64(cnt));
	}
	return v;
}

/* set_bits writes the low n (<= 48) bits of v at bit start. */
static __always_inline void set_bits(__u64 *hi, __u64 *lo, __u32 start, __u32 n, __u64 v)
{
	__u32 end = start + n;

	if (n == 0 || end > 128)
		return;
	if (start < 64) {
		__u32 e = end < 64 ? end : 64;
		__u32 cnt = e - start;
		__u32 shift = 64 - e;
		__u64 part = (v >> (end - e)) & mask64(cnt);

		*hi = (*hi & ~(mask64(cnt) << shift)) | (part << shift);
	}
	if (end > 64) {
		__u32 s = start > 64 ? start : 64;
		__u32 cnt = end - s;
		__u32 shift = 128 - end;

		*lo = (*lo & ~(mask64(cnt) << shift)) | ((v & mask64(cnt)) << shift);
	}
}

/* MAP IPv6 address (RFC 7599 s6): end-user prefix, subnet ID 0, interface
 * ID 0:IPv4:PSID, the prefix overwriting the interface ID when it is longer
 * than /64. eup must be masked to eup_len. */
static __always_inline void map_address(__u64 *hi, __u64 *lo, __u32 eup_len, __u32 v4, __u16 psid)
{
	__u32 start = eup_len > 64 ? eup_len : 64;
	__u64 m = mask64(128 - start);
	__u64 iid = ((__u64)v4 << 16) | psid;

	*lo = (*lo & ~m) | (iid & m);
}

/* RFC 7597 s5.1: port = A.2^(16-a) + PSID.2^m + j, A >= 1 when a > 0. */
static __always_inline int port_in_set(__u16 port, __u8 a, __u8 k, __u8 m, __u16 psid)
{
	if (k == 0)
		return 1;
	if (a > 0 && (port >> (16 - a)) == 0)
		return 0;
	return ((port >> m) & ((1U << k) - 1)) == psid;
}

/* id_into_set puts a PSID into an IPv4 identification the way a port
 * carries it, so CEs sharing an address never reuse each other's
 * identifications (RFC 7599 s10.3, RFC 6346 s5.3). It is a function of
 * the original value, so all fragments of a datagram keep one. */
static __always_inline __u16 id_into_set(__u16 id, __u8 a, __u8 k, __u8 m, __u16 psid)
{
	__u16 mask;

	if (k == 0)
		return id;
	mask = ((1U << k) - 1) << m;
	id = (id & ~mask) | (psid << m);
	if (a > 0 && (id >> (16 - a)) == 0)
		id |= 1U << (16 - a);
	return id;
}

static __always_inline __u16 psid_of(__u16 port, __u8 k, __u8 m)
{
	if (k == 0)
		return 0;
	return (port >> m) & ((1U << k) - 1);
}

/* ---- RFC 6052 embedding (DMR lengths 32..64 and 96, u-octet zero) ---- */

/* v4_martian: an IPv4 source that RFC 1812 s5.3.7 says a router must not
 * forward: "this network" (0/8), loopback (127/8), multicast, class E and
 * the limited broadcast (224/3). RFC 7915 s4.1: the translator SHOULD
 * silently discard such packets (the addresses inside an ICMP error are
 * translated all the same, for troubleshooting). */
static __always_inline int v4_martian(__u32 a)
{
	__u32 o = a >> 24;

	return o == 0 || o == 127 || o >= 224;
}

/* dmr_match: inside the DMR, with the RFC 6052 u-octet (bits 64-71) zero. */
static __always_inline int dmr_match(const struct xlat_config *c, __u64 hi, __u64 lo)
{
	if (c->dmr_len < 96 && (lo >> 56) != 0)
		return 0;
	return (hi & c->dmr_mask_hi) == c->dmr_hi && (lo & c->dmr_mask_lo) == c->dmr_lo;
}

static __always_inline void dmr_embed(const struct xlat_config *c, __u32 v4, __u64 *hi, __u64 *lo)
{
	__u32 len = c->dmr_len;

	*hi = c->dmr_hi;
	*lo = c->dmr_lo;
	if (len == 96) {
		*lo = (*lo & 0xffffffff00000000ULL) | v4;
		return;
	}
	if (len > 64)
		return;
	{
		__u32 nh = 64 - len; /* bits of v4 before the u-octet */
		__u32 r = 32 - nh;   /* bits after it */

		if (nh > 0)
			*hi |= ((__u64)v4) >> (32 - nh);
		*lo = (((__u64)v4) & mask64(r)) << (56 - r);
	}
}

static __always_inline __u32 dmr_extract(const struct xlat_config *c, __u64 hi, __u64 lo)
{
	__u32 len = c->dmr_len;
	__u32 nh, r;

	if (len == 96)
		return (__u32)lo;
	if (len > 64)
		return 0;
	nh = 64 - len;
	r = 32 - nh;
	return (__u32)(((hi & mask64(nh)) << r) | ((lo >> (56 - r)) & mask64(r)));
}

/* ---- rule mapping (RFC 7597 s5.2-5.3) ---- */

/* lookup_v4 is the longest match for an IPv4 address: /32 entries live
 * in rules_v4x, shorter ones in the trie. */
static __always_inline const struct rule *lookup_v4(const struct xlat_config *c, __u32 v4)
{
	struct lpm_v4_key k = {.prefixlen = 32};

	if (c->flags & CFG_V4X) {
		const struct rule *r = bpf_map_lookup_elem(&rules_v4x, &v4);

		if (r)
			return r;
	}
	*(__u32 *)k.addr = bpf_htonl(v4);
	return bpf_map_lookup_elem(&rules_v4, &k);
}

/* lookup_v6 is the longest match for an IPv6 address over the trie and
 * the exact-match hash, probed only for lengths longer than the trie's
 * answer. */
static __always_inline const struct rule *lookup_v6(const struct xlat_config *c, __u64 hi, __u64 lo)
{
	struct lpm_v6_key k = {.prefixlen = 128};
	struct v6_exact_key x = {};
	__u64 h = bpf_cpu_to_be64(hi), l = bpf_cpu_to_be64(lo);
	const struct rule *r, *e;
	int i;

	__builtin_memcpy(&k.addr[0], &h, 8);
	__builtin_memcpy(&k.addr[8], &l, 8);
	r = bpf_map_lookup_elem(&rules_v6, &k);
#pragma unroll
	for (i = 0; i < 4; i++) {
		__u32 len = c->exact_lens[i];
		__u64 mhi, mlo;

		if (len == 0 || (r && r->v6_len >= len))
			break;
		prefix_mask(len, &mhi, &mlo);
		x.len = len;
		x.hi = hi & mhi;
		x.lo = lo & mlo;
		e = bpf_map_lookup_elem(&rules_v6x, &x);
		if (e)
			return e;
	}
	return r;
}

/* The rule to use for an IPv4 address and port: the trie's longest match,
 * resolved through the PSID hash for shared EA-length-0 addresses. */
static __always_inline const struct rule *rule_for_v4(const struct xlat_config *c, __u32 v4, __u16 port)
{
	const struct rule *r = lookup_v4(c, v4);
	struct psid_key k = {};

	if (!r || !(r->flags & RULE_BY_PSID))
		return r;
	k.v4 = r->v4;
	k.psid = psid_of(port, r->psid_k, r->psid_m);
	return bpf_map_lookup_elem(&rules_psid, &k);
}

/* needs_port says whether mapping an address under r depends on the port
 * (a shared address: by PSID, or EA bits beyond the IPv4 suffix). */
static __always_inline int needs_port(const struct rule *r)
{
	return (r->flags & RULE_BY_PSID) || r->psid_k > 0;
}

/* rule_for_dst4 is the rule for an IPv4 destination: by address and port,
 * or, for a packet without ports (noport: ICMP errors, protocols without
 * ports), by address alone, where a rule whose mapping needs the port is
 * reason nr to drop. *r is NULL when no rule matches. */
static __always_inline int rule_for_dst4(const struct xlat_config *c, __u32 v4, __u16 port, int noport, int nr,
					 const struct rule **r)
{
	if (!noport) {
		*r = rule_for_v4(c, v4, port);
		return 0;
	}
	*r = lookup_v4(c, v4);
	return *r && needs_port(*r) ? nr : 0;
}

/* map_v4 maps an IPv4 address and port inside rule r to the owning CE's MAP
 * address. It returns -1 when the port belongs to no port set. */
static __always_inline int map_v4(const struct rule *r, __u32 v4, __u16 port, __u64 *hi, __u64 *lo)
{
	__u32 ea = r->ea_len;
	__u32 p = 32 - r->v4_len;
	__u32 eup_len = r->v6_len + ea;
	__u16 psid = r->psid;

	*hi = r->v6_hi;
	*lo = r->v6_lo;
	if (ea == 0) {
		if (!port_in_set(port, r->psid_a, r->psid_k, r->psid_m, psid))
			return -1;
	} else {
		__u64 host = (__u64)v4 & mask64(p);
		__u64 eabits;

		if (ea > 48 || p > 32)
			return -1;
		if (ea < p) {
			eabits = host >> (p - ea);
			psid = 0;
		} else {
			psid = psid_of(port, r->psid_k, r->psid_m);
			if (!port_in_set(port, r->psid_a, r->psid_k, r->psid_m, psid))
				return -1;
			eabits = (host << r->psid_k) | psid;
		}
		set_bits(hi, lo, r->v6_len, ea, eabits);
	}
	map_address(hi, lo, eup_len, v4, psid);
	return 0;
}

/* map_v6 maps a MAP IPv6 address inside rule r back to the CE's IPv4
 * address and PSID. It returns -1 unless the address is exactly the MAP
 * address those imply (RFC 7599 s6 interface identifier). */
static __always_inline int map_v6(const struct rule *r, __u64 hi, __u64 lo, __u32 *v4, __u16 *psid)
{
	__u32 ea = r->ea_len;
	__u32 p = 32 - r->v4_len;
	__u32 eup_len = r->v6_len + ea;
	__u32 plen = r->v4_len; /* prefix length of the CE's IPv4 binding */
	__u64 eabits, mhi, mlo, ehi, elo;
	__u32 a = r->v4;
	__u16 ps = r->psid;

	if (ea > 48 || p > 32 || eup_len > 128)
		return -1;
	eabits = get_bits(hi, lo, r->v6_len, ea);
	if (ea > 0) {
		if (ea < p) {
			a |= (__u32)(eabits << (p - ea));
			plen = r->v4_len + ea;
			ps = 0;
		} else {
			if (p > 0)
				a |= (__u32)(eabits >> r->psid_k);
			plen = 32;
			ps = eabits & mask64(r->psid_k);
		}
	}
	if (plen < 32)
		a |= (__u32)(lo >> 16) & (__u32)mask64(32 - plen);
	prefix_mask(eup_len, &mhi, &mlo);
	ehi = hi & mhi;
	elo = lo & mlo;
	map_address(&ehi, &elo, eup_len, a, ps);
	if (ehi != hi || elo != lo)
		return -1;
	*v4 = a;
	*psid = ps;
	return 0;
}

#endif /* MAPT_ADDR_H */
