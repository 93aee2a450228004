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

#include "maps.h"
#include "addr.h"
#include "parse.h"
#include "xlat.h"
#include "icmp.h"
#include "reply.h"

#endif /* MAPT_CORE_H */
