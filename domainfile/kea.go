package domainfile

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mapt-go/mapt/mapt"
)

// Kea holds what `br kea-config` needs beyond the MAP rules: how Kea finds
// the CEs' subnet, what it says about itself, the lease times, the other
// options a CE needs (DNS, NTP), the per-CE data of 1:1 rules and the other
// softwire mechanisms offered beside MAP-T. Zero values mean "not given":
// the generator then leaves the choice to Kea's defaults.
type Kea struct {
	Subnet netip.Prefix // the CE-facing link's prefix
	// Interface is where Kea listens ("eth0", or "eth0/2001:db8::53" to
	// take the unicast that relays send); br.ipv6-interface when empty.
	// Without Relay and InterfaceID it also selects the subnet: clients
	// are on that link.
	Interface string
	// Relay lists the DHCPv6 relay agents' addresses for subnet selection
	// (Kea's subnet6 relay.ip-addresses), for relays whose link-address
	// is not inside Subnet.
	Relay []netip.Addr
	// InterfaceID selects the subnet by the Interface-ID option (18,
	// RFC 8415 s21.18) relays insert.
	InterfaceID string
	// ServerDUID is the server's DUID as sent (type code first): DUID-LLT,
	// DUID-EN or DUID-LL (RFC 8415 s11). Empty: a DUID-LL with a locally
	// administered address derived from the domain name.
	ServerDUID []byte
	// Lifetimes of the delegated prefixes and the T1/T2 timers, in
	// seconds (RFC 8415 s21.21, s21.22); 0 means Kea's default.
	ValidLifetime, PreferredLifetime, RenewTimer, RebindTimer uint32
	// DNSServers (OPTION_DNS_SERVERS, 23) and DomainSearch
	// (OPTION_DOMAIN_LIST, 24), RFC 3646.
	DNSServers   []netip.Addr
	DomainSearch []string
	// NTPServers (OPTION_NTP_SERVER, 56, RFC 5908): addresses or names.
	NTPServers []NTPServer
	// MAPEBR offers the domain's rules as MAP-E too (OPTION_S46_CONT_MAPE,
	// 94, with this BR address in OPTION_S46_BR, RFC 7598 s4.2).
	MAPEBR netip.Addr
	// DSLiteAFTR offers DS-Lite with this AFTR name (OPTION_AFTR_NAME, 64,
	// RFC 6334).
	DSLiteAFTR string
	// Priority is the order of OPTION_S46_PRIORITY (111, RFC 8026) when
	// several mechanisms are offered: "mapt", "mape", "dslite". Empty:
	// MAP-T first, then MAP-E, then DS-Lite.
	Priority []string
	// Reservations bind a prefix to one client.
	Reservations []Reservation

	lines map[string]int // key -> line, for errors found after parsing
}

// NTPServer is one NTP server: an address or a name.
type NTPServer struct {
	Addr netip.Addr
	FQDN string
}

func (s NTPServer) String() string {
	if s.Addr.IsValid() {
		return s.Addr.String()
	}
	return s.FQDN
}

// Reservation delegates Prefix to the client whose DUID is DUID. For a
// prefix of a shared rule it pins a CE to a place in the pool; for a 1:1
// rule (EA length 0) Prefix is the rule's prefix and the client gets that
// rule, with its own IPv4 address and PSID, in its own S46 container.
type Reservation struct {
	DUID   []byte
	Prefix netip.Prefix
	Line   int
}

// Mechanism names for Kea.Priority.
const (
	MechMAPT   = "mapt"
	MechMAPE   = "mape"
	MechDSLite = "dslite"
)

// maxLifetime is the largest lifetime a DHCPv6 option carries:
// 0xffffffff means infinity (RFC 8415 s7.7).
const maxLifetime = 0xffffffff

