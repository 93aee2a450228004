package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

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

	// WANIfindex is where the CE sends translated IPv6 packets and
	// UplinkIfindex the IPv4 uplink it hands translated IPv4 packets to
	// (BR: the IPv6 and IPv4 sides, for br_local). UplinkL3 says that the
	// uplink (BR: the local device) has no link-layer header (TUN). The
	// Attach methods fill these in; tests may leave them zero.
	WANIfindex    int
	UplinkIfindex int
	UplinkL3      bool
	// WANMTU is the CE WAN's MTU (AttachCE reads it); translated packets
	// above it are dropped and counted (too_big). 0 turns the check off.
	WANMTU int

	// Capacity is the number of rules the maps are sized for at Load
	// (default: max(1024, 2 * len(FMRs))). Update fails beyond it.
	Capacity int
}

const (
	cfgValid    = 1
	cfgUplinkL3 = 2
	ruleByPSID  = 1
)

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
	}
	for _, r := range c.FMRs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("dataplane: fmr: %w", err)
		}
	}
	if c.WANMTU < 0 || (c.WANMTU > 0 && c.WANMTU < 1280) {
		return fmt.Errorf("dataplane: wan mtu %d: below the IPv6 minimum 1280", c.WANMTU)
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
	x.Flags = cfgValid
	if c.UplinkL3 {
		x.Flags |= cfgUplinkL3
	}
	x.WanIfindex = uint32(c.WANIfindex)
	x.WanMtu = uint32(c.WANMTU)
	x.UplinkIfindex = uint32(c.UplinkIfindex)
	dmr := c.DMR.Masked()
	x.DmrHi, x.DmrLo = split128(dmr.Addr())
	x.DmrMaskHi, x.DmrMaskLo = prefixMask(dmr.Bits())
	x.DmrLen = uint8(dmr.Bits())
	if c.Mode == CE {
		b := c.Binding
		eup := b.EndUserPrefix.Masked()
		x.EupHi, x.EupLo = split128(eup.Addr())
		x.EupMaskHi, x.EupMaskLo = prefixMask(eup.Bits())
		x.EupLen = uint8(eup.Bits())
		v4 := b.IPv4.Masked()
		x.V4 = v4u32(v4.Addr())
		x.V4Mask = ^uint32(0) << (32 - v4.Bits())
		if v4.Bits() == 0 {
			x.V4Mask = 0
		}
		ps := b.PortSet
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
			marker.Flags = ruleByPSID
			if o, ok := get4(); ok && (o.Flags != ruleByPSID || o.PsidA != x.PsidA || o.PsidK != x.PsidK) {
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
