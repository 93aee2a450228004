/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors the translator sends itself (RFC 7915 s4.4, s5.4): Source
 * Route Failed for an unexpired IPv4 source route (s4.1), Parameter
 * Problem for a Routing header with segments left (s5.1), Destination
 * Unreachable "source address failed ingress/egress policy" for packets
 * the MAP checks drop (RFC 7599 s8.2, s8.3). A TC program cannot make a
 * packet, so the dropped packet itself becomes the error, in place: room
 * for the new IP and ICMP headers goes in after the IP header, the old IP
 * header moves behind them, the result is cut to the ICMP size limit and
 * sent back out of the device it came in on (or into the CE's stack).
 * Rate-limited per CPU (xlat_config.icmp_gap_ns); never about an ICMP
 * error, a GSO packet or a later IPv4 fragment, or to a multicast or
 * unspecified source.
 */
#ifndef MAPT_REPLY_H
#define MAPT_REPLY_H

#include "icmp.h"

/* icmp_allowed applies the rate limit: at most one error per gap and CPU. */
static __always_inline int icmp_allowed(const struct xlat_config *c)
{
	__u32 zero = 0;
	struct icmp_bucket *b = bpf_map_lookup_elem(&icmp_bucket, &zero);
	__u64 now;

	if (!c->icmp_gap_ns || !b)
		return 0;
	now = bpf_ktime_get_ns();
	if (now - b->last_ns < c->icmp_gap_ns) {
		count(R_ICMP_LIMITED);
		return 0;
	}
	b->last_ns = now;
	return 1;
}

/* may_reply: whether the packet p may be answered with an error at all
 * (never about an ICMP error or a GSO packet, nor to a source the caller
 * found unfit: bad_dst) and the rate limit lets one through. */
static __always_inline int may_reply(struct __sk_buff *skb, const struct xlat_config *c, const struct pkt *p, int bad_dst)
{
	return !p->icmp_err && !skb->gso_size && !bad_dst && icmp_allowed(c);
}

/* swap_macs turns the frame around for a reply out of the same device. */
static __always_inline int swap_macs(struct __sk_buff *skb, __u32 l3)
{
	__u8 mac[12], sw[12];

	if (l3 < ETH_HLEN)
		return 0;
	if (bpf_skb_load_bytes(skb, 0, mac, 12))
		return R_TRUNCATED;
	__builtin_memcpy(sw, mac + 6, 6);
	__builtin_memcpy(sw + 6, mac, 6);
	if (bpf_skb_store_bytes(skb, 0, sw, 12, 0))
		return R_HELPER;
	return 0;
}

/* icmp6_reply drops the IPv6 packet p for reason, turning it into an
 * ICMPv6 error to its source, from its destination, when it may; it
 * returns the TC verdict (the redirect, or the drop). */
static __always_inline int icmp6_reply(struct __sk_buff *skb, const struct xlat_config *c, const struct pkt *p,
				       __u8 type, __u8 code, __u32 rest, int reason)
{
	struct iphdr6 h6 = {};
	__u8 hdr[8] = {type, code, 0, 0, rest >> 24, rest >> 16, rest >> 8, rest};
	__be32 pseudo[10] = {};
	__u32 orig = skb->len - p->l3, plen;
	__s64 sum = 0;
	__u16 cs;
	int err;

	/* Not to a multicast or the unspecified source. */
	if (!may_reply(skb, c, p, p->ip6.saddr[0] == 0xff || (v6_hi(p->ip6.saddr) == 0 && v6_lo(p->ip6.saddr) == 0)))
		return drop(reason);
	if (orig > ICMP6_ERR_MAX - 48) {
		orig = ICMP6_ERR_MAX - 48;
		if (bpf_skb_change_tail(skb, p->l3 + orig, 0))
			return drop(reason);
	}
	plen = 8 + orig;
	h6.vtcfl = bpf_htonl(6U << 28);
	h6.plen = bpf_htons(plen);
	h6.nexthdr = IPPROTO_ICMPV6;
	h6.hlim = 64;
	__builtin_memcpy(h6.saddr, p->ip6.daddr, 16);
	__builtin_memcpy(h6.daddr, p->ip6.saddr, 16);
	if (bpf_skb_adjust_room(skb, 48, BPF_ADJ_ROOM_NET, 0))
		return drop(reason);
	if (bpf_skb_store_bytes(skb, p->l3, &h6, sizeof(h6), BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, p->l3 + 40, hdr, 8, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, p->l3 + 48, &p->ip6, 40, BPF_F_RECOMPUTE_CSUM))
		return drop(reason);
	err = sum_bytes(skb, p->l3 + 40, plen, &sum);
	if (err)
		return drop(reason);
	__builtin_memcpy(pseudo, h6.saddr, 32);
	pseudo[8] = bpf_htonl(plen);
	pseudo[9] = bpf_htonl(IPPROTO_ICMPV6);
	cs = csum_fold(bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), sum));
	if (bpf_skb_store_bytes(skb, p->l3 + 42, &cs, 2, BPF_F_RECOMPUTE_CSUM) || swap_macs(skb, p->l3))
		return drop(reason);
	count(reason);
	count(R_ICMP_SENT);
	return bpf_redirect(skb->ifindex, 0);
}

