// Package kea generates the ISP's DHCPv6 server configuration for a MAP-T
// domain: a Kea 2.2 Dhcp6 configuration whose subnet carries the RFC 7598
// OPTION_S46_CONT_MAPT container (s46-rule with the F flag for FMRs,
// s46-portparams with an explicit PSID offset, s46-dmr) and a pd-pools
// entry per rule whose delegated length is the rule prefix plus its EA
// bits (RFC 7597 s5.2), so every delegated prefix derives a binding.
//
// Two Kea facts shape the output. The container and its sub-options must
// sit at one configuration level (here: the subnet), or Kea sends the
// container empty. And Kea sends one s46-rule per container, with one
// s46-portparams for all: a domain with several rules therefore goes out
// as the container's raw bytes (see containerOptions).
package kea

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/provision"
)

// Options tune the generated configuration.
type Options struct {
	// Interface Kea listens on; the domain's kea.interface, else the BR's
	// ipv6-interface, when empty.
	Interface string
	// LeaseFile is the memfile lease database path.
	LeaseFile string
	// ExcludePSIDZero leaves out of the pools the prefixes that would get
	// PSID 0 under a rule with PSID offset 0: that PSID owns the system
	// ports 0-1023.
	ExcludePSIDZero bool
}

// DefaultLeaseFile is Kea's usual lease file.
const DefaultLeaseFile = "/var/lib/kea/kea-leases6.csv"

// maxPools bounds the pool list ExcludePSIDZero may produce.
const maxPools = 8192

// Option is one Kea option-data entry.
type Option struct {
	Space     string `json:"space,omitempty"`
	Name      string `json:"name"`
	Code      int    `json:"code,omitempty"`
	CSVFormat *bool  `json:"csv-format,omitempty"`
	Data      string `json:"data,omitempty"`
}

// PDPool is one Kea pd-pools entry.
type PDPool struct {
	Prefix       string `json:"prefix"`
	PrefixLen    int    `json:"prefix-len"`
	DelegatedLen int    `json:"delegated-len"`
}

// Fragment is the subnet-level part: what an ISP merges into an existing
// subnet6 entry.
type Fragment struct {
	PDPools    []PDPool `json:"pd-pools"`
	OptionData []Option `json:"option-data"`
}

type subnet struct {
	ID        int    `json:"id"`
	Subnet    string `json:"subnet"`
	Interface string `json:"interface,omitempty"`
	Fragment
}

type dhcp6 struct {
	InterfacesConfig struct {
		Interfaces []string `json:"interfaces"`
	} `json:"interfaces-config"`
	ServerID struct {
		Type         string `json:"type"`
		EnterpriseID int    `json:"enterprise-id,omitempty"`
		Identifier   string `json:"identifier,omitempty"`
		Persist      bool   `json:"persist"`
	} `json:"server-id"`
	LeaseDatabase struct {
		Type    string `json:"type"`
		Persist bool   `json:"persist"`
		Name    string `json:"name"`
	} `json:"lease-database"`
	RenewTimer        int      `json:"renew-timer"`
	RebindTimer       int      `json:"rebind-timer"`
	PreferredLifetime int      `json:"preferred-lifetime"`
	ValidLifetime     int      `json:"valid-lifetime"`
	Subnet6           []subnet `json:"subnet6"`
}

// Config is a complete Kea Dhcp6 configuration.
type Config struct {
	Dhcp6 dhcp6 `json:"Dhcp6"`
}

