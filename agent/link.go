package agent

import "github.com/mapt-go/mapt/dataplane"

// capMTU is the uplink MTU for a WAN MTU: dataplane.FragmentMTU of the WAN
// and lowest-ipv6-mtu (RFC 7915 s4.1; 0: the default 1280), so that no
// translated packet or fragment exceeds either, capped by a configured
// maximum (0: none), and at least IPv4's minimum of 68 (RFC 791).
func capMTU(wanMTU, lowestIPv6MTU, limit int) int {
	mtu := dataplane.FragmentMTU(wanMTU, lowestIPv6MTU)
	if limit > 0 && limit < mtu {
		mtu = limit
	}
	return max(mtu, 68)
}

// linkChanges lists the events that take the WAN from one state to the
// next, in the order the agent acts on them.
func linkChanges(cur, next wanState) []linkEvent {
	var evs []linkEvent
	switch {
	case cur.Present && !next.Present:
		return []linkEvent{{kind: linkRemoved, index: cur.Index}}
	case !next.Present:
		return nil
	case !cur.Present || cur.Index != next.Index:
		if cur.Present {
			evs = append(evs, linkEvent{kind: linkRemoved, index: cur.Index})
		}
		evs = append(evs, linkEvent{kind: linkAdded, index: next.Index, mtu: next.MTU})
		if next.Carrier {
			evs = append(evs, linkEvent{kind: linkCarrierUp, index: next.Index, mtu: next.MTU})
		}
		return evs
	}
	if cur.MTU != next.MTU {
		evs = append(evs, linkEvent{kind: linkMTU, index: next.Index, mtu: next.MTU})
	}
	switch {
	case cur.Carrier && !next.Carrier:
		evs = append(evs, linkEvent{kind: linkCarrierDown, index: next.Index, mtu: next.MTU})
	case !cur.Carrier && next.Carrier:
		evs = append(evs, linkEvent{kind: linkCarrierUp, index: next.Index, mtu: next.MTU})
	}
	return evs
}
