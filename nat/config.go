package nat

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/mapt-go/mapt/mapt"
)

// maxChunk is the largest port range handed to one snat statement. The
// kernel searches at most 128 ports (NF_NAT_MAX_ATTEMPTS) of a range for a
// free tuple before it gives up and the packet is dropped at conntrack
// confirm; ranges of at most that size are therefore searched completely.
const maxChunk = 128

// MaxSlots bounds the number of slots, and with it the size of the
// transaction (two messages per slot). It admits every port set with
// PSID offset a <= 12; larger offsets (ranges of one or two ports, 8191
// of them or more) are rejected.
const MaxSlots = 4096

// Config is what the NAT needs from a MAP binding.
type Config struct {
	// Uplink is the IPv4 uplink device (the translator's L3 device).
	// Everything routed out of it is translated.
	Uplink string
	// WAN, when set (ce-agent --inbound wan), is a second device the
	// translated packets from the MAP domain arrive on: the CE translator
	// lets them go on into the IPv4 stack at the WAN's ingress instead of
	// redirecting them into the uplink's. The MSS clamp of their SYNs and
	// the mesh chain's test for LAN packets name it with the uplink.
	WAN string
	// Addr is the CE's IPv4 address (/32) or, when EA + r < 32, its
	// IPv4 prefix.
	Addr netip.Prefix
	// Ports is the port set, as disjoint inclusive ranges in any order.
	Ports []mapt.PortRange
	// MTU is the uplink MTU; forwarded TCP SYNs are clamped to MSS
	// MTU - 40.
	MTU int
	// MeshAlias, for an address shared with other CEs, is what packets
	// to our own address but another CE's port are DNATed to, so that
	// the stack routes them out of the uplink instead of delivering them
	// locally (RFC 7599 s8.1); the translator maps it back (see
	// dataplane.Config.MeshAlias). Invalid: none.
	MeshAlias netip.Addr
}

// MeshAlias is the CE's stand-in for the CEs that share its IPv4 address.
// It comes from the IPv4 Service Continuity Prefix (192.0.0.0/29, RFC
// 7335), which no MAP node uses, and never leaves the CE: the translator
// puts the real address in its place, and conntrack undoes the DNAT for
// the replies.
var MeshAlias = netip.AddrFrom4([4]byte{192, 0, 0, 7})

// FromBinding builds the configuration for a derived MAP binding.
func FromBinding(b mapt.Binding, uplink string, mtu int) Config {
	c := Config{Uplink: uplink, Addr: b.IPv4, Ports: b.PortSet.Ranges(), MTU: mtu}
	if b.PortSet.Shared() {
		c.MeshAlias = MeshAlias
	}
	return c
}

// shared says whether the port set is a part of the ports: then every
// connection needs NAT into it, and our own address with another CE's
// port is that CE's.
func (c Config) shared() bool {
	return !(len(c.Ports) == 1 && c.Ports[0].First == 0 && c.Ports[0].Last == 65535)
}

