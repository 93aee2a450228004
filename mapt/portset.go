package mapt

import "fmt"

// PortParams are the port-set parameters of a rule: PSID offset a and PSID
// length k (RFC 7597 s5.1).
type PortParams struct {
	Offset uint8 // a
	Len    uint8 // k; 0 means no address sharing
}

// m is the number of contiguous ports in each range.
func (p PortParams) m() uint { return uint(16 - int(p.Offset) - int(p.Len)) }

// PSIDOf returns the PSID a port belongs to (0 when k = 0).
func (p PortParams) PSIDOf(port uint16) uint16 {
	if p.Len == 0 {
		return 0
	}
	return port >> p.m() & (1<<p.Len - 1)
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	First, Last uint16
}

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Size is the number of ports in the range.
func (r PortRange) Size() int { return int(r.Last) - int(r.First) + 1 }

// PortSet is the set of ports one PSID owns under PortParams. The zero
// value (k = 0) is the whole port space.
type PortSet struct {
	PortParams
	PSID uint16 // right-aligned
}

// Shared reports whether the set is a strict subset of the port space.
func (s PortSet) Shared() bool { return s.Len > 0 }

// firstA is the smallest A (the a high bits of a port): ports with A = 0
// are excluded when a > 0 (RFC 7597 s5.1).
func (s PortSet) firstA() int {
	if s.Offset > 0 {
		return 1
	}
	return 0
}

// Contains reports whether port belongs to the set.
func (s PortSet) Contains(port uint16) bool {
	if s.Len == 0 {
		return true
	}
	if s.Offset > 0 && port>>(16-s.Offset) == 0 {
		return false
	}
	return s.PSIDOf(port) == s.PSID
}

// Count is the number of ports in the set.
func (s PortSet) Count() int {
	if s.Len == 0 {
		return 1 << 16
	}
	return ((1 << s.Offset) - s.firstA()) << s.m()
}

// RangeSize is the number of ports in each range: 2^m.
func (s PortSet) RangeSize() int {
	if s.Len == 0 {
		return 1 << 16
	}
	return 1 << s.m()
}

// NumRanges is the number of ranges: 2^a - 1 when a > 0, else 1.
func (s PortSet) NumRanges() int {
	if s.Len == 0 {
		return 1
	}
	return (1 << s.Offset) - s.firstA()
}

// Range returns the i-th range, 0 <= i < NumRanges(), in ascending order.
func (s PortSet) Range(i int) PortRange {
	if s.Len == 0 {
		return PortRange{0, 65535}
	}
	A := i + s.firstA()
	first := uint16(A<<(16-int(s.Offset))) | s.PSID<<s.m()
	return PortRange{first, first + uint16(s.RangeSize()-1)}
}

// Ranges returns every range of the set in ascending order.
func (s PortSet) Ranges() []PortRange {
	out := make([]PortRange, s.NumRanges())
	for i := range out {
		out[i] = s.Range(i)
	}
	return out
}

// Port returns the i-th port of the set in ascending order,
// 0 <= i < Count(). Spreading flows over the set uses it.
func (s PortSet) Port(i int) (uint16, bool) {
	if i < 0 || i >= s.Count() {
		return 0, false
	}
	r := s.Range(i / s.RangeSize())
	return r.First + uint16(i%s.RangeSize()), true
}

// Validate checks a hand-built port set.
func (s PortSet) Validate() error {
	if int(s.Offset)+int(s.Len) > 16 || s.Offset > 15 {
		return fmt.Errorf("mapt: port set: psid-offset %d + psid-len %d > 16", s.Offset, s.Len)
	}
	if s.Len < 16 && s.PSID>>s.Len != 0 {
		return fmt.Errorf("mapt: port set: psid %d does not fit in %d bits", s.PSID, s.Len)
	}
	return nil
}

func (s PortSet) String() string {
	if s.Len == 0 {
		return "0-65535"
	}
	if s.NumRanges() > 3 {
		return fmt.Sprintf("%s,%s,...,%s (%d ranges)", s.Range(0), s.Range(1), s.Range(s.NumRanges()-1), s.NumRanges())
	}
	out := ""
	for i, r := range s.Ranges() {
		if i > 0 {
			out += ","
		}
		out += r.String()
	}
	return out
}
