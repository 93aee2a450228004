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
//
// 1:1 rules (EA length 0) are one CE's each: their own IPv4 address and
// PSID. They stay out of the subnet's container, and each goes to its CE in
// a container of its own (the rule, the domain's FMRs and the DMR): in the
// host reservation of the client the domain file binds it to, or, without
// one, in a pd-pool holding only the rule's prefix, so whoever is delegated
// that prefix gets that rule.
//
// What the domain file leaves out (lifetimes, DNS, NTP, the server DUID
// but for its default) is left out of the output, so Kea's own defaults
// apply; nothing of the lab's is built in.
package kea

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/s46"
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

// DHCPv6 option codes the generator writes as raw bytes (Kea 2.2 has no
// definition for them) or names in S46 Priority.
const (
	optionAFTRName   = 64  // OPTION_AFTR_NAME, RFC 6334 (DS-Lite)
	optionNTPServer  = 56  // OPTION_NTP_SERVER, RFC 5908
	optionS46Prio    = 111 // OPTION_S46_PRIORITY, RFC 8026
	ntpSubServerAddr = 1   // NTP_SUBOPTION_SRV_ADDR, RFC 5908 s4.1
	ntpSubServerFQDN = 3   // NTP_SUBOPTION_SRV_FQDN, RFC 5908 s4.3
)

// Option is one Kea option-data entry.
type Option struct {
	Space     string `json:"space,omitempty"`
	Name      string `json:"name"`
	Code      int    `json:"code,omitempty"`
	CSVFormat *bool  `json:"csv-format,omitempty"`
	Data      string `json:"data,omitempty"`
}

// PDPool is one Kea pd-pools entry. OptionData goes to whoever is
// delegated a prefix of the pool (a 1:1 rule's pool holds one prefix).
type PDPool struct {
	Prefix       string   `json:"prefix"`
	PrefixLen    int      `json:"prefix-len"`
	DelegatedLen int      `json:"delegated-len"`
	OptionData   []Option `json:"option-data,omitempty"`
}

// Reservation is one Kea host reservation.
type Reservation struct {
	DUID       string   `json:"duid"`
	Prefixes   []string `json:"prefixes"`
	OptionData []Option `json:"option-data,omitempty"`
}

// Lifetimes are the subnet's timers in seconds; zero ones are left to
// Kea (which computes T1 and T2 from the preferred lifetime, 0.5 and 0.8,
// as RFC 8415 s21.4 recommends).
type Lifetimes struct {
	RenewTimer        uint32 `json:"renew-timer,omitempty"`
	RebindTimer       uint32 `json:"rebind-timer,omitempty"`
	PreferredLifetime uint32 `json:"preferred-lifetime,omitempty"`
	ValidLifetime     uint32 `json:"valid-lifetime,omitempty"`
}

// Fragment is the subnet-level part: what an ISP merges into an existing
// subnet6 entry.
type Fragment struct {
	Lifetimes
	PDPools      []PDPool      `json:"pd-pools"`
	OptionData   []Option      `json:"option-data"`
	Reservations []Reservation `json:"reservations,omitempty"`
}

// Relay is Kea's subnet6 relay entry.
type Relay struct {
	IPAddresses []string `json:"ip-addresses"`
}

type subnet struct {
	ID          int    `json:"id"`
	Subnet      string `json:"subnet"`
	Interface   string `json:"interface,omitempty"`
	InterfaceID string `json:"interface-id,omitempty"`
	Relay       *Relay `json:"relay,omitempty"`
	Fragment
}

// ServerID is Kea's server-id: how it builds the server's DUID.
type ServerID struct {
	Type         string `json:"type"`
	HType        int    `json:"htype,omitempty"`
	Time         uint32 `json:"time,omitempty"`
	EnterpriseID uint32 `json:"enterprise-id,omitempty"`
	Identifier   string `json:"identifier,omitempty"`
	Persist      bool   `json:"persist"`
}