// MSS is the TCP MSS that forwarded SYNs are clamped to.
func (c Config) MSS() int { return c.MTU - 40 }

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	if c.Uplink == "" || len(c.Uplink) > 15 {
		return fmt.Errorf("nat: uplink %q: need a device name of 1-15 bytes", c.Uplink)
	}
	if len(c.WAN) > 15 || c.WAN == c.Uplink {
		return fmt.Errorf("nat: wan %q: need a device name of 1-15 bytes other than the uplink's", c.WAN)
	}
	if !c.Addr.IsValid() || !c.Addr.Addr().Is4() {
		return fmt.Errorf("nat: address %s: not an IPv4 address or prefix", c.Addr)
	}
	if c.Addr.Masked() != c.Addr {
		return fmt.Errorf("nat: address %s: host bits set in prefix", c.Addr)
	}
	if c.Addr.Addr().IsUnspecified() {
		return fmt.Errorf("nat: address %s: unspecified", c.Addr)
	}
	if a := c.MeshAlias; a.IsValid() && (!a.Is4() || c.Addr.Contains(a)) {
		return fmt.Errorf("nat: mesh alias %s: not an IPv4 address outside %s", a, c.Addr)
	}
	if c.MTU < 68+40 || c.MTU > 65535 {
		return fmt.Errorf("nat: mtu %d: outside 108-65535", c.MTU)
	}
	if len(c.Ports) == 0 {
		return fmt.Errorf("nat: port set: empty")
	}
	total := 0
	for _, r := range c.Ports {
		if r.First > r.Last {
			return fmt.Errorf("nat: port set: range %s: first port above last", r)
		}
		total += r.Size()
	}
	if total > 1<<16 {
		return fmt.Errorf("nat: port set: %d ports, more than 65536", total)
	}
	rs := sortedRanges(c.Ports)
	for i := 1; i < len(rs); i++ {
		if rs[i].First <= rs[i-1].Last {
			return fmt.Errorf("nat: port set: ranges %s and %s overlap", rs[i-1], rs[i])
		}
	}
	if total == 1 && rs[0].First == 0 {
		return fmt.Errorf("nat: port set: only port 0, which is never used on the wire")
	}
	if n := len(c.chunks()); n > MaxSlots {
		return fmt.Errorf("nat: port set: %d ranges need %d slots, more than %d (PSID offset too large)", len(rs), n, MaxSlots)
	}
	return nil
}

// Count is the number of ports in the set that the NAT hands out (port 0
// excluded).
func (c Config) Count() int {
	n := 0
	for _, ch := range c.chunks() {
		n += ch.Size()
	}
	return n
}

// Owns reports whether addr and port (or ICMP identifier) belong to c.
func (c Config) Owns(addr netip.Addr, port uint16) bool {
	if !c.Addr.Contains(addr) {
		return false
	}
	for _, r := range c.Ports {
		if r.First <= port && port <= r.Last {
			return true
		}
	}
	return false
}

func sortedRanges(in []mapt.PortRange) []mapt.PortRange {
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b mapt.PortRange) int { return int(a.First) - int(b.First) })
	return rs
}

// chunks splits the port set into the ranges that the round-robin map
// cycles through: every range of the set in ascending order, each cut into
// near-equal pieces of at most maxChunk ports. Port 0 is left out: it is
// not a valid TCP/UDP source port. Larger pieces come first so that, when
// the pieces cannot all be equal, a round-robin fill still ends with every
// port in use before the first failure.
func (c Config) chunks() []mapt.PortRange {
	var out []mapt.PortRange
	for _, r := range sortedRanges(c.Ports) {
		if r.First == 0 {
			if r.Last == 0 {
				continue
			}
			r.First = 1
		}
		size := r.Size()
		n := (size + maxChunk - 1) / maxChunk
		first := int(r.First)
		for i := range n {
			sz := size / n
			if i < size%n {
				sz++
			}
			out = append(out, mapt.PortRange{First: uint16(first), Last: uint16(first + sz - 1)})
			first += sz
		}
	}
	slices.SortStableFunc(out, func(a, b mapt.PortRange) int { return b.Size() - a.Size() })
	return out
}

// String is a compact, canonical description, also used as the
// fingerprint of the applied state.
func (c Config) String() string {
	rs := sortedRanges(c.Ports)
	ports := fmt.Sprint(len(rs), " ranges")
	if len(rs) <= 2 {
		ports = ""
		for i, r := range rs {
			if i > 0 {
				ports += ","
			}
			ports += r.String()
		}
	} else {
		ports += fmt.Sprintf(" %s..%s", rs[0], rs[len(rs)-1])
	}
	s := fmt.Sprintf("uplink %s addr %s ports %s mtu %d", c.Uplink, c.Addr, ports, c.MTU)
	if c.WAN != "" {
		s += " wan " + c.WAN
	}
	if c.MeshAlias.IsValid() {
		s += " mesh-alias " + c.MeshAlias.String()
	}
	return s
}
