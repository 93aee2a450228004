package mapt

import "net/netip"

// PortsJSON is a port set as inclusive [first, last] pairs, in order.
type PortsJSON [][2]uint16

// PortSetJSON lists the ranges of a port set (RFC 7597 s5.1: one range
// per value of the a bits).
func PortSetJSON(s PortSet) PortsJSON {
	out := make(PortsJSON, 0, s.NumRanges())
	for _, r := range s.Ranges() {
		out = append(out, [2]uint16{r.First, r.Last})
	}
	return out
}

// BindingJSON is the JSON form of a binding (RFC 7597 s5.2) with the DMR
// of its domain: what `ce-agent derive --json` prints and what the CE
// agent's status carries. It lives next to Binding so that every program
// showing a binding uses one schema; its field names are a stable
// interface for scripts.
type BindingJSON struct {
	Rule          string    `json:"rule"`
	EndUserPrefix string    `json:"end_user_prefix"`
	IPv4          string    `json:"ipv4"`
	PSID          uint16    `json:"psid"`
	PSIDLen       uint8     `json:"psid_len"`
	PSIDOffset    uint8     `json:"psid_offset"`
	Ports         PortsJSON `json:"ports"`
	PortCount     int       `json:"port_count"`
	MAPAddress    string    `json:"map_address"`
	DMR           string    `json:"dmr,omitempty"`
}

// JSON returns the binding's JSON form; dmr may be the zero prefix
// (derive without --dmr).
func (b Binding) JSON(dmr netip.Prefix) BindingJSON {
	j := BindingJSON{
		Rule:          b.Rule.String(),
		EndUserPrefix: b.EndUserPrefix.String(),
		IPv4:          b.IPv4.String(),
		PSID:          b.PSID(),
		PSIDLen:       b.PortSet.Len,
		PSIDOffset:    b.PortSet.Offset,
		Ports:         PortSetJSON(b.PortSet),
		PortCount:     b.PortSet.Count(),
		MAPAddress:    b.MAPAddress.String(),
	}
	if dmr.IsValid() {
		j.DMR = dmr.String()
	}
	return j
}
