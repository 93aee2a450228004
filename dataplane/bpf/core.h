/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The MAP-T translation core shared by the CE and BR entry programs:
 * RFC 7915 header translation with RFC 7597/7599 address mapping.
 *
 * Conventions:
 * - Addresses are kept as host-order integers (IPv4: u32, IPv6: two u64
 *   halves) so that prefix and bit-field arithmetic stays simple; they are
 *   converted at the packet boundary.
 * - Packet bytes are read with bpf_skb_load_bytes so non-linear skbs work and
 *   the verifier has no packet-pointer ranges to track.
 * - Checksums (see csum notes in xlat_4to6): header rewrites use
 *   BPF_F_RECOMPUTE_CSUM, pseudo-header changes use BPF_F_PSEUDO_HDR, and a
 *   field change compensated by its own checksum uses neither; that keeps
 *   skb->csum right for CHECKSUM_COMPLETE and the pseudo sum right for
 *   CHECKSUM_PARTIAL.
 * - No CO-RE and no kernel types beyond the UAPI: OpenWrt has no BTF.
 */
#ifndef MAPT_CORE_H
#define MAPT_CORE_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Verdict for packets that are not ours: let the next program on the hook
 * (TCX chain or cls_bpf filter list) or the stack have them. */
#define PASS TC_ACT_UNSPEC

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ICMPV6 58

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff

/* RFC 7915 s5.1: DF is set when the translated IPv4 packet is larger. */
#define XLAT_DF_THRESHOLD 1260

/* Drop and event reasons; index of the per-CPU counter array. Keep in sync
 * with counterNames in the Go loader (a test checks the count). */
enum reason {
	R_CE_4TO6 = 0,       /* CE: translated IPv4 -> IPv6 */
	R_CE_6TO4,           /* CE: translated IPv6 -> IPv4 */
	R_BR_4TO6,           /* BR: translated IPv4 -> IPv6 */
	R_BR_6TO4,           /* BR: translated IPv6 -> IPv4 */
	R_BR_HAIRPIN,        /* BR: CE -> CE translated twice */
	R_PASS,              /* not MAP-T traffic: left to the stack */
	R_NO_CONFIG,         /* no configuration loaded yet */
	R_SRC_NOT_OURS,      /* CE 4->6: source address/port outside the binding (escaped the NAT) */
	R_DST_PORT,          /* CE 6->4: destination port/id outside our port set (RFC 7599 s8.2) */
	R_SRC_UNKNOWN,       /* 6->4: source matches neither an FMR nor the DMR */
	R_SRC_PORT,          /* 6->4: source port/id not in the PSID of the source address (s8.3) */
	R_SRC_ADDR,          /* 6->4: source is inside an FMR but not a well-formed MAP address */
	R_DST_NO_CE,         /* 4->6: destination port/id belongs to no CE under the FMR */
	R_BAD_HDR,           /* malformed IP header (version, length, checksum) */
	R_TRUNCATED,         /* packet shorter than its headers */
	R_V4_OPTIONS,        /* IPv4 options: not translated */
	R_V6_EXTHDR,         /* IPv6 extension header we do not translate */
	R_FRAGMENT,          /* fragments: not translated yet */
	R_PROTO,             /* transport protocol without ports */
	R_ICMP_TYPE,         /* ICMP type RFC 7915 says to drop */
	R_UDP_ZERO_CSUM,     /* IPv4 UDP without checksum */
	R_HELPER,            /* a BPF helper failed (no room, ...) */
	R_MAX,
};

struct xlat_config {
	__u64 eup_hi, eup_lo; /* CE end-user prefix, masked */
	__u64 eup_mask_hi, eup_mask_lo;
	__u64 dmr_hi, dmr_lo; /* DMR prefix, masked */
	__u64 dmr_mask_hi, dmr_mask_lo;
	__u32 v4;             /* CE IPv4 address or prefix */
	__u32 v4_mask;
	__u32 wan_ifindex;    /* CE: IPv6 uplink (redirect target of 4->6) */
	__u32 uplink_ifindex; /* CE: IPv4 uplink (redirect target of 6->4) */
	__u16 psid;
	__u8 psid_a, psid_k, psid_m;
	__u8 eup_len;
	__u8 dmr_len;
	__u8 flags;
};

#define CFG_VALID 1
#define CFG_UPLINK_L3 2 /* the CE's IPv4 uplink has no L2 header (TUN) */

/* One mapping rule (BMR/FMR) as stored in the LPM tries and the PSID hash. */
struct rule {
	__u64 v6_hi, v6_lo; /* rule IPv6 prefix, masked */
	__u32 v4;           /* rule IPv4 prefix, masked */
	__u16 psid;         /* EA-length 0 rules: the PSID from PORTPARAMS */
	__u8 v6_len, v4_len, ea_len;
	__u8 psid_a, psid_k, psid_m; /* k = sharing bits, m = 16 - a - k */
	__u8 flags;
	__u8 pad[3];
};

