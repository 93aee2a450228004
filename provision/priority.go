package provision

import (
	"fmt"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/s46"
)

// MechanismMAPT is the only softwire mechanism this CE implements.
const MechanismMAPT = "map-t"

// Selection is what the client made of a message's softwire (S46)
// options.
type Selection struct {
	// Domains are the MAP-T domains in force: the valid MAP-T containers,
	// when MAP-T was chosen.
	Domains []mapt.Domain
	// Mechanism is MechanismMAPT when MAP-T was chosen, "" otherwise.
	Mechanism string
	// Priority is the server's OPTION_S46_PRIORITY, most preferred first,
	// as container names (e.g. "MAP-E (94)"); empty when absent.
	Priority []string
	// Why is one line saying how the mechanism was chosen, for the log.
	Why string
	// Ignored has one line per container left out, and why.
	Ignored []string
}

// mechanismName names an S46 container code for people.
func mechanismName(c dhcpv6.OptionCode) string {
	switch c {
	case s46.OptionContMAPE:
		return "MAP-E (94)"
	case s46.OptionContMAPT:
		return "MAP-T (95)"
	case s46.OptionContLW:
		return "lw4o6 (96)"
	}
	return fmt.Sprintf("option %d", uint16(c))
}

// SelectS46 applies RFC 8026 to a message's top-level options. A server
// may offer several softwire mechanisms at once, one container each (RFC
// 7598 s5), and say with OPTION_S46_PRIORITY which it prefers. The client
// goes through the server's list in order and takes the first mechanism
// it implements and has a usable container for (RFC 8026 s3); this CE
// implements MAP-T only, so:
//
//   - with a priority option that lists MAP-T, MAP-T is chosen when a valid
//     MAP-T container came; mechanisms listed before it are skipped as not
//     implemented;
//   - with a priority option that does not list MAP-T, the server does not
//     want MAP-T used: its MAP-T containers are ignored;
//   - without one, MAP-T is used when offered (RFC 8026 s3 leaves the
//     choice to the client).
//
// MAP-E and lw4o6 containers are always ignored. Every container left out
// gets one line in Ignored; a malformed priority option is ignored too
// (and said so), as if absent.
func SelectS46(opts dhcpv6.Options) Selection {
	var sel Selection
	var prio s46PriorityOption
	havePrio := false
	for _, o := range opts {
		if o.Code() != OptionS46Prio {
			continue
		}
		p, err := parseS46Priority(o.ToBytes())
		if err != nil {
			sel.Ignored = append(sel.Ignored, fmt.Sprintf("S46 priority option ignored: %v", err))
			continue
		}
		if !havePrio {
			prio, havePrio = p, true
		}
	}
	for _, c := range prio {
		sel.Priority = append(sel.Priority, mechanismName(c))
	}

	maptListed := !havePrio
	var before []string // listed ahead of MAP-T
	if havePrio {
		for _, c := range prio {
			if c == s46.OptionContMAPT {
				maptListed = true
				break
			}
			before = append(before, mechanismName(c))
		}
	}

	n := map[dhcpv6.OptionCode]int{}
	for _, o := range opts {
		code := o.Code()
		switch code {
		case s46.OptionContMAPE, s46.OptionContLW:
			n[code]++
			sel.Ignored = append(sel.Ignored, fmt.Sprintf("%s container %d ignored: mechanism not implemented", mechanismName(code), n[code]))
		case s46.OptionContMAPT:
			n[code]++
			if !maptListed {
				sel.Ignored = append(sel.Ignored, fmt.Sprintf("MAP-T container %d ignored: the server's S46 priority [%s] does not list MAP-T (RFC 8026 s3)",
					n[code], strings.Join(sel.Priority, ", ")))
				continue
			}
			d, err := s46.ParseMAPT(o.ToBytes())
			if err != nil {
				sel.Ignored = append(sel.Ignored, fmt.Sprintf("MAP-T container %d ignored: %v", n[code], err))
				continue
			}
			sel.Domains = append(sel.Domains, d)
		}
	}

	switch {
	case len(sel.Domains) > 0 && havePrio && len(before) > 0:
		sel.Mechanism = MechanismMAPT
		sel.Why = fmt.Sprintf("MAP-T chosen: the server's S46 priority is [%s]; %s not implemented", strings.Join(sel.Priority, ", "), strings.Join(before, ", "))
	case len(sel.Domains) > 0 && havePrio:
		sel.Mechanism = MechanismMAPT
		sel.Why = fmt.Sprintf("MAP-T chosen: first in the server's S46 priority [%s]", strings.Join(sel.Priority, ", "))
	case len(sel.Domains) > 0:
		sel.Mechanism = MechanismMAPT
		sel.Why = "MAP-T chosen: offered, no S46 priority option"
	case havePrio && !maptListed:
		sel.Why = fmt.Sprintf("no softwire: the server's S46 priority [%s] lists no mechanism this CE implements", strings.Join(sel.Priority, ", "))
	case n[s46.OptionContMAPT] > 0:
		sel.Why = "no softwire: no valid MAP-T container"
	case len(n) > 0:
		sel.Why = "no softwire: only mechanisms this CE does not implement were offered"
	}
	return sel
}