type dhcp6 struct {
	InterfacesConfig struct {
		Interfaces []string `json:"interfaces"`
	} `json:"interfaces-config"`
	ServerID      ServerID `json:"server-id"`
	LeaseDatabase struct {
		Type    string `json:"type"`
		Persist bool   `json:"persist"`
		Name    string `json:"name"`
	} `json:"lease-database"`
	Subnet6 []subnet `json:"subnet6"`
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
	listen := opts.Interface
	if listen == "" {
		listen = d.Kea.Interface
	}
	if listen == "" && f != nil {
		listen = f.BR.IPv6Interface
	}
	if listen == "" {
		return nil, nil, fmt.Errorf("kea: domain %q: no interface: set kea.interface or br.ipv6-interface", d.Name)
	}
	var c Config
	c.Dhcp6.InterfacesConfig.Interfaces = []string{listen}
	c.Dhcp6.ServerID, err = serverID(d)
	if err != nil {
		return nil, nil, err
	}
	c.Dhcp6.LeaseDatabase.Type, c.Dhcp6.LeaseDatabase.Persist = "memfile", true
	c.Dhcp6.LeaseDatabase.Name = opts.LeaseFile
	if c.Dhcp6.LeaseDatabase.Name == "" {
		c.Dhcp6.LeaseDatabase.Name = DefaultLeaseFile
	}
	s := subnet{ID: 1, Subnet: d.Kea.Subnet.String(), Fragment: *frag}
	// Kea picks a subnet by the interface a message came in on only for
	// clients on that link; relayed messages are matched by their
	// link-address, the relay's address or its Interface-ID (RFC 8415
	// s21.18). Kea refuses interface and interface-id together.
	if len(d.Kea.Relay) > 0 {
		s.Relay = &Relay{}
		for _, a := range d.Kea.Relay {
			s.Relay.IPAddresses = append(s.Relay.IPAddresses, a.String())
		}
	}
	s.InterfaceID = d.Kea.InterfaceID
	if s.Relay == nil && s.InterfaceID == "" {
		s.Interface, _, _ = strings.Cut(listen, "/")
	}
	c.Dhcp6.Subnet6 = []subnet{s}
	return &c, warnings, nil
}

// serverID is the server's DUID. A stable one, not persisted: without a
// writable /var/lib/kea an LLT DUID changes on every restart, and then
// renewals go unanswered until clients rebind. The default is a DUID-LL
// (RFC 8415 s11.4) whose link-layer address is made from the domain name,
// with the IEEE locally administered bit set: no one's assigned address,
// and no one's enterprise number either (DUID-EN needs the operator's own,
// s11.3: set kea.server-duid for that).
func serverID(d domainfile.Domain) (ServerID, error) {
	b := d.Kea.ServerDUID
	if len(b) == 0 {
		sum := sha256.Sum256([]byte("mapt:" + d.Name))
		mac := sum[:6]
		mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
		return ServerID{Type: "LL", HType: 1, Identifier: hex.EncodeToString(mac)}, nil
	}
	switch binary.BigEndian.Uint16(b) {
	case 1:
		return ServerID{Type: "LLT", HType: int(binary.BigEndian.Uint16(b[2:])), Time: binary.BigEndian.Uint32(b[4:]), Identifier: hex.EncodeToString(b[8:])}, nil
	case 2:
		return ServerID{Type: "EN", EnterpriseID: binary.BigEndian.Uint32(b[2:]), Identifier: hex.EncodeToString(b[6:])}, nil
	case 3:
		return ServerID{Type: "LL", HType: int(binary.BigEndian.Uint16(b[2:])), Identifier: hex.EncodeToString(b[4:])}, nil
	}
	return ServerID{}, fmt.Errorf("kea: domain %q: kea.server-duid: type %d is not one Kea configures", d.Name, binary.BigEndian.Uint16(b))
}

