package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mapt-go/mapt/mapt"
)

// Mode selects the entry programs: a CE or a BR.
type Mode int

const (
	// CE translates for one customer edge (RFC 7599 s8.1-8.2).
	CE Mode = iota + 1
	// BR is the border relay (RFC 7599 s8.3-8.4).
	BR
)

func (m Mode) String() string {
	switch m {
	case CE:
		return "ce"
	case BR:
		return "br"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Config is what the translator needs; it is written to BPF maps by Load
// and Update.
type Config struct {
	Mode Mode
	// Binding is the CE's own mapping (from its BMR); CE mode only.
	Binding mapt.Binding
	// DMR is the BR's RFC 6052 prefix (RFC 7599 s5.1).
	DMR netip.Prefix
	// FMRs are the forwarding rules: mesh peers for a CE, every CE of the
	// domain for a BR. Lookups are longest-prefix matches.
	FMRs []mapt.Rule

	// IPv6Side and IPv4Side are the devices on either side of the
	// translator (CE: the WAN and the IPv4 uplink; BR: the CE-facing and
	// the Internet-facing device). The Attach methods fill them in;
	// tests may leave them zero. Translated packets are redirected to
	// the side they go to, and the MTUs bound what translated ICMP
	// errors report (RFC 7915 s4.2, s5.2).
	IPv6Side, IPv4Side Link
	// Local is the BR's local device (AttachBR): br_local translates the
	// BR's own ICMP errors there, and the stack fragments through it.
	Local Link
	// LowestIPv6MTU is RFC 7915 s4.1's lowest-ipv6-mtu: IPv4 packets with
	// DF clear whose translation would be larger leave as IPv6 fragments
	// of at most this size. 0 means DefaultLowestIPv6MTU.
	LowestIPv6MTU int
	// ICMPSource is the IPv4 source of ICMPv6 errors from IPv6 routers
	// (addresses with no IPv4 form) translated to ICMPv4 (RFC 7915 s5.2,
	// RFC 6791), and of the BR's own ICMPv4 errors. Invalid: 192.0.0.8
	// (RFC 7600). The CE always uses 192.0.0.8.
	ICMPSource netip.Addr
	// MeshAlias (CE, shared addresses) stands for our own IPv4 address as
	// the address of the CEs that share it (RFC 7599 s8.1): nat DNATs
	// LAN packets to our address but another CE's port to it
	// (nat.MeshAlias), and the translator maps it back; packets from
	// those CEs get it as their source, since the stack would take our
	// own address for a martian. Invalid: none.
	MeshAlias netip.Addr
	// ICMPRate is how many ICMP errors per second and CPU the programs
	// send themselves (RFC 7915 s4.4, s5.4; RFC 7599 s8.2, s8.3); 0 means
	// DefaultICMPRate, negative none.
	ICMPRate int
	// FastPath (BR) sends translated packets to their next hop from the
	// program (FIB lookup, TTL decrement, the neighbour's MAC) instead of
	// through the stack, whenever only routing is needed; everything else
	// (TTL 1, too big, no neighbour, local, another device) still goes to
	// the stack. Fast-path packets skip the BR's netfilter forwarding
	// hooks.
	FastPath bool
	// InboundViaUplink (CE) hands what ce_ingress translates to the
	// uplink's ingress, so that the IPv4 firewall sees it arrive on the
	// uplink (OpenWrt's mapt zone), instead of letting it go on into the
	// IPv4 stack on the WAN, which saves a second receive through the
	// CPU's backlog per packet. Without it, reverse-path filtering must
	// be off on the WAN (internal/rpfilter; the agent does it).
	InboundViaUplink bool
	// TrafficClass is what 4->6 translation writes into the IPv6
	// Traffic Class (RFC 7915 s4.1), TOS what 6->4 translation writes
	// into the IPv4 TOS octet (s5.1): the zero value copies the other
	// header's octet. They apply to the packets quoted in ICMP errors
	// too, which are translated like any packet (s4.3, s5.3), and to
	// the BR's hairpin, whose IPv4 leg they would have passed.
	TrafficClass, TOS mapt.DSField

	// Capacity is the number of rules the maps are sized for at Load
	// (default: max(1024, 2 * len(FMRs))). Update fails beyond it.
	Capacity int
}

// Link is a device the translator redirects to.
type Link struct {
	Ifindex int
	MTU     int  // 0: unknown (no check)
	L3      bool // no link-layer header (TUN, PPP, raw IP)
}

// DefaultLowestIPv6MTU is the IPv6 minimum MTU, RFC 7915 s4.1's default.
const DefaultLowestIPv6MTU = 1280

// DefaultICMPRate bounds the ICMP errors the translator sends itself.
const DefaultICMPRate = 100

// FragmentOverhead is what translation adds to an IPv4 fragment: 20 bytes
// of IPv6 over IPv4 header and the 8 of the Fragment Header (RFC 7915
// s5.1.1).
const FragmentOverhead = 20 + 8

// FragmentMTU is the one place the IPv4 MTU that keeps translated packets
// within both the IPv6 link (linkMTU) and lowest-ipv6-mtu comes from: the
// CE's uplink MTU and the BR's local device MTU. The stack fragments IPv4
// packets with DF clear to it and answers DF-set ones with Fragmentation
// Needed, so no translated packet, fragment or not, exceeds either.
func FragmentMTU(linkMTU, lowestIPv6MTU int) int {
	if lowestIPv6MTU <= 0 {
		lowestIPv6MTU = DefaultLowestIPv6MTU
	}
	return min(linkMTU, lowestIPv6MTU) - FragmentOverhead
}

func (c Config) lowestMTU() int {
	if c.LowestIPv6MTU > 0 {
		return c.LowestIPv6MTU
	}
	return DefaultLowestIPv6MTU
}

// Validate checks the configuration; the error names the field.
func (c Config) Validate() error {
	if c.Mode != CE && c.Mode != BR {
		return fmt.Errorf("dataplane: mode: want ce or br, got %v", c.Mode)
	}
	if err := mapt.ValidateDMR(c.DMR); err != nil {
		return fmt.Errorf("dataplane: dmr: %w", err)
	}
	if c.Mode == CE {
		b := c.Binding
		if !b.IPv4.IsValid() || !b.IPv4.Addr().Is4() {
			return fmt.Errorf("dataplane: binding: ipv4 %v is not an IPv4 prefix", b.IPv4)
		}
		if !b.EndUserPrefix.IsValid() || !b.EndUserPrefix.Addr().Is6() {
			return fmt.Errorf("dataplane: binding: end-user prefix %v is not an IPv6 prefix", b.EndUserPrefix)
		}
		if err := b.PortSet.Validate(); err != nil {
			return fmt.Errorf("dataplane: binding: %w", err)
		}
		if c.FastPath {
			return fmt.Errorf("dataplane: fast path: BR only (the CE's packets need its stack for NAT)")
		}
	} else if c.InboundViaUplink {
		return fmt.Errorf("dataplane: inbound via uplink: CE only")
	}
	for _, r := range c.FMRs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("dataplane: fmr: %w", err)
		}
	}
	if m := c.IPv6Side.MTU; m < 0 || (m > 0 && m < 1280) {
		return fmt.Errorf("dataplane: ipv6 side mtu %d: below the IPv6 minimum 1280", m)
	}
	if m := c.IPv4Side.MTU; m < 0 || (m > 0 && m < 68) {
		return fmt.Errorf("dataplane: ipv4 side mtu %d: below the IPv4 minimum 68", m)
	}
	if a := c.ICMPSource; a.IsValid() && (!a.Is4() || !a.IsGlobalUnicast()) {
		return fmt.Errorf("dataplane: icmp source %v: not a unicast IPv4 address", a)
	}
	if a := c.MeshAlias; a.IsValid() && !a.Is4() {
		return fmt.Errorf("dataplane: mesh alias %v: not an IPv4 address", a)
	}
	if m := c.LowestIPv6MTU; m != 0 && (m < 1280 || m > 65535) {
		return fmt.Errorf("dataplane: lowest-ipv6-mtu %d: want 1280-65535", m)
	}
	if c.Capacity < 0 {
		return fmt.Errorf("dataplane: capacity %d: negative", c.Capacity)
	}
	return nil
}