/* RULE_BY_PSID marks a v4 trie entry for an IPv4 address shared by EA-length
 * 0 rules: the rule is found in rules_psid by (address, PSID). */
#define RULE_BY_PSID 1

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct psid_key {
	__u32 v4;
	__u16 psid;
	__u16 pad;
};

/* config holds two slots; active says which one the packets use, so an
 * update writes the idle slot whole and then flips the index. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xlat_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* max_entries are set by the loader from the rule count. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, struct rule);
} rules_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, struct rule);
} rules_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct psid_key);
	__type(value, struct rule);
} rules_psid SEC(".maps");

static __always_inline void count(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &reason);

	if (v)
		*v += 1;
}

static __always_inline int drop(__u32 reason)
{
	count(reason);
	return TC_ACT_SHOT;
}

static __always_inline const struct xlat_config *get_config(void)
{
	__u32 zero = 0;
	__u32 *idx = bpf_map_lookup_elem(&active, &zero);
	const struct xlat_config *c;
	__u32 slot;

	if (!idx)
		return 0;
	slot = *idx & 1;
	c = bpf_map_lookup_elem(&config, &slot);
	if (!c || !(c->flags & CFG_VALID))
		return 0;
	return c;
}

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

static __always_inline __u16 psid_of(__u16 port, __u8 k, __u8 m)
{
	if (k == 0)
		return 0;
	return (port >> m) & ((1U << k) - 1);
}

/* ---- RFC 6052 embedding (DMR lengths 32..64 and 96, u-octet zero) ---- */

