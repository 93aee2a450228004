package mapt

import (
	"fmt"
	"net/netip"
)

// getBits returns n (<= 64) bits of a starting at bit offset start
// (0 = most significant bit), right-aligned.
func getBits(a [16]byte, start, n int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		bit := start + i
		v = v<<1 | uint64(a[bit/8]>>(7-bit%8)&1)
	}
	return v
}

// setBits stores the n low bits of v into a at bit offset start.
func setBits(a *[16]byte, start, n int, v uint64) {
	for i := 0; i < n; i++ {
		bit := start + i
		b := byte(v>>(n-1-i)) & 1
		mask := byte(1) << (7 - bit%8)
		if b == 1 {
			a[bit/8] |= mask
		} else {
			a[bit/8] &^= mask
		}
	}
}

func v4u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32v4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ExtendPrefix appends the n (<= 64) low bits of v to prefix p: the
// prefixes below a rule's IPv6 prefix that share leading EA bits.
func ExtendPrefix(p netip.Prefix, n int, v uint64) (netip.Prefix, error) {
	if n < 0 || n > 64 || p.Bits()+n > p.Addr().BitLen() {
		return netip.Prefix{}, fmt.Errorf("mapt: extend %s by %d bits: too long", p, n)
	}
	a := p.Masked().Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	setBits(&a, off+p.Bits(), n, v)
	addr := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, p.Bits()+n), nil
}