func (c Config) capacity() int {
	if c.Capacity > 0 {
		return c.Capacity
	}
	return max(1024, 2*len(c.FMRs))
}

func split128(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func v4u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// encodeConfig turns the CE binding, the DMR and the exact-match lengths
// of the rule tables into the map value.
func encodeConfig(c Config, t ruleTables) ceXlatConfig {
	var x ceXlatConfig
	x.ExactLens = t.lens
	flags := ceCfgFlagCFG_VALID
	if c.IPv4Side.L3 {
		flags |= ceCfgFlagCFG_V4L3
	}
	if c.IPv6Side.L3 {
		flags |= ceCfgFlagCFG_V6L3
	}
	if c.Local.Ifindex != 0 {
		flags |= ceCfgFlagCFG_LOCAL
		if c.Local.L3 {
			flags |= ceCfgFlagCFG_LOCAL_L3
		}
	}
	if c.FastPath && c.Mode == BR {
		flags |= ceCfgFlagCFG_FAST
	}
	if len(t.v4x) > 0 {
		flags |= ceCfgFlagCFG_V4X
	}
	if c.InboundViaUplink && c.Mode == CE {
		flags |= ceCfgFlagCFG_VIA_UPLINK
	}
	if c.TrafficClass.Set {
		flags |= ceCfgFlagCFG_SET_TCLASS
		x.Tclass = c.TrafficClass.Value
	}
	if c.TOS.Set {
		flags |= ceCfgFlagCFG_SET_TOS
		x.Tos = c.TOS.Value
	}
	x.Flags = flags
	x.V6Ifindex, x.V6Mtu = uint32(c.IPv6Side.Ifindex), uint32(c.IPv6Side.MTU)
	x.V4Ifindex, x.V4Mtu = uint32(c.IPv4Side.Ifindex), uint32(c.IPv4Side.MTU)
	x.FragMtu = uint32(c.lowestMTU())
	if c.IPv6Side.MTU > 0 {
		x.FragMtu = uint32(min(c.IPv6Side.MTU, c.lowestMTU()))
	}
	if c.ICMPSource.IsValid() {
		x.IcmpSrc = v4u32(c.ICMPSource)
	}
	switch rate := c.ICMPRate; {
	case rate == 0:
		x.IcmpGapNs = uint64(time.Second) / DefaultICMPRate
	case rate > 0:
		x.IcmpGapNs = uint64(time.Second) / uint64(rate)
	}
	dmr := c.DMR.Masked()
	x.DmrHi, x.DmrLo = split128(dmr.Addr())
	x.DmrMaskHi, x.DmrMaskLo = prefixMask(dmr.Bits())
	x.DmrLen = uint8(dmr.Bits())
	if c.Mode == CE {
		b := c.Binding
		eup := b.EndUserPrefix.Masked()
		x.EupHi, x.EupLo = split128(eup.Addr())
		x.EupMaskHi, x.EupMaskLo = prefixMask(eup.Bits())
		// The MAP address is built on the rule's end-user prefix, which
		// may be shorter than the delegated one (mapt.Binding).
		x.EupLen = uint8(b.MAPPrefixLen())
		v4 := b.IPv4.Masked()
		x.V4 = v4u32(v4.Addr())
		x.V4Mask = ^uint32(0) << (32 - v4.Bits())
		if v4.Bits() == 0 {
			x.V4Mask = 0
		}
		ps := b.PortSet
		if ps.Len > 0 && b.IPv4.Bits() == 32 && c.MeshAlias.IsValid() {
			x.MeshAlias = v4u32(c.MeshAlias)
		}
		x.Psid = ps.PSID
		x.PsidA = ps.Offset
		x.PsidK = ps.Len
		x.PsidM = 16 - ps.Offset - ps.Len
	}
	return x
}

// prefixMask is the mask of the leading bits of a 128-bit address.
func prefixMask(bits int) (hi, lo uint64) {
	switch {
	case bits <= 0:
		return 0, 0
	case bits < 64:
		return ^uint64(0) << (64 - bits), 0
	case bits == 64:
		return ^uint64(0), 0
	case bits < 128:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	}
	return ^uint64(0), ^uint64(0)
}

// encodeRule turns a rule into the value the LPM tries hold.
func encodeRule(r mapt.Rule) ceRule {
	var x ceRule
	x.V6Hi, x.V6Lo = split128(r.IPv6Prefix.Masked().Addr())
	x.V4 = v4u32(r.IPv4Prefix.Masked().Addr())
	x.V6Len = uint8(r.IPv6Prefix.Bits())
	x.V4Len = uint8(r.IPv4Prefix.Bits())
	x.EaLen = uint8(r.EABits)
	k := r.SharingBits()
	x.PsidK = uint8(k)
	if k > 0 {
		x.PsidA = uint8(r.PSIDOffset)
		x.PsidM = uint8(16 - r.PSIDOffset - k)
	}
	if r.EABits == 0 {
		x.Psid = r.PSID
	}
	return x
}

// ruleTables are the contents of the rule maps.
type ruleTables struct {
	v4   map[ceLpmV4Key]ceRule
	v6   map[ceLpmV6Key]ceRule
	psid map[cePsidKey]ceRule
	v4x  map[uint32]ceRule       // /32 entries
	v6x  map[ceV6ExactKey]ceRule // EA-length-0 rules of the lengths in lens
	lens [4]uint8                // longest first
}

func (t ruleTables) size() int {
	return max(len(t.v4), len(t.v6), len(t.psid), len(t.v4x), len(t.v6x))
}

// maxExactLens is the number of prefix lengths the programs probe in
// rules_v6x (the size of exact_lens in struct xlat_config).
const maxExactLens = 4

// buildTables lays the rules out for the maps. EA-length-0 rules (1:1
// mode, one rule per CE) go to exact-match hashes so that a million of
// them cost no more per packet than one; their IPv6 prefixes are probed
// by length, for the maxExactLens most common lengths (rules of other
// lengths stay in the trie). IPv4 /32 entries go to the IPv4 hash; rules
// sharing one IPv4 address by PSID get a marker there that sends the
// lookup on to the (address, PSID) hash.
func buildTables(rules []mapt.Rule) (ruleTables, error) {
	t := ruleTables{
		v4:   make(map[ceLpmV4Key]ceRule),
		v6:   make(map[ceLpmV6Key]ceRule),
		psid: make(map[cePsidKey]ceRule),
		v4x:  make(map[uint32]ceRule),
		v6x:  make(map[ceV6ExactKey]ceRule),
	}
	count := map[int]int{}
	for _, r := range rules {
		if r.EABits == 0 {
			count[r.IPv6Prefix.Bits()]++
		}
	}
	lens := make([]int, 0, len(count))
	for l := range count {
		lens = append(lens, l)
	}
	slices.SortFunc(lens, func(a, b int) int {
		if count[a] != count[b] {
			return count[b] - count[a]
		}
		return b - a
	})
	if len(lens) > maxExactLens {
		lens = lens[:maxExactLens]
	}
	slices.SortFunc(lens, func(a, b int) int { return b - a })
	exact := map[int]bool{}
	for i, l := range lens {
		t.lens[i] = uint8(l)
		exact[l] = true
	}

	seen6 := map[netip.Prefix]bool{}
	for _, r := range rules {
		x := encodeRule(r)
		p6 := r.IPv6Prefix.Masked()
		if seen6[p6] {
			return ruleTables{}, fmt.Errorf("dataplane: fmr %s: ipv6-prefix %s used by another rule", r, r.IPv6Prefix)
		}
		seen6[p6] = true
		if r.EABits == 0 && exact[p6.Bits()] {
			hi, lo := split128(p6.Addr())
			t.v6x[ceV6ExactKey{Len: uint32(p6.Bits()), Hi: hi, Lo: lo}] = x
		} else {
			t.v6[ceLpmV6Key{Prefixlen: uint32(p6.Bits()), Addr: p6.Addr().As16()}] = x
		}

		p4 := r.IPv4Prefix.Masked()
		k4 := ceLpmV4Key{Prefixlen: uint32(p4.Bits()), Addr: p4.Addr().As4()}
		put4 := func(v ceRule) {
			if p4.Bits() == 32 {
				t.v4x[x.V4] = v
			} else {
				t.v4[k4] = v
			}
		}
		get4 := func() (ceRule, bool) {
			if p4.Bits() == 32 {
				v, ok := t.v4x[x.V4]
				return v, ok
			}
			v, ok := t.v4[k4]
			return v, ok
		}
		if r.EABits == 0 && r.PSIDLen > 0 {
			kp := cePsidKey{V4: x.V4, Psid: r.PSID}
			if _, dup := t.psid[kp]; dup {
				return ruleTables{}, fmt.Errorf("dataplane: fmr %s: ipv4 %s psid %d used by another rule", r, r.IPv4Prefix, r.PSID)
			}
			t.psid[kp] = x
			marker := x
			marker.Flags = ceRuleFlagRULE_BY_PSID
			if o, ok := get4(); ok && (o.Flags != ceRuleFlagRULE_BY_PSID || o.PsidA != x.PsidA || o.PsidK != x.PsidK) {
				return ruleTables{}, fmt.Errorf("dataplane: fmr %s: ipv4-prefix %s shared with a rule of other port parameters", r, r.IPv4Prefix)
			}
			put4(marker)
			continue
		}
		if _, dup := get4(); dup {
			return ruleTables{}, fmt.Errorf("dataplane: fmr %s: ipv4-prefix %s used by another rule", r, r.IPv4Prefix)
		}
		put4(x)
	}
	return t, nil
}
