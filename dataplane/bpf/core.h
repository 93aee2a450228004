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

/* RFC 7600: the source of translated ICMP errors whose IPv6 source has no
 * IPv4 form (an IPv6 router on the path, the BR itself). */
#define DUMMY_V4 0xc0000008 /* 192.0.0.8 */

/* Largest IPv4 UDP datagram without checksum whose checksum we compute. */
#define UDP_CSUM_MAX 2048

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
	R_FRAGMENT,          /* a fragment we do not translate (ICMP, hairpin) */
	R_PROTO,             /* transport protocol without ports */
	R_ICMP_TYPE,         /* ICMP type RFC 7915 says to drop */
	R_UDP_ZERO_CSUM,     /* UDP without checksum we cannot complete (IPv6, fragment, > 2048 bytes) */
	R_HELPER,            /* a BPF helper failed (no room, ...) */
	R_FRAG_MISS,         /* 4->6: later fragment whose first one was not seen */
	R_LOCAL,             /* BR: own packet on br_local that is not for a CE */
	R_MAX,
};

struct xlat_config {
	__u64 eup_hi, eup_lo; /* CE end-user prefix, masked */
	__u64 eup_mask_hi, eup_mask_lo;
	__u64 dmr_hi, dmr_lo; /* DMR prefix, masked */
	__u64 dmr_mask_hi, dmr_mask_lo;
	__u32 v4;             /* CE IPv4 address or prefix */
	__u32 v4_mask;
	__u32 wan_ifindex;    /* CE: IPv6 uplink (redirect target of 4->6); BR: IPv6 side */
	__u32 uplink_ifindex; /* CE: IPv4 uplink (redirect target of 6->4); BR: IPv4 side */
	__u16 psid;
	__u8 psid_a, psid_k, psid_m;
	__u8 eup_len;
	__u8 dmr_len;
	__u8 flags;
	/* Prefix lengths of the rules kept in rules_v6x, longest first, 0
	 * ends the list. */
	__u8 exact_lens[4];
	__u8 pad[4];
};

#define CFG_VALID 1
#define CFG_UPLINK_L3 2 /* the CE's IPv4 uplink (BR: its local device) has no L2 header (TUN) */

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

/* Key of rules_v6x: a rule IPv6 prefix, masked, in host-order halves. */
struct v6_exact_key {
	__u32 len;
	__u32 pad;
	__u64 hi, lo;
};

struct psid_key {
	__u32 v4;
	__u16 psid;
	__u16 pad;
};

/* IPv4 datagram whose first fragment carried these ports (RFC 7597
 * s8.3.3: later fragments carry none). */
struct frag_key {
	__u32 src, dst;
	__u16 id;
	__u8 proto;
	__u8 pad;
};

struct frag_val {
	__u16 sport, dport;
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

/* Per-CPU scratch space for what does not fit the 512-byte stack. */
struct scratch {
	__u8 b[256];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct frag_key);
	__type(value, struct frag_val);
} frag_cache SEC(".maps");

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

/* One entry per CE in 1:1 mode (EA length 0) would make the tries deep;
 * exact-match hashes keep those lookups O(1): rules_v6x by (length,
 * prefix) for a few lengths, rules_v4x for /32 entries (1:1 addresses
 * and RULE_BY_PSID markers). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct v6_exact_key);
	__type(value, struct rule);
} rules_v6x SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct rule);
} rules_v4x SEC(".maps");

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
static __always_inline const struct rule *lookup_v4(__u32 v4)
{
	struct lpm_v4_key k = {.prefixlen = 32};
	const struct rule *r = bpf_map_lookup_elem(&rules_v4x, &v4);

	if (r)
		return r;
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

/* The packet in error carried by an ICMP error message. */
struct inner {
	__u32 l3; /* offset of its IP header */
	__u32 l4; /* offset of its transport header */
	__u32 len; /* its payload length as its header claims */
	__u8 proto;
	__u8 icmp_type;
	__u16 sport, dport;
	union {
		struct iphdr4 ip4;
		struct iphdr6 ip6;
	} __attribute__((aligned(8)));
};

#define FRAG_FIRST 1 /* offset 0: carries the transport header */
#define FRAG_LATER 2 /* no transport header */