// Generate builds the configuration for one domain of a file. Warnings
// are things an operator should know but that do not stop the output.
func Generate(f *domainfile.File, d domainfile.Domain, opts Options) (*Config, []string, error) {
	frag, warnings, err := GenerateFragment(d, opts)
	if err != nil {
		return nil, nil, err
	}
	if !d.Kea.Subnet.IsValid() {
		return nil, nil, fmt.Errorf("kea: domain %q: kea.subnet (the CE-facing link prefix) is required for a full configuration", d.Name)
	}
	ifname := opts.Interface
	if ifname == "" {
		ifname = d.Kea.Interface
	}
	if ifname == "" && f != nil {
		ifname = f.BR.IPv6Interface
	}
	if ifname == "" {
		return nil, nil, fmt.Errorf("kea: domain %q: no interface: set kea.interface or br.ipv6-interface", d.Name)
	}
	var c Config
	c.Dhcp6.InterfacesConfig.Interfaces = []string{ifname}
	// A fixed DUID-EN: stable across restarts and reloads without a
	// writable /var/lib/kea (an LLT DUID that is not persisted changes on
	// every SIGHUP, and then renewals go unanswered until clients rebind).
	c.Dhcp6.ServerID.Type, c.Dhcp6.ServerID.Persist = "EN", false
	c.Dhcp6.ServerID.EnterpriseID = 2495 // ISC
	c.Dhcp6.ServerID.Identifier = fmt.Sprintf("%x", sha256.Sum256([]byte("mapt:"+d.Name)))[:16]
	c.Dhcp6.LeaseDatabase.Type, c.Dhcp6.LeaseDatabase.Persist = "memfile", true
	c.Dhcp6.LeaseDatabase.Name = opts.LeaseFile
	if c.Dhcp6.LeaseDatabase.Name == "" {
		c.Dhcp6.LeaseDatabase.Name = DefaultLeaseFile
	}
	c.Dhcp6.RenewTimer, c.Dhcp6.RebindTimer = 1000, 2000
	c.Dhcp6.PreferredLifetime, c.Dhcp6.ValidLifetime = 3000, 4000
	c.Dhcp6.Subnet6 = []subnet{{ID: 1, Subnet: d.Kea.Subnet.String(), Interface: ifname, Fragment: *frag}}
	return &c, warnings, nil
}

// GenerateFragment builds the subnet-level pd-pools and option-data.
func GenerateFragment(d domainfile.Domain, opts Options) (*Fragment, []string, error) {
	if err := d.Domain.Validate(); err != nil {
		return nil, nil, fmt.Errorf("kea: domain %q: %w", d.Name, err)
	}
	if len(d.Rules) == 0 {
		return nil, nil, fmt.Errorf("kea: domain %q: no rules", d.Name)
	}
	frag := &Fragment{OptionData: containerOptions(d)}
	var warnings []string
rules:
	for _, r := range d.Rules {
		// Kea refuses overlapping pools. A rule nested in another one
		// needs none: what the outer pool delegates inside it derives
		// from the inner rule (longest match).
		for _, o := range d.Rules {
			if o.IPv6Prefix.Bits() < r.IPv6Prefix.Bits() && o.IPv6Prefix.Contains(r.IPv6Prefix.Addr()) {
				if o.EndUserPrefixLen() != r.EndUserPrefixLen() {
					warnings = append(warnings, fmt.Sprintf("domain %q: rule %s lies inside rule %s, whose pool delegates /%d prefixes there; the nested rule needs /%d",
						d.Name, r, o, o.EndUserPrefixLen(), r.EndUserPrefixLen()))
				}
				continue rules
			}
		}
		pools, warn, err := pdPools(r, opts.ExcludePSIDZero)
		if err != nil {
			return nil, nil, fmt.Errorf("kea: domain %q: %w", d.Name, err)
		}
		if warn != "" {
			warnings = append(warnings, fmt.Sprintf("domain %q: %s", d.Name, warn))
		}
		frag.PDPools = append(frag.PDPools, pools...)
	}
	return frag, warnings, nil
}

