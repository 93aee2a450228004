/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How a translated packet leaves (finish), and the tail-called programs
 * shared by the CE and BR objects: the two ICMP error translations and
 * the ICMP errors the translator sends itself. An entry program does the
 * checks and the mapping, leaves the result in struct pkt and jumps; the
 * tail program translates and finishes as the entry program would have.
 * Split this way, every program stays well within the verifier's limits
 * on the oldest kernel we support.
 */
#ifndef MAPT_TAIL_H
#define MAPT_TAIL_H

#include "core.h"

/* fin_set says how a packet translated by this program leaves, with no
 * TTL or MTU check (the callers that want one set it after). */
static __always_inline void fin_set(struct pkt *p, enum reason xlat, __u8 how, __u32 ifindex)
{
	p->fin.xlat = xlat;
	p->fin.how = how;
	p->fin.ifindex = ifindex;
	p->fin.ttl_check = 0;
	p->fin.ttl = 0;
	p->fin.mtu_check = 0;
}

/* fin_side is the redirect to one side's device: through the neighbour
 * table on Ethernet, as it is on a device without link layer. */
static __always_inline void fin_side(struct pkt *p, enum reason xlat, __u32 ifindex, int l3)
{
	fin_set(p, xlat, l3 ? FIN_EGRESS : FIN_NEIGH, ifindex);
}

/* finish counts a translated packet and sends it on its way. */
static __always_inline int finish(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p)
{
	if (p->fin.mtu_check && c->v6_mtu && !skb->gso_size && skb->len - p->l3 > c->v6_mtu)
		return drop(R_TOO_BIG);
	count_xlat(skb, p->fin.xlat);
	if (p->fin.ttl_check && p->fin.ttl <= 1)
		count(R_TTL_EXPIRED);
	switch (p->fin.how) {
	case FIN_NEIGH:
		return bpf_redirect_neigh(p->fin.ifindex, 0, 0, 0);
	case FIN_EGRESS:
		return bpf_redirect(p->fin.ifindex, 0);
	case FIN_INGRESS:
		return bpf_redirect(p->fin.ifindex, BPF_F_INGRESS);
	}
	return TC_ACT_OK;
}

/* end is the verdict after a translation step: its error's drop, or
 * finish. */
static __always_inline int end(struct __sk_buff *skb, const struct xlat_config *c, struct pkt *p, int err)
{
	if (err)
		return drop(err);
	return finish(skb, c, p);
}

/* side_l3 is where the IP header starts on a side's device: 0 on one
 * without link layer (l3flag set), after the Ethernet header otherwise. */
static __always_inline __u32 side_l3(const struct xlat_config *c, enum cfg_flag l3flag)
{
	return (c->flags & l3flag) ? 0 : ETH_HLEN;
}

/* ingress_dst's answers besides an offset: the packet is not the entry
 * program's to look at (another family, or no configuration yet), or it
 * is shorter than the address it reads. */
#define ENTRY_OTHER (-1)
#define ENTRY_SHORT (-2)

/* ingress_dst is the first step of the ingress entry programs: a packet of
 * family proto on the side whose link-layer flag is l3flag gets its
 * destination address (len bytes at off in the IP header) read into dst,
 * the cheapest test of whether the packet is ours. It returns where the
 * IP header starts, ENTRY_OTHER or ENTRY_SHORT (malformed, whoever it is
 * for). */
static __always_inline int ingress_dst(struct __sk_buff *skb, const struct xlat_config *c, __be16 proto, enum cfg_flag l3flag,
				       __u32 off, void *dst, __u32 len)
{
	__u32 l3;

	if (skb->protocol != proto || !c)
		return ENTRY_OTHER;
	l3 = side_l3(c, l3flag);
	if (bpf_skb_load_bytes(skb, l3 + off, dst, len))
		return ENTRY_SHORT;
	return l3;
}

/* parse_at is the step after ingress_dst and the test of the destination:
 * the packet's state, cleared, for the IP header at l3, and what parse6
 * (v6) or parse4 says of the packet; R_HELPER when there is no state. */
