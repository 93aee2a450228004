/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: IPv4/IPv6 headers, ports, ICMP errors and the packet in
 * error, fragments; the per-packet state.
 */
#ifndef MAPT_PARSE_H
#define MAPT_PARSE_H

#include "addr.h"

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
	__u8 noport; /* a protocol without ports: mapped by address only */
	__u8 frag;   /* a first fragment: IPv4 MF set, or an IPv6 Fragment Header */
	__u16 sport, dport;
	__u32 frag_id;
	union {
		struct iphdr4 ip4;
		struct iphdr6 ip6;
	} __attribute__((aligned(8)));
};

/* Extension headers skipped before giving up (RFC 7915 s5.1). */
#define V6_EXT_MAX 4
/* Bytes of extension headers left out of the packet inside an ICMPv6
 * error; more, and the error is dropped (R_IPV6_EXTHDR). */
#define INNER_EXT_MAX 64

#define FRAG_FIRST 1 /* offset 0: carries the transport header */
#define FRAG_LATER 2 /* no transport header */

/* Addresses of a translated packet (IPv6 halves in host order). */
struct addrs6 {
	__u64 shi, slo, dhi, dlo;
};

/* How a translated packet leaves (finish): counted as xlat, then
 * redirected to ifindex, or handed to the stack. */
enum fin_how {
	FIN_STACK = 0,   /* TC_ACT_OK: the stack routes it */
	FIN_NEIGH,       /* bpf_redirect_neigh(ifindex) */
	FIN_EGRESS,      /* bpf_redirect(ifindex): a device without link layer */
	FIN_INGRESS,     /* bpf_redirect(ifindex, BPF_F_INGRESS): into our own stack */
};

struct finish {
	__u32 ifindex;
	__u8 how;      /* enum fin_how */
	__u8 xlat;      /* enum reason: the translation counter */
	__u8 ttl_check; /* BR: count R_TTL_EXPIRED when ttl <= 1 */
	__u8 ttl;       /* the TTL / hop limit it arrived with */
	__u8 mtu_check; /* CE: drop R_TOO_BIG above the IPv6 side's MTU */
};

/* An ICMP error to send in place of the packet (reply.h). */
struct reply {
	__u32 rest;    /* header bytes 4-7 */
	__u32 src;     /* ICMPv4: the source */
	__u32 ifindex; /* where it goes; 0: back out of the device it came in on */
	__u8 type, code;
	__u8 ingress;  /* into the stack of ifindex */
	__u8 reason;   /* enum reason: the drop it stands for */
};

/* What the translator needs to know about a packet. */
struct pkt {
	__u32 l3; /* offset of the IP header */
	__u32 l4; /* offset of the transport header */
	__u32 l4len;
	__u8 proto; /* IPPROTO_TCP, _UDP, _ICMP or _ICMPV6 */
	__u8 icmp_type, icmp_code;
	__u8 icmp_err; /* an ICMP error: in holds the packet in error (after a parse error, only: no reply, mark_icmp_error) */
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
	__u32 optlen;    /* IPv4 options, dropped in translation */
	__u32 v6ext;     /* IPv6 extension headers (Fragment included), dropped in translation */
	__u8 noport;     /* no ports to map by: a protocol without them, or a later fragment */
	__u8 err_ptr;    /* R_IPV6_EXTHDR: offset of the field to report (Parameter Problem) */
	/* Where an ICMP error's original datagram field ends and its RFC 4884
	 * extension structure starts (0: no extension). */
	__u32 ext_off;
	/* IPv4 identifications made for a sharing CE's packets carry its
	 * PSID (RFC 7599 s10.3): k > 0 turns this on. */
	__u16 id_psid;
	__u8 id_a, id_k, id_m;
	union {
		struct iphdr4 ip4;
		struct iphdr6 ip6;
	} __attribute__((aligned(8)));
	struct inner in;
	/* Handed from the entry programs to the tail calls. */
	struct addrs6 o, i;                               /* 4->6 error: outer and inner addresses */
	__u32 osrc, odst, isrc, idst;                     /* 6->4 error: the same, IPv4 */
	struct finish fin;
	struct reply reply;
	enum reason reason; /* the drop reason in hand (also keeps enum reason in the BTF) */
	enum tail tail;     /* the tail call in progress (keeps enum tail in the BTF) */
};