// containerOptions is the option-data for OPTION_S46_CONT_MAPT. One rule
// is written the readable way, as Kea's option definitions spell it. Kea
// keeps only one s46-rule per container and attaches one s46-portparams
// to all of them, so several rules go out as the container's raw bytes,
// built by our own RFC 7598 encoder.
func containerOptions(d domainfile.Domain) []Option {
	if len(d.Rules) > 1 {
		return []Option{{
			Space: "dhcp6", Name: "s46-cont-mapt", Code: int(provision.OptionS46ContMAPT), CSVFormat: new(bool),
			Data: fmt.Sprintf("%X", provision.NewMAPTContainer(d.Domain).ToBytes()),
		}}
	}
	r := d.Rules[0]
	flags := 0
	if r.FMR {
		flags = 1 // RFC 7598 s4.1: F is the low bit (Kea's manual says 128; it is wrong)
	}
	return []Option{
		{Name: "s46-cont-mapt"},
		{
			Space: "s46-cont-mapt-options", Name: "s46-rule",
			Data: fmt.Sprintf("%d, %d, %d, %s, %s", flags, r.EABits, r.IPv4Prefix.Bits(), r.IPv4Prefix.Addr(), r.IPv6Prefix),
		},
		{Space: "s46-rule-options", Name: "s46-portparams", Data: portParams(r)},
		{Space: "s46-cont-mapt-options", Name: "s46-dmr", Data: d.DMR.String()},
	}
}

// portParams is Kea's s46-portparams data: "offset, psid/psid-len", the
// PSID right-aligned. The offset is always sent: a CE that gets none
// assumes 6 (RFC 7598 s4.5).
func portParams(r mapt.Rule) string {
	if r.EABits == 0 && r.PSIDLen > 0 {
		return fmt.Sprintf("%d, %d/%d", r.PSIDOffset, r.PSID, r.PSIDLen)
	}
	return fmt.Sprintf("%d, 0/0", r.PSIDOffset)
}

// pdPools returns the pools of one rule: every prefix of length rule
// prefix + EA bits, or, with excludeZero under a = 0, every such prefix
// whose PSID is not 0, as a few pools per IPv4 suffix.
func pdPools(r mapt.Rule, excludeZero bool) ([]PDPool, string, error) {
	full := []PDPool{{Prefix: r.IPv6Prefix.Addr().String(), PrefixLen: r.IPv6Prefix.Bits(), DelegatedLen: r.EndUserPrefixLen()}}
	k := r.SharingBits()
	if r.PSIDOffset != 0 || k == 0 || r.EABits == 0 {
		return full, "", nil
	}
	p := r.EABits - k // IPv4 suffix bits
	ps := mapt.PortSet{PortParams: r.Params()}
	warn := fmt.Sprintf("rule %s: psid-offset 0 gives PSID 0 the ports %s, system ports included", r, ps.Range(0))
	if !excludeZero {
		return full, warn + "; --exclude-psid-zero leaves those prefixes out of the pool", nil
	}
	if n := (1 << p) * k; n > maxPools {
		return nil, "", fmt.Errorf("rule %s: excluding PSID 0 needs %d pools (more than %d)", r, n, maxPools)
	}
	var pools []PDPool
	for suffix := 0; suffix < 1<<p; suffix++ {
		// PSIDs 1..2^k-1 are the prefixes "1", "01", "001", ... of the k
		// PSID bits: k pools per suffix.
		for j := 0; j < k; j++ {
			ea := uint64(suffix)<<k | uint64(1)<<(k-1-j)
			pool, err := mapt.ExtendPrefix(r.IPv6Prefix, p+j+1, ea>>(k-1-j))
			if err != nil {
				return nil, "", err
			}
			pools = append(pools, PDPool{Prefix: pool.Addr().String(), PrefixLen: pool.Bits(), DelegatedLen: r.EndUserPrefixLen()})
		}
	}
	return pools, fmt.Sprintf("rule %s: PSID 0 left out of the pool: %d pools, %d of %d prefixes", r, len(pools), (1<<p)*((1<<k)-1), 1<<r.EABits), nil
}

// JSON renders v as indented JSON with a trailing newline.
func JSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only our own fixed types are marshalled
	}
	return append(b, '\n')
}