func (p parser) kea(n *node, prefix string, k *Kea) error {
	k.lines = map[string]int{"": n.Line}
	return p.mapping(n, prefix+".", func(key string, v *node, field string) error {
		k.lines[key] = v.Line
		switch key {
		case "subnet":
			return p.prefix(v, field, true, &k.Subnet)
		case "interface":
			if err := p.str(v, field, &k.Interface); err != nil {
				return err
			}
			if name, addr, ok := strings.Cut(k.Interface, "/"); ok {
				if a, err := netip.ParseAddr(addr); name == "" || err != nil || !a.Is6() || a.Is4In6() {
					return p.errf(v, field, "%q: want NAME or NAME/IPV6-ADDRESS", k.Interface)
				}
			}
			return nil
		case "relay":
			return listOf(p, v, field, p.addr6, &k.Relay)
		case "interface-id":
			if err := p.str(v, field, &k.InterfaceID); err != nil {
				return err
			}
			if k.InterfaceID == "" {
				return p.errf(v, field, "empty")
			}
			return nil
		case "server-duid":
			return p.serverDUID(v, field, &k.ServerDUID)
		case "valid-lifetime":
			return p.lifetime(v, field, &k.ValidLifetime)
		case "preferred-lifetime":
			return p.lifetime(v, field, &k.PreferredLifetime)
		case "renew-timer":
			return p.lifetime(v, field, &k.RenewTimer)
		case "rebind-timer":
			return p.lifetime(v, field, &k.RebindTimer)
		case "dns-servers":
			return listOf(p, v, field, p.addr6, &k.DNSServers)
		case "domain-search":
			return listOf(p, v, field, p.fqdn, &k.DomainSearch)
		case "ntp-servers":
			return p.list(v, field, oneALine, func(item *node, f string) error {
				s, err := p.scalar(item, f)
				if err != nil {
					return err
				}
				if a, err := netip.ParseAddr(s); err == nil {
					if !a.Is6() || a.Is4In6() {
						return p.errf(item, f, "%q is not an IPv6 address", s)
					}
					k.NTPServers = append(k.NTPServers, NTPServer{Addr: a})
					return nil
				}
				name, err := p.fqdn(item, f)
				k.NTPServers = append(k.NTPServers, NTPServer{FQDN: name})
				return err
			})
		case "mape-br":
			a, err := p.addr6(v, field)
			k.MAPEBR = a
			return err
		case "dslite-aftr":
			name, err := p.fqdn(v, field)
			k.DSLiteAFTR = name
			return err
		case "s46-priority":
			seen := map[string]bool{}
			return p.list(v, field, oneALine, func(item *node, f string) error {
				s, err := p.scalar(item, f)
				if err != nil {
					return err
				}
				switch s {
				case MechMAPT, MechMAPE, MechDSLite:
				default:
					return p.errf(item, f, "%q: want mapt, mape or dslite", s)
				}
				if seen[s] {
					return p.errf(item, f, "%s listed twice", s)
				}
				seen[s] = true
				k.lines[fmt.Sprintf("s46-priority[%d]", len(k.Priority))] = item.Line
				k.Priority = append(k.Priority, s)
				return nil
			})
		case "reservations":
			return p.list(v, field, oneALine, func(item *node, f string) error {
				r := Reservation{Line: item.Line}
				err := p.mapping(item, f+".", func(key string, v *node, field string) error {
					switch key {
					case "duid":
						return p.duid(v, field, &r.DUID)
					case "prefix":
						return p.prefix(v, field, true, &r.Prefix)
					}
					return errUnknown
				})
				if err != nil {
					return err
				}
				switch {
				case r.DUID == nil:
					return p.errf(item, f+".duid", "missing")
				case !r.Prefix.IsValid():
					return p.errf(item, f+".prefix", "missing")
				}
				k.Reservations = append(k.Reservations, r)
				return nil
			})
		}
		return errUnknown
	})
}

