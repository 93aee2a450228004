/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Constants, configuration and rule types, the maps, counters.
 */
#ifndef MAPT_MAPS_H
#define MAPT_MAPS_H

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

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMP 1
#define IPPROTO_IGMP 2
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_DCCP 33
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ESP 50
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60
#define IPPROTO_SCTP 132
#define IPPROTO_MH 135
#define IPPROTO_UDPLITE 136

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

/* Largest ICMP errors: RFC 4443 s2.4(c) for ICMPv6 (the IPv6 minimum MTU),
 * RFC 1812 s4.3.2.3 for ICMPv4. */
#define ICMP6_ERR_MAX 1280
#define ICMP4_ERR_MAX 576

/* How long a fragment cache entry stands for its datagram: RFC 791's
 * suggested reassembly timer. Older entries are misses, so that a reused
 * identification cannot steer a later fragment (RFC 7599 s10.2-10.3). */
#define FRAG_TIMEOUT_NS (15ULL * 1000000000ULL)

/* Drop and event reasons; index of the per-CPU counter array. The Go
 * loader reads the names from this enum in the object's BTF (R_CE_4TO6 is
 * counter "ce_4to6"), so C is the one source of them. */
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
	R_BAD_HEADER,        /* malformed IP header (version, length, checksum, option lengths) */
	R_TRUNCATED,         /* packet shorter than its headers */
	R_IPV4_OPTIONS,      /* IPv4 unexpired source route (RFC 7915 s4.1) */
	R_IPV6_EXTHDR,       /* IPv6 routing header with segments left, extension header after a fragment header, ... */
	R_FRAGMENT,          /* a fragment we do not translate (ICMP, hairpin) */
	R_PROTO,             /* protocol not translated: without ports where the mapping needs them, IGMP, ICMPv6 in IPv4 */
	R_ICMP_TYPE,         /* ICMP type RFC 7915 says to drop */
	R_UDP_ZERO_CSUM,     /* UDP without checksum we cannot complete (IPv6, fragment, > 2048 bytes) */
	R_HELPER,            /* a BPF helper failed (no room, ...) */
	R_FRAG_MISS,         /* later fragment whose first one was not seen (or validated, or is older than FRAG_TIMEOUT_NS) */
	R_LOCAL,             /* BR: own packet on br_local that is not for a CE */
	R_TOO_BIG,           /* CE 4->6: translated packet exceeds the WAN MTU */
	R_TTL_EXPIRED,       /* BR: translated, but its TTL/hop limit ends here (the stack answers Time Exceeded) */
	R_BR_VIA_STACK,      /* BR 4->6: fragment, or DF clear and too big: the stack (re)fragments, br_local translates */
	R_ICMP_INNER,        /* ICMP error whose quoted packet is not from/to the CE it concerns */
	R_ICMP_SENT,         /* an ICMP error the translator sent itself (RFC 7915 s4.4, s5.4, RFC 7599 s8.2-8.3) */
	R_ICMP_LIMITED,      /* an ICMP error the rate limit held back */
	R_SRC_MARTIAN,       /* BR 4->6: source a router must not forward (0/8, 127/8, 224/3; RFC 7915 s4.1) */
	R_BR_FAST,           /* BR: translated and sent to its next hop directly (FIB lookup), not through the stack */
	R_MAX,
};

/* Bits of xlat_config.flags; the Go loader takes them from this enum. */
enum cfg_flag {
	CFG_VALID = 1,
	CFG_V4_L3 = 2,    /* the IPv4-side device has no link-layer header (the CE's TUN uplink) */
	CFG_V6_L3 = 4,    /* the IPv6-side device has no link-layer header (PPP, raw-IP WAN) */
	CFG_LOCAL = 8,    /* BR: br_local runs on a local device, so the stack may fragment for us */
	CFG_LOCAL_L3 = 16, /* BR: the local device has no link-layer header (TUN) */
	CFG_FAST = 32,     /* BR: translated packets go straight to their next hop when they can (fast.h) */
	CFG_V4X = 64,      /* rules_v4x has entries (1:1 rules' /32s): without it the programs skip the lookup */
	CFG_VIA_UPLINK = 128, /* CE: what ce_ingress translates goes into the uplink's ingress, not on into the stack */
	CFG_SET_TCLASS = 256, /* 4->6: the Traffic Class is xlat_config.tclass, not the TOS octet (RFC 7915 s4.1) */
	CFG_SET_TOS = 512,    /* 6->4: the TOS octet is xlat_config.tos, not the Traffic Class (RFC 7915 s5.1) */
};