static __always_inline int parse_at(struct __sk_buff *skb, __u32 l3, int v6, struct pkt **pp)
{
	struct pkt *p = pkt_get(l3);

	*pp = p;
	if (!p)
		return R_HELPER;
	return v6 ? parse6(skb, p) : parse4(skb, p, 1);
}

/* l2_room gives a bare IP packet from a device without link layer (the
 * CE's TUN uplink, the BR's local device) the room of an Ethernet header,
 * which bpf_redirect_neigh fills in for an Ethernet side and a redirect
 * to a side without link layer pulls again. (It also sets the MAC header,
 * which bpf_skb_change_proto measures from.) */
static __always_inline int l2_room(struct __sk_buff *skb, const struct xlat_config *c, enum cfg_flag l3flag)
{
	if ((c->flags & l3flag) && bpf_skb_change_head(skb, ETH_HLEN, 0))
		return R_HELPER;
	return 0;
}

/* egress_at is the first step of a program at the egress of a device
 * that may have no link layer (ce_egress on the CE's uplink, br_local on
 * the BR's local device): the packet's state, cleared, for the IP header
 * after an Ethernet header, and that header's room where l3flag says the
 * device has none. R_NO_CONFIG before the agent or br configured the
 * translator, R_HELPER when there is no state or no room. */
static __always_inline int egress_at(struct __sk_buff *skb, const struct xlat_config *c, enum cfg_flag l3flag, struct pkt **pp)
{
	struct pkt *p;

	*pp = NULL;
	if (!c)
		return R_NO_CONFIG;
	p = pkt_get(ETH_HLEN);
	*pp = p;
	if (!p || l2_room(skb, c, l3flag))
		return R_HELPER;
	return 0;
}

/* tail jumps to one of the tail programs; it returns only when the jump
 * failed (the program array is not filled in). */
static __always_inline int tail(struct __sk_buff *skb, struct pkt *p, enum tail idx)
{
	p->tail = idx;
	bpf_tail_call(skb, &tails, idx);
	return drop(R_HELPER);
}

/* reply sends, in place of the packet dropped for reason, an ICMP error
 * (type, code, header bytes 4-7 rest) to its source. ICMPv4 errors come
 * from src and go to ifindex (into its stack with ingress); ICMPv6 ones
 * go back out of the device the packet came in on. */
static __always_inline int reply(struct __sk_buff *skb, struct pkt *p, enum reason reason, __u8 type, __u8 code,
				 __u32 rest, __u32 src, __u32 ifindex, int ingress)
{
	p->reply.reason = reason;
	p->reply.type = type;
	p->reply.code = code;
	p->reply.rest = rest;
	p->reply.src = src;
	p->reply.ifindex = ifindex;
	p->reply.ingress = ingress;
	return tail(skb, p, T_ICMP_REPLY);
}

SEC("tc")
int xlat_err4to6(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p = pkt_cur();

	if (!c || !p)
		return drop(R_HELPER);
	return end(skb, c, p, xlat_4to6_err(skb, c, p, &p->o, &p->i));
}

SEC("tc")
int xlat_err6to4(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p = pkt_cur();

	if (!c || !p)
		return drop(R_HELPER);
	return end(skb, c, p, xlat_6to4_err(skb, c, p, p->osrc, p->odst, p->isrc, p->idst));
}

SEC("tc")
int icmp_reply(struct __sk_buff *skb)
{
	const struct xlat_config *c = get_config();
	struct pkt *p = pkt_cur();
	struct reply *r;
	__u32 ifindex;

	if (!c || !p)
		return drop(R_HELPER);
	r = &p->reply;
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return icmp6_reply(skb, c, p, r->type, r->code, r->rest, r->reason);
	ifindex = r->ifindex ? r->ifindex : skb->ifindex;
	return icmp4_reply(skb, c, p, r->type, r->code, r->src, ifindex, r->ingress ? BPF_F_INGRESS : 0, r->reason);
}

#endif /* MAPT_TAIL_H */