/* What the translator needs to know about a packet. */
struct pkt {
	__u32 l3; /* offset of the IP header */
	__u32 l4; /* offset of the transport header */
	__u32 l4len;
	__u8 proto; /* IPPROTO_TCP, _UDP, _ICMP or _ICMPV6 */
	__u8 icmp_type, icmp_code;
	__u8 icmp_err; /* an ICMP error: in holds the packet in error */
	/* Ports for the address mapping. For ICMP echo both carry the
	 * identifier; for an ICMP error they are the inner packet's ports
	 * swapped, since the inner packet travelled the other way. */
	__u16 sport, dport;
	__u32 icmp_rest; /* ICMP header bytes 4-7, host order */
	__u8 frag;       /* FRAG_FIRST / FRAG_LATER, 0 when not a fragment */
	__u8 udp_nocsum; /* IPv4 UDP with checksum 0: compute it (RFC 7915 s4.5) */
	__u8 mf;         /* more fragments */
	__u16 frag_off;  /* offset in 8-byte units */
	__u32 frag_id;
	union {
		struct iphdr4 ip4;
		struct iphdr6 ip6;
	} __attribute__((aligned(8)));
	struct inner in;
};

/* struct pkt lives in a per-CPU map rather than on the 512-byte stack,
 * which the ICMP error paths need. TC programs do not nest on a CPU
 * (egress runs with bottom halves off), so one slot per CPU is enough. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt);
} pkt_scratch SEC(".maps");

static __always_inline struct pkt *pkt_get(void)
{
	__u32 zero = 0;
	struct pkt *p = bpf_map_lookup_elem(&pkt_scratch, &zero);

	if (p) {
		__builtin_memset(p, 0, sizeof(*p));
		p->l3 = ETH_HLEN;
	}
	return p;
}

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

static __always_inline int is_icmp_error(__u8 type, int v6)
{
	if (v6)
		return type >= 1 && type <= 4;
	return type == 3 || type == 11 || type == 12;
}

/* parse_inner_l4 reads the ports (echo identifier) of the packet in error;
 * ICMP errors carry at least 8 bytes of it (RFC 792, RFC 4443). */
