/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source address validation for the BR's CE-facing side (in the spirit of
 * SAVI, RFC 7039, and strict uRPF, BCP 84): an IPv6 packet is accepted only
 * from the neighbour the BR itself routes its source address to. RFC 7599
 * s8.3's check proves that a source port belongs to the PSID in the source
 * address; this one proves that the address belongs to the sender, so a CE
 * cannot send with another CE's MAP address and port set.
 *
 * Runs before the translator on the same hook and passes what it accepts
 * (TC_ACT_UNSPEC: the next program decides).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_HLEN 14
#define ETH_ALEN 6
#define ETH_P_IPV6 0x86DD
#define AF_INET6 10

enum reason {
	R_CHECKED = 0, /* accepted after a check */
	R_EXEMPT,      /* link-local, multicast or unspecified source: not checked */
	R_NO_ROUTE,    /* dropped: the BR has no route back to the source */
	R_OTHER_IF,    /* dropped: the route to the source leaves by another interface */
	R_OTHER_MAC,   /* dropped: the route's next hop is another neighbour */
	R_UNVERIFIED,  /* accepted unverified: the next hop has no neighbour entry yet */
	R_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} savi_counters SEC(".maps");

/* Never read or written: it keeps enum reason in the object's BTF, where
 * the Go side reads the counter names (array keys must be plain ints, so
 * savi_counters cannot carry it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, enum reason);
} savi_reasons SEC(".maps");

static __always_inline int count(__u32 r, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&savi_counters, &r);
	if (c)
		*c += 1;
	return verdict;
}

SEC("tc")
int savi_ingress(struct __sk_buff *skb)
{
	struct bpf_fib_lookup fib = {};
	__u8 smac[ETH_ALEN], src[16], any = 0;
	int i, ret;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, 6, smac, ETH_ALEN) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + 8, src, 16))
		return TC_ACT_UNSPEC; /* the translator counts truncation */
	/* fe80::/10, ff00::/8 and :: are link business, not forwarded. */
	for (i = 0; i < 16; i++)
		any |= src[i];
	if (!any || src[0] == 0xff || (src[0] == 0xfe && (src[1] & 0xc0) == 0x80))
		return count(R_EXEMPT, TC_ACT_UNSPEC);

	fib.family = AF_INET6;
	fib.ifindex = skb->ingress_ifindex;
	__builtin_memcpy(fib.ipv6_dst, src, 16);
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	switch (ret) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		/* The route is right but the BR has not resolved the next hop
		 * yet. Dropping would keep it so: nothing would ever go back.
		 * The first answer resolves it and the check takes over. */
		return count(R_UNVERIFIED, TC_ACT_UNSPEC);
	default:
		return count(R_NO_ROUTE, TC_ACT_SHOT);
	}
	if (fib.ifindex != skb->ingress_ifindex)
		return count(R_OTHER_IF, TC_ACT_SHOT);
	for (i = 0; i < ETH_ALEN; i++)
		if (fib.dmac[i] != smac[i])
			return count(R_OTHER_MAC, TC_ACT_SHOT);
	return count(R_CHECKED, TC_ACT_UNSPEC);
}

char __license[] SEC("license") = "Dual BSD/GPL";