/* icmp4_reply turns the IPv4 packet p into an ICMPv4 error to its source,
 * from src, sent to ifindex with redirect flags (the CE puts it into its
 * own stack, whose conntrack undoes the NAT). Same verdict as icmp6_reply. */
static __always_inline int icmp4_reply(struct __sk_buff *skb, const struct xlat_config *c, const struct pkt *p,
				       __u8 type, __u8 code, __u32 src, __u32 ifindex, __u64 flags, int reason)
{
	struct iphdr4 h4 = {};
	__u8 hdr[8] = {type, code};
	__u32 orig = skb->len - p->l3, tot;
	__u32 dst = bpf_ntohl(p->ip4.saddr);
	__s64 sum = 0;
	__u16 cs;
	int err;

	/* Not to a multicast, broadcast or zero source, nor about a fragment
	 * other than the first (RFC 1812 s4.3.2.7). */
	if (!may_reply(skb, c, p, (dst >> 28) >= 0xe || dst == 0 || (bpf_ntohs(p->ip4.frag_off) & IP_OFFMASK)))
		return drop(reason);
	if (orig > ICMP4_ERR_MAX - 28) {
		orig = ICMP4_ERR_MAX - 28;
		if (bpf_skb_change_tail(skb, p->l3 + orig, 0))
			return drop(reason);
	}
	tot = 28 + orig;
	h4.ver_ihl = 0x45;
	h4.tot_len = bpf_htons(tot);
	h4.id = (__be16)bpf_get_prandom_u32();
	h4.ttl = 64;
	h4.protocol = IPPROTO_ICMP;
	h4.saddr = bpf_htonl(src);
	h4.daddr = p->ip4.saddr;
	h4.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&h4, sizeof(h4), 0));
	/* The room goes in after the fixed 20 bytes, so the options stay
	 * right behind the old header, which moves behind the new ones. */
	if (bpf_skb_adjust_room(skb, 28, BPF_ADJ_ROOM_NET, 0))
		return drop(reason);
	if (bpf_skb_store_bytes(skb, p->l3, &h4, sizeof(h4), BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, p->l3 + 20, hdr, 8, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, p->l3 + 28, &p->ip4, 20, BPF_F_RECOMPUTE_CSUM))
		return drop(reason);
	err = sum_bytes(skb, p->l3 + 20, 8 + orig, &sum);
	if (err)
		return drop(reason);
	cs = csum_fold(sum);
	if (bpf_skb_store_bytes(skb, p->l3 + 22, &cs, 2, BPF_F_RECOMPUTE_CSUM) || swap_macs(skb, p->l3))
		return drop(reason);
	count(reason);
	count(R_ICMP_SENT);
	return bpf_redirect(ifindex, flags);
}

#endif /* MAPT_REPLY_H */