static __always_inline int parse_inner_l4(struct __sk_buff *skb, struct inner *in, int v6)
{
	__u8 b[8];

	if (bpf_skb_load_bytes(skb, in->l4, b, 8))
		return R_TRUNCATED;
	switch (in->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		in->sport = ((__u16)b[0] << 8) | b[1];
		in->dport = ((__u16)b[2] << 8) | b[3];
		return 0;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (in->proto != (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
			return R_PROTO;
		in->icmp_type = b[0];
		if (v6 ? (b[0] != 128 && b[0] != 129) : (b[0] != 8 && b[0] != 0))
			return R_ICMP_TYPE; /* an error about an error, or not a query */
		in->sport = ((__u16)b[4] << 8) | b[5];
		in->dport = in->sport;
		return 0;
	}
	return R_PROTO;
}

static __always_inline int parse_inner4(struct __sk_buff *skb, struct inner *in)
{
	struct iphdr4 *h = &in->ip4;
	__u32 tot;

	if (bpf_skb_load_bytes(skb, in->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((h->ver_ihl >> 4) != 4 || (h->ver_ihl & 0xf) < 5)
		return R_BAD_HDR;
	if ((h->ver_ihl & 0xf) != 5)
		return R_V4_OPTIONS;
	tot = bpf_ntohs(h->tot_len);
	if (tot < sizeof(*h))
		return R_BAD_HDR;
	if (bpf_ntohs(h->frag_off) & IP_OFFMASK)
		return R_FRAGMENT;
	in->len = tot - sizeof(*h);
	in->proto = h->protocol;
	in->l4 = in->l3 + sizeof(*h);
	return parse_inner_l4(skb, in, 0);
}

static __always_inline int parse_inner6(struct __sk_buff *skb, struct inner *in)
{
	struct iphdr6 *h = &in->ip6;

	if (bpf_skb_load_bytes(skb, in->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((bpf_ntohl(h->vtcfl) >> 28) != 6)
		return R_BAD_HDR;
	in->len = bpf_ntohs(h->plen);
	in->proto = h->nexthdr;
	in->l4 = in->l3 + sizeof(*h);
	switch (in->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_ICMPV6:
		return parse_inner_l4(skb, in, 1);
	case IPPROTO_FRAGMENT:
		return R_FRAGMENT;
	case 0:
	case 43:
	case 60:
	case 51:
	case 50:
	case 135:
		return R_V6_EXTHDR;
	}
	return R_PROTO;
}

/* parse_l4 reads the ports (or echo identifier) of a TCP, UDP or ICMP
 * packet; for ICMP errors it parses the packet in error as well. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, int v6)
{
	__u8 b[8];
	int err;

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
		if (p->proto == IPPROTO_UDP) {
			if (b[6] == 0 && b[7] == 0) {
				if (v6 || p->frag || p->l4len > UDP_CSUM_MAX)
					return R_UDP_ZERO_CSUM;
				p->udp_nocsum = 1;
			}
			if (!p->frag && (((__u32)b[4] << 8) | b[5]) != p->l4len)
				return R_BAD_HDR;
		} else {
			__u8 doff;

			if (bpf_skb_load_bytes(skb, p->l4 + 12, &doff, 1))
				return R_TRUNCATED;
			if ((doff >> 4) < 5 || (__u32)(doff >> 4) * 4 > p->l4len)
				return R_BAD_HDR;
		}
		return 0;
	}
	p->icmp_type = b[0];
	p->icmp_code = b[1];
	p->icmp_rest = ((__u32)b[4] << 24) | ((__u32)b[5] << 16) | ((__u32)b[6] << 8) | b[7];
	if (is_icmp_error(b[0], v6)) {
		p->icmp_err = 1;
		p->in.l3 = p->l4 + 8;
		err = v6 ? parse_inner6(skb, &p->in) : parse_inner4(skb, &p->in);
		if (err)
			return err;
		p->sport = p->in.dport;
		p->dport = p->in.sport;
		return 0;
	}
	if (v6 ? (b[0] != 128 && b[0] != 129) : (b[0] != 8 && b[0] != 0))
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
	__u16 fo;

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
	p->l4 = p->l3 + sizeof(*h);
	p->l4len = tot - sizeof(*h);
	p->proto = h->protocol;
	if (p->proto == IPPROTO_ICMPV6)
		return R_PROTO;
	fo = bpf_ntohs(h->frag_off);
	if (fo & (IP_MF | IP_OFFMASK)) {
		/* RFC 7915 s4.1: fragments get a Fragment Header. ICMP is
		 * not, since the ICMPv6 checksum needs the whole length. */
		if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
			return R_FRAGMENT;
		p->mf = !!(fo & IP_MF);
		p->frag_off = fo & IP_OFFMASK;
		p->frag_id = bpf_ntohs(h->id);
		p->frag = p->frag_off ? FRAG_LATER : FRAG_FIRST;
		if (p->frag == FRAG_LATER)
			return 0;
	}
	return parse_l4(skb, p, 0);
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
	case IPPROTO_FRAGMENT: {
		__u8 fh[8];
		__u16 fo;

		if (plen < 8 || bpf_skb_load_bytes(skb, p->l4, fh, 8))
			return R_TRUNCATED;
		p->proto = fh[0];
		if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
			return R_FRAGMENT;
		fo = ((__u16)fh[2] << 8) | fh[3];
		p->frag_off = fo >> 3;
		p->mf = fo & 1;
		p->frag_id = ((__u32)fh[4] << 24) | ((__u32)fh[5] << 16) | ((__u32)fh[6] << 8) | fh[7];
		p->frag = p->frag_off ? FRAG_LATER : FRAG_FIRST;
		p->l4 += 8;
		p->l4len -= 8;
		if (p->frag == FRAG_LATER)
			return 0;
		break;
	}
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
	return parse_l4(skb, p, 1);
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

/* sum_bytes adds bytes [off, off+len) of the packet to a checksum, len at
 * most UDP_CSUM_MAX; off must be even relative to the checksummed data. */
static __always_inline int sum_bytes(struct __sk_buff *skb, __u32 off, __u32 len, __s64 *sum)
{
	__u32 zero = 0;
	struct scratch *buf = bpf_map_lookup_elem(&scratch, &zero);
	__u32 i, k;

	if (!buf)
		return R_HELPER;
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

/* xlat_4to6 replaces the IPv4 header at p->l3 by an IPv6 header with the
 * given addresses. TTL is copied: the stack decrements it on each node. */
static __always_inline int xlat_4to6(struct __sk_buff *skb, struct pkt *p, __u64 shi, __u64 slo, __u64 dhi, __u64 dlo)
{
	struct iphdr6 h6 = {};
	__be32 old[2] = {p->ip4.saddr, p->ip4.daddr};
	__be32 pseudo[10] = {};
	__u32 grow = p->frag ? 28 : 20; /* a Fragment Header adds 8 */
	__u32 csum_off = p->l4 + grow + l4_csum_off(p);
	__be16 eth_proto = bpf_htons(ETH_P_IPV6);
	__u32 fh[2];
	__s64 diff;

	h6.vtcfl = bpf_htonl((6U << 28) | ((__u32)p->ip4.tos << 20));
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

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return R_HELPER;
	if (p->frag && bpf_skb_adjust_room(skb, 8, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3, &h6, sizeof(h6), BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (p->frag && bpf_skb_store_bytes(skb, p->l3 + sizeof(h6), fh, 8, BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (p->l3 >= ETH_HLEN && bpf_skb_store_bytes(skb, p->l3 - 2, &eth_proto, 2, 0))
		return R_HELPER;
	p->l4 += grow;
	if (p->frag == FRAG_LATER)
		return 0;

	if (p->udp_nocsum)
		return udp_complete(skb, p, &h6);
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
	__u32 shrink = p->frag ? 28 : 20;
	__u32 csum_off = p->l4 - shrink + l4_csum_off(p);
	__be16 eth_proto = bpf_htons(ETH_P_IP);
	__s64 diff;

	h4.ver_ihl = 0x45;
	h4.tos = (bpf_ntohl(p->ip6.vtcfl) >> 20) & 0xff;
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
		h4.id = (__be16)bpf_get_prandom_u32();
	}
	h4.ttl = p->ip6.hlim;
	h4.protocol = p->proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : p->proto;
	h4.saddr = bpf_htonl(saddr);
	h4.daddr = bpf_htonl(daddr);
	h4.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&h4, sizeof(h4), 0));

	__builtin_memcpy(pseudo, p->ip6.saddr, 32);
	/* The Fragment Header sits right after the fixed IPv6 header. */
	if (p->frag && bpf_skb_adjust_room(skb, -8, BPF_ADJ_ROOM_NET, 0))
		return R_HELPER;
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return R_HELPER;
	if (bpf_skb_store_bytes(skb, p->l3, &h4, sizeof(h4), BPF_F_RECOMPUTE_CSUM))
		return R_HELPER;
	if (p->l3 >= ETH_HLEN && bpf_skb_store_bytes(skb, p->l3 - 2, &eth_proto, 2, 0))
		return R_HELPER;
	p->l4 -= shrink;
	if (p->frag == FRAG_LATER)
		return 0;

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

/* ---- fragments ---- */

/* frag_ports remembers the ports of a first fragment, or finds them for a
 * later one; it returns -1 when a later fragment's first was not seen. */
static __always_inline int frag_ports(struct pkt *p)
{
	struct frag_key k = {
		.src = p->ip4.saddr,
		.dst = p->ip4.daddr,
		.id = (__u16)p->frag_id,
		.proto = p->proto,
	};
	struct frag_val v = {.sport = p->sport, .dport = p->dport};
	struct frag_val *f;

	if (p->frag == FRAG_FIRST) {
		bpf_map_update_elem(&frag_cache, &k, &v, BPF_ANY);
		return 0;
	}
	f = bpf_map_lookup_elem(&frag_cache, &k);
	if (!f)
		return -1;
	p->sport = f->sport;
	p->dport = f->dport;
	return 0;
}

/* rule_needs_port says whether mapping v4 depends on the port. */
static __always_inline int rule_needs_port(__u32 v4)
{
	const struct rule *r = lookup_v4(v4);

	return r && ((r->flags & RULE_BY_PSID) || r->psid_k > 0);
}

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

#endif /* MAPT_CORE_H */