struct xlat_config {
	__u64 eup_hi, eup_lo; /* CE end-user prefix, masked */
	__u64 eup_mask_hi, eup_mask_lo;
	__u64 dmr_hi, dmr_lo; /* DMR prefix, masked */
	__u64 dmr_mask_hi, dmr_mask_lo;
	/* ICMP errors the programs send themselves: at most one per gap and
	 * CPU; 0: none. */
	__u64 icmp_gap_ns;
	__u32 v4;             /* CE IPv4 address or prefix */
	__u32 v4_mask;
	/* The devices on each side: CE: the WAN (IPv6) and the IPv4 uplink;
	 * BR: the CE-facing and the Internet-facing device. They are the
	 * redirect targets of what is translated towards that side, and
	 * their MTUs bound what ICMP errors report (RFC 7915 s4.2, s5.2). */
	__u32 v6_ifindex;
	__u32 v4_ifindex;
	__u32 v6_mtu;         /* 0: unknown */
	__u32 v4_mtu;         /* 0: unknown */
	/* RFC 7915 s4.1: IPv4 packets with DF clear whose translation would
	 * exceed this leave as fragments of at most this size
	 * (min(lowest-ipv6-mtu, IPv6-side MTU)). */
	__u32 frag_mtu;
	/* IPv4 source of translated ICMPv6 errors from addresses with no
	 * IPv4 form: IPv6 routers (RFC 7915 s5.2, RFC 6791). */
	__u32 icmp_src;
	/* CE: the stand-in for our own (shared) IPv4 address as a remote
	 * peer's address: the CEs that share it are reached through it,
	 * since the stack would deliver the address itself locally (RFC
	 * 7599 s8.1). 0: none. */
	__u32 mesh_alias;
	enum cfg_flag flags;
	__u16 psid;
	__u8 psid_a, psid_k, psid_m;
	__u8 eup_len;
	__u8 dmr_len;
	/* Prefix lengths of the rules kept in rules_v6x, longest first, 0
	 * ends the list. */
	__u8 exact_lens[4];
	/* The DS field (DSCP and ECN) translation writes where the flags
	 * CFG_SET_TCLASS / CFG_SET_TOS say so, instead of copying it. */
	__u8 tclass, tos;
};


/* RULE_BY_PSID marks a v4 trie entry for an IPv4 address shared by EA-length
 * 0 rules: the rule is found in rules_psid by (address, PSID). */
enum rule_flag {
	RULE_BY_PSID = 1,
};

/* One mapping rule (BMR/FMR) as stored in the LPM tries and the PSID hash. */
struct rule {
	__u64 v6_hi, v6_lo; /* rule IPv6 prefix, masked */
	__u32 v4;           /* rule IPv4 prefix, masked */
	__u16 psid;         /* EA-length 0 rules: the PSID from PORTPARAMS */
	__u8 v6_len, v4_len, ea_len;
	__u8 psid_a, psid_k, psid_m; /* k = sharing bits, m = 16 - a - k */
	enum rule_flag flags;
};

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
	__u64 seen_ns;
	__u16 sport, dport;
	__u32 pad;
};

/* BR: a first fragment from a CE that passed the port check (RFC 7599
 * s8.3); later fragments of the datagram pass only from the same source. */
struct frag6_key {
	__u64 shi, slo; /* the CE's MAP address */
	__u32 dst;      /* the translated IPv4 destination */
	__u32 id;
	__u8 proto;
	__u8 pad[7];
};

/* Tail calls: the ICMP error paths are programs of their own, so that
 * each program stays within what the verifier can walk (5.10's too). The
 * entry program leaves what they need in struct pkt (per CPU; a tail call
 * runs at once on the same CPU) and jumps; the Go loader fills the array
 * with the programs of these names (the enum's names in lower case). */
enum tail {
	T_XLAT_ERR4TO6 = 0, /* program xlat_err4to6 */
	T_XLAT_ERR6TO4,     /* program xlat_err6to4 */
	T_ICMP_REPLY,       /* program icmp_reply */
	T_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, T_MAX);
	__type(key, __u32);
	__type(value, __u32);
} tails SEC(".maps");

/* Per-CPU state of the ICMP error rate limit. */
struct icmp_bucket {
	__u64 last_ns;
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
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct frag6_key);
	__type(value, __u64);
} frag6_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icmp_bucket);
} icmp_bucket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32); /* enum reason (array keys must be plain ints in BTF) */
	__type(value, __u64);
} counters SEC(".maps");

/* Bytes of translated packets (their size after translation), indexed like
 * counters; only the translation reasons are used. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bytes SEC(".maps");

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
	__uint(map_flags, BPF_F_NO_PREALLOC); /* sized for all rules, often empty */
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

static __always_inline void count(enum reason reason)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &reason);

	if (v)
		*v += 1;
}

/* count_xlat counts a translated packet and its bytes. */
static __always_inline void count_xlat(struct __sk_buff *skb, __u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&bytes, &reason);

	if (v)
		*v += skb->len;
	count(reason);
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

#endif /* MAPT_MAPS_H */