/* struct pkt lives in a per-CPU map rather than on the 512-byte stack,
 * which the ICMP error paths need, and carries the state into the tail
 * calls. TC programs do not nest on a CPU (egress runs with bottom halves
 * off), so one slot per CPU is enough. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt);
} pkt_scratch SEC(".maps");

/* pkt_cur is the state an entry program left for its tail call. */
static __always_inline struct pkt *pkt_cur(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&pkt_scratch, &zero);
}

/* pkt_get is the per-packet state, cleared, for an IP header at l3. */
static __always_inline struct pkt *pkt_get(__u32 l3)
{
	__u32 zero = 0;
	struct pkt *p = bpf_map_lookup_elem(&pkt_scratch, &zero);

	if (p) {
		/* Only the fields before the headers need to start at zero:
		 * the headers are loaded, and what follows them (the packet
		 * in error, the tail-call state) is written before it is
		 * read. Zeroing all of it cost the fast path 40 stores. */
		__builtin_memset(p, 0, __builtin_offsetof(struct pkt, ip4));
		p->l3 = l3;
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

/* mark_icmp_error sets p->icmp_err for a packet that parsing gives up on
 * before its transport header (an unexpired source route, a Routing
 * header with segments left) when it is an ICMP error message, so that
 * may_reply sends none about it (RFC 1812 s4.3.2.7, RFC 4443 s2.4(e)):
 * ICMPv6 types below 128; ICMPv4 Destination Unreachable, Source Quench,
 * Redirect, Time Exceeded and Parameter Problem. */
static __always_inline int mark_icmp_error(struct __sk_buff *skb, struct pkt *p, __u32 l4, __u8 proto, int v6)
{
	__u8 t;

	if (proto != (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
		return 0;
	if (bpf_skb_load_bytes(skb, l4, &t, 1))
		return R_TRUNCATED;
	p->icmp_err = v6 ? t < 128 : (t == 3 || t == 4 || t == 5 || t == 11 || t == 12);
	return 0;
}

/* Transport protocols by what the translator does with them (RFC 7915
 * s5.1: all are translated; s4.5/s5.5: the checksums with a pseudo-header
 * are updated). */

/* l4_ports: the ports sit at bytes 0-3, and the mapping may use them. */
static __always_inline int l4_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE ||
	       proto == IPPROTO_SCTP || proto == IPPROTO_DCCP;
}

/* l4_min: the shortest header of a protocol with ports (SCTP: the common
 * header; DCCP: the generic header with short sequence numbers). */
static __always_inline __u32 l4_min(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return 20;
	return proto == IPPROTO_SCTP || proto == IPPROTO_DCCP ? 12 : 8;
}

/* l4_csum_off: where the checksum that covers the pseudo-header sits; 0
 * for protocols without one (SCTP's CRC32c covers no IP field). */
static __always_inline __u32 l4_csum_off(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_DCCP:
		return 6;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 2;
	}
	return 0;
}

/* is_v6_exthdr: the IPv6 headers RFC 7915 s5.1 skips; after a Fragment
 * Header (s5.1.1) they, AH and mobility drop the packet. */
static __always_inline int is_v6_exthdr(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_AH || nh == IPPROTO_MH || nh == IPPROTO_FRAGMENT;
}

/* v6ext_skipped: the extension headers RFC 7915 s5.1 leaves out of a
 * translation (a Routing header only with no segments left). */
static __always_inline int v6ext_skipped(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_DSTOPTS || nh == IPPROTO_ROUTING;
}

/* v6ext_read reads the k-th extension header of a chain, of type proto, at
 * off with avail bytes left: its next header, length and (a Routing
 * header's) segments left. Hop-by-Hop must come first (RFC 8200 s4.1). */
static __always_inline int v6ext_read(struct __sk_buff *skb, __u32 off, __u8 proto, __u32 k, __u32 avail,
				      __u8 *next, __u32 *len, __u8 *sl)
{
	__u8 eh[4];

	if (proto == IPPROTO_HOPOPTS && k != 0)
		return R_IPV6_EXTHDR;
	if (avail < 8 || bpf_skb_load_bytes(skb, off, eh, 4))
		return R_TRUNCATED;
	*next = eh[0];
	*len = ((__u32)eh[1] + 1) * 8;
	*sl = proto == IPPROTO_ROUTING ? eh[3] : 0;
	return *len > avail ? R_TRUNCATED : 0;
}

/* parse_inner_l4 reads the ports (echo identifier) of the packet in error;
 * ICMP errors carry at least 8 bytes of it (RFC 792, RFC 4443). A later
 * fragment carries no transport header. */
static __always_inline int parse_inner_l4(struct __sk_buff *skb, struct inner *in, int v6)
{
	__u8 b[8];

	if (l4_ports(in->proto) || in->proto == IPPROTO_ICMP || in->proto == IPPROTO_ICMPV6) {
		if (bpf_skb_load_bytes(skb, in->l4, b, 8))
			return R_TRUNCATED;
	} else {
		in->noport = 1;
		return 0;
	}
	if (l4_ports(in->proto)) {
		in->sport = ((__u16)b[0] << 8) | b[1];
		in->dport = ((__u16)b[2] << 8) | b[3];
		return 0;
	}
	if (in->proto != (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
		return R_PROTO;
	in->icmp_type = b[0];
	if (v6 ? (b[0] != 128 && b[0] != 129) : (b[0] != 8 && b[0] != 0))
		return R_ICMP_TYPE; /* an error about an error, or not a query */
	in->sport = ((__u16)b[4] << 8) | b[5];
	in->dport = in->sport;
	return 0;
}

/* inner_optlen is the length of the IPv4 options of the packet in an
 * ICMPv4 error: left out when the error is translated, as in any packet
 * (RFC 7915 s4.1, s4.3). At most 40; the mask says so to the verifier. */
static __always_inline __u32 inner_optlen(const struct inner *in)
{
	__u32 ihl = in->ip4.ver_ihl & 0xf;

	return ihl > 5 ? ((ihl - 5) * 4) & 0x3c : 0;
}

static __always_inline int parse_inner4(struct __sk_buff *skb, struct inner *in)
{
	struct iphdr4 *h = &in->ip4;
	__u32 tot;
	__u16 fo;

	in->noport = 0;
	in->frag = 0;
	if (bpf_skb_load_bytes(skb, in->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((h->ver_ihl >> 4) != 4 || (h->ver_ihl & 0xf) < 5)
		return R_BAD_HEADER;
	tot = bpf_ntohs(h->tot_len);
	if (tot < sizeof(*h) + inner_optlen(in))
		return R_BAD_HEADER;
	fo = bpf_ntohs(h->frag_off);
	if (fo & IP_OFFMASK)
		return R_FRAGMENT; /* no transport header to map by */
	if (fo & IP_MF) {
		if (h->protocol == IPPROTO_ICMP)
			return R_FRAGMENT;
		in->frag = 1;
		in->frag_id = bpf_ntohs(h->id);
	}
	in->len = tot - sizeof(*h) - inner_optlen(in);
	in->proto = h->protocol;
	in->l4 = in->l3 + sizeof(*h) + inner_optlen(in);
	return parse_inner_l4(skb, in, 0);
}

/* parse_inner6 reads the IPv6 packet in error: extension headers that
 * translation leaves out, and a Fragment Header of a first fragment, which
 * it removes (RFC 7915 s5.3: the packet in error is translated like any
 * other). */
static __always_inline int parse_inner6(struct __sk_buff *skb, struct inner *in)
{
	struct iphdr6 *h = &in->ip6;
	__u32 k;

	in->noport = 0;
	in->frag = 0;
	if (bpf_skb_load_bytes(skb, in->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((bpf_ntohl(h->vtcfl) >> 28) != 6)
		return R_BAD_HEADER;
	in->len = bpf_ntohs(h->plen);
	in->proto = h->nexthdr;
	in->l4 = in->l3 + sizeof(*h);
	/* Hop-by-Hop (first), Destination Options and Routing headers with
	 * no segments left are left out, as in any packet (s5.1, s5.3), up
	 * to INNER_EXT_MAX bytes; the translation finds their length as
	 * the distance from l3 to l4. */
	for (k = 0; k < V6_EXT_MAX && v6ext_skipped(in->proto); k++) {
		__u32 elen;
		__u8 next, sl;
		int err = v6ext_read(skb, in->l4, in->proto, k, in->len, &next, &elen, &sl);

		if (err)
			return err;
		if (sl || in->l4 + elen - in->l3 - sizeof(*h) > INNER_EXT_MAX)
			return R_IPV6_EXTHDR;
		in->proto = next;
		in->l4 += elen;
		in->len -= elen;
	}
	if (in->proto == IPPROTO_FRAGMENT) {
		__u8 fh[8];

		if (bpf_skb_load_bytes(skb, in->l4, fh, 8))
			return R_TRUNCATED;
		if ((((__u16)fh[2] << 8) | fh[3]) >> 3)
			return R_FRAGMENT; /* a later fragment: no ports */
		if (is_v6_exthdr(fh[0]) || fh[0] == IPPROTO_ICMPV6 || in->len < 8)
			return R_FRAGMENT;
		in->proto = fh[0];
		in->frag = 1;
		in->frag_id = ((__u32)fh[4] << 24) | ((__u32)fh[5] << 16) | ((__u32)fh[6] << 8) | fh[7];
		in->len -= 8;
		in->l4 += 8;
	} else if (is_v6_exthdr(in->proto)) {
		return R_IPV6_EXTHDR;
	} else if (in->proto == IPPROTO_ICMP) {
		return R_PROTO;
	}
	return parse_inner_l4(skb, in, 1);
}

/* icmp_ext_len_off is where an ICMP error of this type keeps its RFC 4884
 * length attribute (the length of the original datagram field, in 32-bit
 * words for ICMPv4, 64-bit words for ICMPv6), or 0 when the type has none:
 * ICMPv4 Destination Unreachable, Time Exceeded and Parameter Problem
 * (byte 5), ICMPv6 Destination Unreachable and Time Exceeded (byte 4). */
static __always_inline __u32 icmp_ext_len_off(__u8 type, int v6)
{
	if (v6)
		return (type == 1 || type == 3) ? 4 : 0;
	return (type == 3 || type == 11 || type == 12) ? 5 : 0;
}

/* parse_icmp_ext finds an RFC 4884 extension structure: a non-zero length
 * attribute whose original datagram field fits the message. A length that
 * does not fit makes the message one without extensions (RFC 4884 s5.4). */
static __always_inline void parse_icmp_ext(struct pkt *p, int v6)
{
	__u32 off = icmp_ext_len_off(p->icmp_type, v6), orig;

	if (!off)
		return;
	orig = (p->icmp_rest >> (8 * (7 - off))) & 0xff;
	orig *= v6 ? 8 : 4;
	if (orig == 0 || orig < (v6 ? 48 : 28) || 8 + orig > p->l4len)
		return;
	p->ext_off = p->l4 + 8 + orig;
}

/* parse_l4 reads the ports (or echo identifier) of the transport header;
 * for ICMP errors it parses the packet in error as well. Protocols without
 * ports are left to the mapping (noport). */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, int v6)
{
	__u8 b[8];
	int err;

	if (!l4_ports(p->proto) && p->proto != IPPROTO_ICMP && p->proto != IPPROTO_ICMPV6) {
		/* RFC 7915 s4.2: IGMP is single-hop and SHOULD be silently
		 * dropped. */
		if (p->proto == IPPROTO_IGMP)
			return R_PROTO;
		p->noport = 1;
		return 0;
	}
	if (p->l4len < l4_min(p->proto))
		return R_TRUNCATED;
	if (bpf_skb_load_bytes(skb, p->l4, b, 8))
		return R_TRUNCATED;
	if (l4_ports(p->proto)) {
		p->sport = ((__u16)b[0] << 8) | b[1];
		p->dport = ((__u16)b[2] << 8) | b[3];
		if (p->proto == IPPROTO_UDP) {
			if (b[6] == 0 && b[7] == 0) {
				if (v6 || p->frag || p->l4len > UDP_CSUM_MAX)
					return R_UDP_ZERO_CSUM;
				p->udp_nocsum = 1;
			}
			if (!p->frag && (((__u32)b[4] << 8) | b[5]) != p->l4len)
				return R_BAD_HEADER;
		} else if (p->proto == IPPROTO_TCP) {
			__u8 doff;

			if (bpf_skb_load_bytes(skb, p->l4 + 12, &doff, 1))
				return R_TRUNCATED;
			if ((doff >> 4) < 5 || (__u32)(doff >> 4) * 4 > p->l4len)
				return R_BAD_HEADER;
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
		p->noport = p->in.noport;
		parse_icmp_ext(p, v6);
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

/* ipv4_options reads the options of the IPv4 header at p->l3 into the
 * per-CPU scratch buffer, adds them to the header checksum and sets
 * p->optlen. RFC 7915 s4.1: options are ignored in translation (they are
 * left out), but a packet with an unexpired source route (LSRR or SSRR
 * whose pointer is still within the option, RFC 791) is discarded
 * (R_IPV4_OPTIONS). The options are walked one by one: each round tests
 * the byte at offset k only when an option starts there (k == next), so
 * one path goes on per round and the verifier's work stays linear. */
static __always_inline int ipv4_options(struct __sk_buff *skb, struct pkt *p, __s64 *sum)
{
	__u32 zero = 0, k, optlen, next = 0;
	struct scratch *buf = bpf_map_lookup_elem(&scratch, &zero);
	__u8 *opt;

	if (!buf)
		return R_HELPER;
	opt = buf->b;
	optlen = ((p->ip4.ver_ihl & 0xf) - 5) * 4;
	asm volatile("%[n] += -1\n\t%[n] &= 0x3f\n\t%[n] += 1" : [n] "+r"(optlen));
	if (optlen > 40)
		return R_BAD_HEADER;
	if (bpf_skb_load_bytes(skb, p->l3 + 20, opt, optlen))
		return R_TRUNCATED;
	*sum = bpf_csum_diff(0, 0, (__be32 *)opt, optlen & ~3U, *sum);
	for (k = 0; k < 40; k++) {
		__u8 kind, len, ptr;

		if (k >= optlen)
			break;
		if (k != next)
			continue;
		kind = opt[k];
		if (kind == 0) /* end of option list */
			break;
		if (kind == 1) { /* no operation */
			next = k + 1;
			continue;
		}
		if (k + 1 >= optlen)
			return R_BAD_HEADER;
		len = opt[k + 1];
		if (len < 2 || k + len > optlen)
			return R_BAD_HEADER;
		if (kind == 131 || kind == 137) { /* LSRR, SSRR */
			if (len < 3)
				return R_BAD_HEADER;
			ptr = opt[k + 2];
			if (ptr <= len)
				return R_IPV4_OPTIONS; /* unexpired */
		}
		next = k + len;
	}
	p->optlen = optlen;
	return 0;
}

/* parse4 validates an IPv4 header at p->l3 and the transport header;
 * verify checks the header checksum, which a packet the local stack built
 * or forwarded (the CE's egress) already has right. */
static __always_inline int parse4(struct __sk_buff *skb, struct pkt *p, int verify)
{
	struct iphdr4 *h = &p->ip4;
	__s64 sum;
	__u32 tot;
	__u16 fo;

	if (bpf_skb_load_bytes(skb, p->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((h->ver_ihl >> 4) != 4)
		return R_BAD_HEADER;
	if ((h->ver_ihl & 0xf) < 5)
		return R_BAD_HEADER;
	sum = verify ? bpf_csum_diff(0, 0, (__be32 *)h, sizeof(*h), 0) : 0;
	if ((h->ver_ihl & 0xf) > 5) {
		int err = ipv4_options(skb, p, &sum);

		if (err == R_IPV4_OPTIONS && mark_icmp_error(skb, p, p->l3 + (h->ver_ihl & 0xf) * 4, h->protocol, 0))
			return R_TRUNCATED;
		if (err)
			return err;
	}
	if (verify && csum_fold(sum) != 0)
		return R_BAD_HEADER;
	tot = bpf_ntohs(h->tot_len);
	if (tot < sizeof(*h) + p->optlen)
		return R_BAD_HEADER;
	if (skb->len < p->l3 + tot)
		return R_TRUNCATED;
	p->l4 = p->l3 + sizeof(*h) + p->optlen;
	p->l4len = tot - sizeof(*h) - p->optlen;
	p->proto = h->protocol;
	if (p->proto == IPPROTO_ICMPV6)
		return R_PROTO;
	fo = bpf_ntohs(h->frag_off);
	if (fo & (IP_MF | IP_OFFMASK)) {
		/* RFC 7915 s4.1: fragments get a Fragment Header. ICMP is
		 * not, since the ICMPv6 checksum needs the whole length. */
		if (p->proto == IPPROTO_ICMP)
			return R_FRAGMENT;
		p->mf = !!(fo & IP_MF);
		p->frag_off = fo & IP_OFFMASK;
		p->frag_id = bpf_ntohs(h->id);
		p->frag = p->frag_off ? FRAG_LATER : FRAG_FIRST;
		if (p->frag == FRAG_LATER) {
			p->noport = 1;
			return 0;
		}
	}
	return parse_l4(skb, p, 0);
}

/* parse6 validates an IPv6 header at p->l3 and the transport header. */
static __always_inline int parse6(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr6 *h = &p->ip6;
	__u32 plen, k, sl_ptr = 0;

	if (bpf_skb_load_bytes(skb, p->l3, h, sizeof(*h)))
		return R_TRUNCATED;
	if ((bpf_ntohl(h->vtcfl) >> 28) != 6)
		return R_BAD_HEADER;
	plen = bpf_ntohs(h->plen);
	if (skb->len < p->l3 + sizeof(*h) + plen)
		return R_TRUNCATED;
	p->l4 = p->l3 + sizeof(*h);
	p->l4len = plen;
	p->proto = h->nexthdr;
	/* RFC 7915 s5.1: Hop-by-Hop and Destination Options headers, and a
	 * Routing header with no segments left, are not translated but left
	 * out; a Routing header with segments left is dropped (with a
	 * Parameter Problem pointing at that field, unless the packet is an
	 * ICMPv6 error: the walk goes on to find out, mark_icmp_error).
	 * One path continues per round, so the verifier's work stays
	 * linear. */
	for (k = 0; k < V6_EXT_MAX && v6ext_skipped(p->proto); k++) {
		__u32 elen;
		__u8 next, sl;
		int err = v6ext_read(skb, p->l4, p->proto, k, p->l4len, &next, &elen, &sl);

		if (err)
			return err;
		if (sl && !sl_ptr)
			sl_ptr = p->l4 - p->l3 + 3; /* segments left */
		p->proto = next;
		p->l4 += elen;
		p->l4len -= elen;
		p->v6ext += elen;
	}
	if (sl_ptr) {
		int err = mark_icmp_error(skb, p, p->l4, p->proto, 1);

		p->err_ptr = sl_ptr;
		return err ? err : R_IPV6_EXTHDR;
	}
	if (p->proto == IPPROTO_FRAGMENT) {
		__u8 fh[8];
		__u16 fo;

		if (p->l4len < 8 || bpf_skb_load_bytes(skb, p->l4, fh, 8))
			return R_TRUNCATED;
		p->proto = fh[0];
		/* RFC 7915 s5.1.1: an extension header (but ESP) after the
		 * Fragment Header drops the packet; ICMPv6 fragments are not
		 * translated (the ICMPv4 checksum needs the whole message). */
		if (is_v6_exthdr(p->proto))
			return R_IPV6_EXTHDR;
		if (p->proto == IPPROTO_ICMPV6 || p->proto == IPPROTO_ICMP)
			return R_FRAGMENT;
		fo = ((__u16)fh[2] << 8) | fh[3];
		p->frag_off = fo >> 3;
		p->mf = fo & 1;
		p->frag_id = ((__u32)fh[4] << 24) | ((__u32)fh[5] << 16) | ((__u32)fh[6] << 8) | fh[7];
		p->frag = p->frag_off ? FRAG_LATER : FRAG_FIRST;
		p->l4 += 8;
		p->l4len -= 8;
		p->v6ext += 8;
		if (p->frag == FRAG_LATER) {
			p->noport = 1;
			return 0;
		}
	} else if (v6ext_skipped(p->proto)) {
		return R_IPV6_EXTHDR; /* hop-by-hop late, or more headers than we skip */
	} else if (p->proto == IPPROTO_ICMP) {
		return R_PROTO;
	}
	return parse_l4(skb, p, 1);
}

#endif /* MAPT_PARSE_H */