// checkKea validates what in the kea section depends on the rest of the
// domain, or on several keys at once.
func (p parser) checkKea(n *node, prefix string, d *Domain) error {
	k := &d.Kea
	field := prefix + ".kea"
	at := func(key string) *node {
		if l, ok := k.lines[key]; ok {
			return &node{Line: l}
		}
		return n
	}
	// RFC 8415 s21.21: a client discards an IA_PD whose T1 is above its
	// T2; s21.22: a prefix whose preferred lifetime exceeds its valid
	// lifetime. T2 beyond the preferred lifetime would have the client
	// rebind after the prefix is deprecated.
	order := []struct {
		name string
		v    uint32
	}{{"renew-timer", k.RenewTimer}, {"rebind-timer", k.RebindTimer}, {"preferred-lifetime", k.PreferredLifetime}, {"valid-lifetime", k.ValidLifetime}}
	for i := range order {
		for j := i + 1; j < len(order); j++ {
			if a, b := order[i], order[j]; a.v != 0 && b.v != 0 && a.v > b.v && b.v != maxLifetime {
				return p.errf(at(a.name), field+"."+a.name, "%d s is longer than %s %d s (RFC 8415 s21.21, s21.22: want renew-timer <= rebind-timer <= preferred-lifetime <= valid-lifetime)", a.v, b.name, b.v)
			}
		}
	}
	offered := map[string]bool{MechMAPT: true, MechMAPE: k.MAPEBR.IsValid(), MechDSLite: k.DSLiteAFTR != ""}
	for i, m := range k.Priority {
		if !offered[m] {
			key := map[string]string{MechMAPE: "mape-br", MechDSLite: "dslite-aftr"}[m]
			return p.errf(at(fmt.Sprintf("s46-priority[%d]", i)), fmt.Sprintf("%s.s46-priority[%d]", field, i), "%s is listed but not offered (set %s)", m, key)
		}
	}
	if len(k.Priority) > 0 {
		for _, m := range []string{MechMAPT, MechMAPE, MechDSLite} {
			if offered[m] && !contains(k.Priority, m) {
				return p.errf(at("s46-priority"), field+".s46-priority", "%s is offered but not listed", m)
			}
		}
	}
	duids := map[string]int{}
	prefixes := map[netip.Prefix]int{}
	for i, r := range k.Reservations {
		f := fmt.Sprintf("%s.reservations[%d]", field, i)
		here := &node{Line: r.Line}
		key := string(r.DUID)
		if j, dup := duids[key]; dup {
			return p.errf(here, f+".duid", "already reserved in reservations[%d]", j)
		}
		duids[key] = i
		if j, dup := prefixes[r.Prefix]; dup {
			return p.errf(here, f+".prefix", "%s already reserved in reservations[%d]", r.Prefix, j)
		}
		prefixes[r.Prefix] = i
		rule, err := mapt.SelectBMR(d.Rules, r.Prefix)
		if err != nil {
			return p.errf(here, f+".prefix", "%s is in none of the domain's rules", r.Prefix)
		}
		if r.Prefix.Bits() != rule.EndUserPrefixLen() {
			return p.errf(here, f+".prefix", "%s: rule %s delegates /%d prefixes (rule prefix + EA bits, RFC 7597 s5.2)", r.Prefix, rule, rule.EndUserPrefixLen())
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// list walks a sequence node, giving fn each item and its field name
// (field[i]); want is the error for a node that is not a list.
func (p parser) list(n *node, field, want string, fn func(item *node, field string) error) error {
	if n.Kind != sequenceNode {
		return p.errf(n, field, "%s", want)
	}
	for i, item := range n.Content {
		if err := fn(item, fmt.Sprintf("%s[%d]", field, i)); err != nil {
			return err
		}
	}
	return nil
}

// oneALine is list's error for the lists of scalars.
const oneALine = "want a list, one item a line"

// listOf reads a list whose items read reads, into dst.
func listOf[T any](p parser, n *node, field string, read func(*node, string) (T, error), dst *[]T) error {
	return p.list(n, field, oneALine, func(item *node, f string) error {
		v, err := read(item, f)
		if err == nil {
			*dst = append(*dst, v)
		}
		return err
	})
}

func (p parser) addr6(v *node, field string) (netip.Addr, error) {
	s, err := p.scalar(v, field)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, p.errf(v, field, "%q is not a unicast IPv6 address", s)
	}
	return a, nil
}

// fqdn accepts a domain name as RFC 1035 s2.3.1 spells one (letters,
// digits, hyphens; labels of 1-63 characters; 253 at most), with or
// without the final dot, and returns it without.
func (p parser) fqdn(v *node, field string) (string, error) {
	s, err := p.scalar(v, field)
	if err != nil {
		return "", err
	}
	name := strings.TrimSuffix(s, ".")
	bad := func(why string) error { return p.errf(v, field, "%q is not a domain name: %s", s, why) }
	if name == "" || len(name) > 253 {
		return "", bad("want 1-253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "", bad("labels are 1-63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", bad("a label starts or ends with '-'")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return "", bad(fmt.Sprintf("character %q", c))
			}
		}
	}
	return name, nil
}

// lifetime reads seconds: a number, or a number with a unit (s, m, h, d).
func (p parser) lifetime(v *node, field string, dst *uint32) error {
	s, err := p.scalar(v, field)
	if err != nil {
		return err
	}
	if s == "infinity" {
		*dst = maxLifetime
		return nil
	}
	num, unit := s, time.Second
	if i := strings.IndexFunc(s, func(c rune) bool { return c < '0' || c > '9' }); i > 0 {
		num = s[:i]
		switch s[i:] {
		case "s":
		case "m":
			unit = time.Minute
		case "h":
			unit = time.Hour
		case "d":
			unit = 24 * time.Hour
		default:
			num = ""
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	secs := n * uint64(unit/time.Second)
	if err != nil || n == 0 || secs >= maxLifetime || secs/uint64(unit/time.Second) != n {
		return p.errf(v, field, "%q: want seconds (1-%d), a number with s, m, h or d, or infinity", s, uint32(maxLifetime-1))
	}
	*dst = uint32(secs)
	return nil
}

// hexBytes reads colon-separated or plain hex.
func hexBytes(s string) ([]byte, bool) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	return b, err == nil
}

// duid reads a client DUID: RFC 8415 s11.1 bounds it to 2 bytes of type
// and at most 128 of identifier.
func (p parser) duid(v *node, field string, dst *[]byte) error {
	s, err := p.scalar(v, field)
	if err != nil {
		return err
	}
	b, ok := hexBytes(s)
	if !ok || len(b) < 3 || len(b) > 130 {
		return p.errf(v, field, "%q is not a DUID: want 3-130 bytes of hex, e.g. 00:03:00:01:02:00:00:00:01:1b (DUID-LL)", s)
	}
	*dst = b
	return nil
}

// serverDUID reads the server's DUID: Kea 2.2 configures DUID-LLT (1),
// DUID-EN (2) and DUID-LL (3) only.
func (p parser) serverDUID(v *node, field string, dst *[]byte) error {
	if err := p.duid(v, field, dst); err != nil {
		return err
	}
	b := *dst
	typ := int(b[0])<<8 | int(b[1])
	min := map[int]int{1: 2 + 2 + 4 + 1, 2: 2 + 4 + 1, 3: 2 + 2 + 1}[typ]
	if min == 0 {
		return p.errf(v, field, "DUID type %d: Kea configures DUID-LLT (1), DUID-EN (2) or DUID-LL (3) (RFC 8415 s11)", typ)
	}
	if len(b) < min {
		return p.errf(v, field, "DUID type %d needs at least %d bytes, got %d", typ, min, len(b))
	}
	return nil
}