static __always_inline int dmr_match(const struct xlat_config *c, __u64 hi, __u64 lo)
{
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

static __always_inline const struct rule *lookup_v4(__u32 v4)
{
	struct lpm_v4_key k = {.prefixlen = 32};

	*(__u32 *)k.addr = bpf_htonl(v4);
	return bpf_map_lookup_elem(&rules_v4, &k);
}

static __always_inline const struct rule *lookup_v6(__u64 hi, __u64 lo)
{
	struct lpm_v6_key k = {.prefixlen = 128};
	__u64 h = bpf_cpu_to_be64(hi), l = bpf_cpu_to_be64(lo);

	__builtin_memcpy(&k.addr[0], &h, 8);
	__builtin_memcpy(&k.addr[8], &l, 8);
	return bpf_map_lookup_elem(&rules_v6, &k);
}

/* The rule to use for an IPv4 address and port: the trie's longest match,
 * resolved through the PSID hash for shared EA-length-0 addresses. */
static __always_inline const struct rule *rule_for_v4(__u32 v4, __u16 port)
{
	const struct rule *r = lookup_v4(v4);
	struct psid_key k = {};

	if (!r || !(r->flags & RULE_BY_PSID))
		return r;
	k.v4 = r->v4;
	k.psid = psid_of(port, r->psid_k, r->psid_m);
	return bpf_map_lookup_elem(&rules_psid, &k);
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

/* ---- packet parsing ---- */

struct iphdr4 {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

struct iphdr6 {
	__be32 vtcfl;
	__be16 plen;
	__u8 nexthdr;
	__u8 hlim;
	__u8 saddr[16];
	__u8 daddr[16];
} __attribute__((aligned(8)));

/* What the translator needs to know about a packet. */
struct pkt {
	__u32 l3; /* offset of the IP header */
	__u32 l4; /* offset of the transport header */
	__u32 l4len;
	__u8 proto; /* IPPROTO_TCP, _UDP, _ICMP or _ICMPV6 */
	__u8 icmp_type, icmp_code;
	__u8 pad;
	__u16 sport, dport; /* for ICMP echo: both carry the identifier */
	union {
		struct iphdr4 ip4;
		struct iphdr6 ip6;
	} __attribute__((aligned(8)));
};

static __always_inline __u16 csum_fold(__u64 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* The halves of an IPv6 address in host order; a must be 8-byte aligned. */
static __always_inline __u64 v6_hi(const void *a)
{
	return bpf_be64_to_cpu(*(const __u64 *)a);
}

static __always_inline __u64 v6_lo(const void *a)
{
	return bpf_be64_to_cpu(*(const __u64 *)(a + 8));
}

/* parse_ports reads the ports (or echo identifier) of a TCP, UDP or ICMP
 * echo packet; icmp_echo_req/rep are the family's echo types. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u8 echo_req, __u8 echo_rep)
{
	__u8 b[8];

	switch (p->proto) {
	case IPPROTO_TCP:
		if (p->l4len < 20)
			return R_TRUNCATED;
		break;
	case IPPROTO_UDP:
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (p->l4len < 8)
			return R_TRUNCATED;
		break;
	default:
		return R_PROTO;
	}
	if (bpf_skb_load_bytes(skb, p->l4, b, 8))
		return R_TRUNCATED;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		p->sport = ((__u16)b[0] << 8) | b[1];
		p->dport = ((__u16)b[2] << 8) | b[3];
		if (p->proto == IPPROTO_UDP && b[6] == 0 && b[7] == 0)
			return R_UDP_ZERO_CSUM;
		return 0;
	}
	p->icmp_type = b[0];
	p->icmp_code = b[1];
	if (b[0] != echo_req && b[0] != echo_rep)
		return R_ICMP_TYPE;
	if (b[1] != 0)
		return R_ICMP_TYPE;
	p->sport = ((__u16)b[4] << 8) | b[5];
	p->dport = p->sport;
	return 0;
}

/* parse4 validates an IPv4 header at p->l3 and the transport header. */
static __always_inline int parse4(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr4 *h = &p->ip4;
	__u32 tot;

	if (bpf_skb_load_bytes(skb, p->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((h->ver_ihl >> 4) != 4)
		return R_BAD_HDR;
	if ((h->ver_ihl & 0xf) < 5)
		return R_BAD_HDR;
	if ((h->ver_ihl & 0xf) != 5)
		return R_V4_OPTIONS;
	if (csum_fold(bpf_csum_diff(0, 0, (__be32 *)h, sizeof(*h), 0)) != 0)
		return R_BAD_HDR;
	tot = bpf_ntohs(h->tot_len);
	if (tot < sizeof(*h))
		return R_BAD_HDR;
	if (skb->len < p->l3 + tot)
		return R_TRUNCATED;
	if (bpf_ntohs(h->frag_off) & (IP_MF | IP_OFFMASK))
		return R_FRAGMENT;
	p->l4 = p->l3 + sizeof(*h);
	p->l4len = tot - sizeof(*h);
	p->proto = h->protocol;
	if (p->proto == IPPROTO_ICMPV6)
		return R_PROTO;
	return parse_l4(skb, p, 8, 0);
}

/* parse6 validates an IPv6 header at p->l3 and the transport header. */
static __always_inline int parse6(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr6 *h = &p->ip6;
	__u32 plen;

	if (bpf_skb_load_bytes(skb, p->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((bpf_ntohl(h->vtcfl) >> 28) != 6)
		return R_BAD_HDR;
	plen = bpf_ntohs(h->plen);
	if (skb->len < p->l3 + sizeof(*h) + plen)
		return R_TRUNCATED;
	p->l4 = p->l3 + sizeof(*h);
	p->l4len = plen;
	p->proto = h->nexthdr;
	switch (p->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_ICMPV6:
		break;
	case IPPROTO_FRAGMENT:
		return R_FRAGMENT;
	case IPPROTO_ICMP:
		return R_PROTO;
	case 0:   /* hop-by-hop */
	case 43:  /* routing */
	case 60:  /* destination options */
	case 51:  /* AH */
	case 50:  /* ESP */
	case 135: /* mobility */
		return R_V6_EXTHDR;
	default:
		return R_PROTO;
	}
	return parse_l4(skb, p, 128, 129);
}

/* ---- header translation (RFC 7915 s4 and s5) ---- */

static __always_inline __u32 l4_csum_off(const struct pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	default:
		return 2;
	}
}

/* xlat_4to6 replaces the IPv4 header at p->l3 by an IPv6 header with the
 * given addresses. TTL is copied: the stack decrements it on each node. */
static __always_inline int xlat_4to6(struct __sk_buff *skb, struct pkt *p, __u64 shi, __u64 slo, __u64 dhi, __u64 dlo)
{
	struct iphdr6 h6 = {};
	__be32 old[2] = {p->ip4.saddr, p->ip4.daddr};
	__be32 pseudo[10] = {};
	__u32 csum_off = p->l4 + 20 + l4_csum_off(p); /* l4 moves by 20 */
	__be16 eth_proto = bpf_htons(ETH_P_IPV6);
	__s64 diff;

	h6.vtcfl = bpf_htonl((6U << 28) | ((__u32)p->ip4.tos << 20));
	h6.plen = bpf_htons(p->l4len);
	h6.nexthdr = p->proto == IPPROTO_ICMP ? IPPROTO_ICMPV6 : p->proto;
	h6.hlim = p->ip4.ttl;
	*(__u64 *)&h6.saddr[0] = bpf_cpu_to_be64(shi);
	*(__u64 *)&h6.saddr[8] = bpf_cpu_to_be64(slo);
	*(__u64 *)&h6.daddr[0] = bpf_cpu_to_be64(dhi);
	*(__u64 *)&h6.daddr[8] = bpf_cpu_to_be64(dlo);

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3, &h6, sizeof(h6), BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (p->l3 >= ETH_HLEN && bpf_skb_store_bytes(skb, p->l3 - 2, &eth_proto, 2, 0))
		return R_HELPER;
	p->l4 += 20;

	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		diff = bpf_csum_diff(old, sizeof(old), (__be32 *)h6.saddr, 32, 0);
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff,
					BPF_F_PSEUDO_HDR | (p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
			return R_HELPER;
		return 0;
	}

	/* ICMP echo -> ICMPv6 echo: new type, and the checksum gains the
	 * IPv6 pseudo-header (RFC 7915 s4.2). */
	{
		__u16 old_tc = ((__u16)p->icmp_type << 8) | p->icmp_code;
		__u16 new_tc = (p->icmp_type == 8 ? 128 : 129) << 8;
		__be16 otc = bpf_htons(old_tc), ntc = bpf_htons(new_tc);

		if (bpf_skb_store_bytes(skb, p->l4, &ntc, 2, 0))
			return R_HELPER;
		if (bpf_l4_csum_replace(skb, csum_off, otc, ntc, 2))
			return R_HELPER;
		__builtin_memcpy(pseudo, h6.saddr, 32);
		pseudo[8] = bpf_htonl(p->l4len);
		pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
		diff = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), 0);
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR))
			return R_HELPER;
	}
	return 0;
}

/* xlat_6to4 replaces the IPv6 header at p->l3 by an IPv4 header. */
static __always_inline int xlat_6to4(struct __sk_buff *skb, struct pkt *p, __u32 saddr, __u32 daddr)
{
	struct iphdr4 h4 = {};
	__be32 pseudo[10] = {};
	__u32 tot = p->l4len + sizeof(h4);
	__u32 csum_off = p->l4 - 20 + l4_csum_off(p);
	__be16 eth_proto = bpf_htons(ETH_P_IP);
	__s64 diff;

	h4.ver_ihl = 0x45;
	h4.tos = (bpf_ntohl(p->ip6.vtcfl) >> 20) & 0xff;
	h4.tot_len = bpf_htons(tot);
	/* RFC 7915 s5.1: small packets may be fragmented later on the IPv4
	 * path, so they get DF clear and an identification. */
	if (tot > XLAT_DF_THRESHOLD) {
		h4.frag_off = bpf_htons(IP_DF);
	} else {
		h4.id = (__be16)bpf_get_prandom_u32();
	}
	h4.ttl = p->ip6.hlim;
	h4.protocol = p->proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : p->proto;
	h4.saddr = bpf_htonl(saddr);
	h4.daddr = bpf_htonl(daddr);
	h4.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&h4, sizeof(h4), 0));

	__builtin_memcpy(pseudo, p->ip6.saddr, 32);
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3, &h4, sizeof(h4), BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (p->l3 >= ETH_HLEN && bpf_skb_store_bytes(skb, p->l3 - 2, &eth_proto, 2, 0))
		return R_HELPER;
	p->l4 -= 20;

	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		diff = bpf_csum_diff(pseudo, 32, &h4.saddr, 8, 0);
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff,
					BPF_F_PSEUDO_HDR | (p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
			return R_HELPER;
		return 0;
	}
	{
		__u16 old_tc = ((__u16)p->icmp_type << 8) | p->icmp_code;
		__u16 new_tc = (p->icmp_type == 128 ? 8 : 0) << 8;
		__be16 otc = bpf_htons(old_tc), ntc = bpf_htons(new_tc);

		if (bpf_skb_store_bytes(skb, p->l4, &ntc, 2, 0))
			return R_HELPER;
		if (bpf_l4_csum_replace(skb, csum_off, otc, ntc, 2))
			return R_HELPER;
		pseudo[8] = bpf_htonl(p->l4len);
		pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
		diff = bpf_csum_diff(pseudo, sizeof(pseudo), 0, 0, 0);
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR))
			return R_HELPER;
	}
	return 0;
}

/* rewrite6 changes both addresses of an IPv6 packet in place (the BR's
 * hairpin: 6->4->6 in one step; flow label cleared as the IPv4 leg would). */
static __always_inline int rewrite6(struct __sk_buff *skb, struct pkt *p, __u64 shi, __u64 slo, __u64 dhi, __u64 dlo)
{
	__u64 na[4];
	__be32 vtcfl = bpf_htonl(bpf_ntohl(p->ip6.vtcfl) & 0xfff00000);
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
	if (bpf_l4_csum_replace(skb, p->l4 + l4_csum_off(p), 0, diff,
				BPF_F_PSEUDO_HDR | (p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
		return R_HELPER;
	return 0;
}

#endif /* MAPT_CORE_H */
