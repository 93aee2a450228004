package agent

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/mapt-go/mapt/mapt"
)

// Desired is the MAP-T state the CE should have: its binding and the
// domain's DMR and FMRs.
type Desired struct {
	Binding mapt.Binding
	DMR     netip.Prefix
	FMRs    []mapt.Rule
	Domain  string // the domain's name, when it has one
}

// Equal reports whether applying d after o would change nothing.
func (d *Desired) Equal(o *Desired) bool {
	if d == nil || o == nil {
		return d == o
	}
	return reflect.DeepEqual(d, o)
}

// Derive picks the BMR for prefix among all rules of all domains, longest
// match first (RFC 7598 s4.1: rules that match nothing are skipped), and
// derives the binding. The BMR's domain gives the DMR and the FMRs.
func Derive(domains []mapt.Domain, prefix netip.Prefix) (*Desired, error) {
	var best *mapt.Domain
	var bmr mapt.Rule
	for i := range domains {
		r, err := mapt.SelectBMR(domains[i].Rules, prefix)
		if err != nil {
			continue
		}
		if best == nil || r.IPv6Prefix.Bits() > bmr.IPv6Prefix.Bits() {
			best, bmr = &domains[i], r
		}
	}
	if best == nil {
		return nil, fmt.Errorf("agent: delegated prefix %s matches no MAP rule of %d domains", prefix, len(domains))
	}
	if err := mapt.ValidateDMR(best.DMR); err != nil {
		return nil, fmt.Errorf("agent: domain %q: %w", best.Name, err)
	}
	b, err := bmr.Derive(prefix)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	d := &Desired{Binding: b, DMR: best.DMR, Domain: best.Name}
	for _, r := range best.Rules {
		if r.FMR {
			d.FMRs = append(d.FMRs, r)
		}
	}
	return d, nil
}