// GenerateFragment builds the subnet-level pd-pools, option-data,
// reservations and lifetimes.
func GenerateFragment(d domainfile.Domain, opts Options) (*Fragment, []string, error) {
	if err := d.Domain.Validate(); err != nil {
		return nil, nil, fmt.Errorf("kea: domain %q: %w", d.Name, err)
	}
	if len(d.Rules) == 0 {
		return nil, nil, fmt.Errorf("kea: domain %q: no rules", d.Name)
	}
	k := d.Kea
	frag := &Fragment{Lifetimes: Lifetimes{k.RenewTimer, k.RebindTimer, k.PreferredLifetime, k.ValidLifetime}}
	var shared []mapt.Rule
	for _, r := range d.Rules {
		if !oneToOne(r) || r.FMR {
			shared = append(shared, r)
		}
	}
	if len(shared) > 0 {
		frag.OptionData = containerOptions(mapt.Domain{Name: d.Name, DMR: d.DMR, Rules: shared})
		if k.MAPEBR.IsValid() {
			frag.OptionData = append(frag.OptionData, mapeContainer(shared, k.MAPEBR))
		}
	}
	frag.OptionData = append(frag.OptionData, commonOptions(k)...)
	reserved := map[netip.Prefix][]byte{}
	for _, res := range k.Reservations {
		reserved[res.Prefix] = res.DUID
	}
	var warnings []string
rules:
	for _, r := range d.Rules {
		if oneToOne(r) {
			data := ceOptions(d, r)
			if duid, ok := reserved[r.IPv6Prefix]; ok {
				frag.Reservations = append(frag.Reservations, Reservation{DUID: colonHex(duid), Prefixes: []string{r.IPv6Prefix.String()}, OptionData: data})
				continue
			}
			frag.PDPools = append(frag.PDPools, PDPool{Prefix: r.IPv6Prefix.Addr().String(), PrefixLen: r.IPv6Prefix.Bits(), DelegatedLen: r.IPv6Prefix.Bits(), OptionData: data})
			warnings = append(warnings, fmt.Sprintf("domain %q: 1:1 rule %s has no reservation: the first client to ask is delegated %s and gets the rule (kea.reservations binds it to a DUID)", d.Name, r, r.IPv6Prefix))
			continue
		}
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
	// Reservations of prefixes in shared rules pin a CE to its place in
	// the pool; the subnet's container serves it.
	for _, res := range k.Reservations {
		if r, err := mapt.SelectBMR(d.Rules, res.Prefix); err == nil && !oneToOne(r) {
			frag.Reservations = append(frag.Reservations, Reservation{DUID: colonHex(res.DUID), Prefixes: []string{res.Prefix.String()}})
		}
	}
	if frag.OptionData == nil {
		frag.OptionData = []Option{}
	}
	if frag.PDPools == nil {
		frag.PDPools = []PDPool{}
	}
	return frag, warnings, nil
}

// oneToOne reports a 1:1 rule: no EA bits, so one end-user prefix, one
// IPv4 address and one PSID (RFC 7597 s5.2, "EA-bit length of 0").
func oneToOne(r mapt.Rule) bool { return r.EABits == 0 }

// ceOptions are the options of the CE that holds a 1:1 rule: a MAP-T
// container with its rule (its BMR), the domain's other FMRs (so it meshes
// with them) and the DMR, and the MAP-E counterpart when offered. They go
// as raw bytes: Kea builds a container from sub-options only at one level,
// and keeps one rule per container.
func ceOptions(d domainfile.Domain, own mapt.Rule) []Option {
	rules := []mapt.Rule{own}
	for _, r := range d.Rules {
		if r.FMR && r != own {
			rules = append(rules, r)
		}
	}
	out := []Option{rawContainer(s46.NewMAPTContainer(mapt.Domain{Name: d.Name, DMR: d.DMR, Rules: rules}))}
	if d.Kea.MAPEBR.IsValid() {
		out = append(out, mapeContainer(rules, d.Kea.MAPEBR))
	}
	return out
}

func rawContainer(c *s46.Container) Option {
	name := map[int]string{int(s46.OptionContMAPE): "s46-cont-mape", int(s46.OptionContMAPT): "s46-cont-mapt"}[int(c.Kind)]
	return Option{Space: "dhcp6", Name: name, Code: int(c.Kind), CSVFormat: new(bool), Data: fmt.Sprintf("%X", c.ToBytes())}
}

// mapeContainer is OPTION_S46_CONT_MAPE (RFC 7598 s5.1) for the same
// rules: MAP-E shares MAP-T's rules and names a BR address instead of a
// DMR (s4.2).
func mapeContainer(rules []mapt.Rule, br netip.Addr) Option {
	c := &s46.Container{Kind: s46.OptionContMAPE}
	for _, r := range rules {
		c.Options = append(c.Options, s46.NewRuleOption(r))
	}
	c.Options = append(c.Options, &s46.BROption{Addr: br})
	return rawContainer(c)
}

// commonOptions are the subnet's other options: DNS (RFC 3646), NTP (RFC
// 5908), DS-Lite's AFTR name (RFC 6334) and, when more than one softwire
// mechanism is offered, their order of preference (RFC 8026).
func commonOptions(k domainfile.Kea) []Option {
	var out []Option
	if len(k.DNSServers) > 0 {
		s := make([]string, len(k.DNSServers))
		for i, a := range k.DNSServers {
			s[i] = a.String()
		}
		out = append(out, Option{Name: "dns-servers", Data: strings.Join(s, ", ")})
	}
	if len(k.DomainSearch) > 0 {
		out = append(out, Option{Name: "domain-search", Data: strings.Join(k.DomainSearch, ", ")})
	}
	if len(k.NTPServers) > 0 {
		out = append(out, Option{Space: "dhcp6", Name: "ntp-server", Code: optionNTPServer, CSVFormat: new(bool), Data: fmt.Sprintf("%X", ntpOption(k.NTPServers))})
	}
	if k.DSLiteAFTR != "" {
		out = append(out, Option{Name: "aftr-name", Data: k.DSLiteAFTR})
	}
	if prio := Priority(k); len(prio) > 1 {
		var b []byte
		for _, code := range prio {
			b = binary.BigEndian.AppendUint16(b, code)
		}
		out = append(out, Option{Space: "dhcp6", Name: "s46-priority", Code: optionS46Prio, CSVFormat: new(bool), Data: fmt.Sprintf("%X", b)})
	}
	return out
}

// Priority is the S46 Priority list (RFC 8026 s3: the option codes of the
// offered mechanisms, most preferred first): kea.s46-priority, or MAP-T,
// MAP-E, DS-Lite in that order.
func Priority(k domainfile.Kea) []uint16 {
	codes := map[string]uint16{
		domainfile.MechMAPT:   uint16(s46.OptionContMAPT),
		domainfile.MechMAPE:   uint16(s46.OptionContMAPE),
		domainfile.MechDSLite: optionAFTRName,
	}
	order := k.Priority
	if len(order) == 0 {
		order = []string{domainfile.MechMAPT}
		if k.MAPEBR.IsValid() {
			order = append(order, domainfile.MechMAPE)
		}
		if k.DSLiteAFTR != "" {
			order = append(order, domainfile.MechDSLite)
		}
	}
	out := make([]uint16, len(order))
	for i, m := range order {
		out[i] = codes[m]
	}
	return out
}

// ntpOption is the payload of OPTION_NTP_SERVER: one sub-option per server,
// an address (NTP_SUBOPTION_SRV_ADDR) or a name in DNS wire format,
// uncompressed (NTP_SUBOPTION_SRV_FQDN, RFC 5908 s4.3).
func ntpOption(servers []domainfile.NTPServer) []byte {
	var b []byte
	for _, s := range servers {
		if s.Addr.IsValid() {
			a := s.Addr.As16()
			b = binary.BigEndian.AppendUint16(b, ntpSubServerAddr)
			b = binary.BigEndian.AppendUint16(b, 16)
			b = append(b, a[:]...)
			continue
		}
		var name []byte
		for _, label := range strings.Split(s.FQDN, ".") {
			name = append(append(name, byte(len(label))), label...)
		}
		name = append(name, 0)
		b = binary.BigEndian.AppendUint16(b, ntpSubServerFQDN)
		b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
	}
	return b
}

func colonHex(b []byte) string {
	s := make([]string, len(b))
	for i, c := range b {
		s[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(s, ":")
}

// containerOptions is the option-data for OPTION_S46_CONT_MAPT. One rule
// is written the readable way, as Kea's option definitions spell it. Kea
// keeps only one s46-rule per container and attaches one s46-portparams
// to all of them, so several rules go out as the container's raw bytes,
// built by our own RFC 7598 encoder.
func containerOptions(d mapt.Domain) []Option {
	if len(d.Rules) > 1 {
		return []Option{rawContainer(s46.NewMAPTContainer(d))}
	}
	r := d.Rules[0]
	flags := 0
	if r.FMR {
		flags = s46.FlagFMR // RFC 7598 s4.1: F is the low bit (Kea's manual says 128; it is wrong)
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
