package mapt

import "net/netip"

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
