package domainfile

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mapt-go/mapt/mapt"
)

// DefaultMetrics is where the BR serves metrics when the file names no
// address: loopback only, since metrics reveal subscriber traffic.
const DefaultMetrics = "127.0.0.1:9724"

// File is a parsed domain file.
type File struct {
	Path    string
	BR      BR
	Domains []Domain
}

// BR is the BR's own section.
type BR struct {
	IPv6Interface string
	IPv4Interface string
	Metrics       string
	// SourceCheck accepts CE packets only from the neighbour the BR routes
	// their source to (source-check: neighbor; see package savi).
	SourceCheck bool
	// ICMPSource (icmp-source) is the IPv4 source of ICMPv6 errors from
	// IPv6 routers that have no IPv4 form, translated to ICMPv4 (RFC 7915
	// s5.2, RFC 6791). Invalid: the BR's own address on its IPv4 side.
	ICMPSource netip.Addr
	// LowestIPv6MTU (lowest-ipv6-mtu) is the size IPv4 packets with DF
	// clear are fragmented to in translation (RFC 7915 s4.1); default
	// DefaultLowestIPv6MTU.
	LowestIPv6MTU int
	// ICMPRate (icmp-rate) bounds the ICMP errors the translator sends
	// itself in place of packets it drops (RFC 7915 s4.4, s5.4; RFC 7599
	// s8.3), per second and CPU; "off" (-1) sends none. Default
	// DefaultICMPRate.
	ICMPRate int
	// FastPath (fast-path: on, the default, or off) has the translator
	// send translated packets to their next hop itself when only routing
	// is needed (dataplane.Config.FastPath); off sends every packet
	// through the BR's stack, for netfilter rules on the BR's forwarding
	// path.
	FastPath bool
	// TrafficClass (traffic-class) is what translation to IPv6 writes
	// into the Traffic Class, TOS (tos) what translation to IPv4 writes
	// into the TOS octet: copy (the default) or an octet (RFC 7915 s4.1,
	// s5.1; mapt.DSField).
	TrafficClass, TOS mapt.DSField
	// Anycast (anycast) has the BR put its announcements in a kernel
	// routing table while it is healthy, for a routing daemon to export
	// (see relay/anycast).
	Anycast Anycast
}

// Anycast configures the BR's announcements: while the translator is
// attached and healthy, the BR routes the DMR of every domain and the IPv4
// prefix of every rule through its own device in Table, where a routing
// daemon (BIRD's kernel protocol with learn, FRR's import-table) picks
// them up and announces them. The routes go with the device, so a BR that
// dies, even by SIGKILL, withdraws them.
type Anycast struct {
	// Table is the kernel routing table (1-0x7fffffff, not the main,
	// local or default table); 0 leaves anycast off.
	Table uint32
	// Drain is how long a stopping BR goes on translating after it has
	// withdrawn its routes, so the routers move traffic first.
	Drain time.Duration
	// CheckInterval is how often the BR checks its health.
	CheckInterval time.Duration
	// RequireRoutes (require-routes) are addresses that must be routed
	// out of the BR's interfaces for it to be healthy: IPv6 ones out of
	// ipv6-interface, IPv4 ones out of ipv4-interface. With routes learned
	// from the upstream routers (BGP with BFD), a BR that loses one side
	// silently, its link still up, then withdraws the other side too.
	RequireRoutes []netip.Addr
}

// Anycast defaults.
const (
	DefaultDrain         = time.Second
	DefaultCheckInterval = 100 * time.Millisecond
)

// DefaultLowestIPv6MTU is RFC 7915 s4.1's default for lowest-ipv6-mtu: the
// IPv6 minimum MTU, which every IPv6 path carries.
const DefaultLowestIPv6MTU = 1280

// DefaultICMPRate is the default icmp-rate, the translator's own (see
// dataplane.DefaultICMPRate).
const DefaultICMPRate = 100

// Domain is one MAP domain and its DHCPv6 server settings.
type Domain struct {
	mapt.Domain
	Kea Kea
	// Line is where the domain starts in the file.
	Line int
}

// Error is a problem at a place in the file.
type Error struct {
	Path  string
	Line  int
	Field string // e.g. domains[0].rules[1].psid-offset
	Err   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("domainfile: %s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("domainfile: %s:%d: %s: %v", e.Path, e.Line, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads and validates a domain file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("domainfile: %w", err)
	}
	return Parse(path, data)
}

// Parse validates a domain file's contents; path is used in errors.
func Parse(path string, data []byte) (*File, error) {
	top, err := parseYAML(data)
	if err != nil {
		var ye *yamlError
		if errors.As(err, &ye) {
			return nil, &Error{Path: path, Line: ye.line, Err: errors.New(ye.msg)}
		}
		return nil, &Error{Path: path, Err: err}
	}
	p := parser{path: path}
	f := &File{Path: path, BR: BR{Metrics: DefaultMetrics, LowestIPv6MTU: DefaultLowestIPv6MTU, ICMPRate: DefaultICMPRate, FastPath: true}}
	if top == nil {
		return nil, &Error{Path: path, Line: 1, Err: errors.New("empty file: want a domains list")}
	}
	seenDomains := false
	err = p.mapping(top, "", func(key string, v *node, field string) error {
		switch key {
		case "br":
			return p.br(v, field, &f.BR)
		case "domains":
			seenDomains = true
			return p.list(v, field, "want a list of domains", func(dn *node, df string) error {
				d, err := p.domain(dn, df)
				if err != nil {
					return err
				}
				for _, o := range f.Domains {
					if o.Name == d.Name {
						return p.errf(dn, df+".name", "domain %q is defined twice (line %d)", d.Name, o.Line)
					}
					// The BR serves every domain from one table.
					for _, a := range o.Rules {
						for _, b := range d.Rules {
							if err := mapt.Overlap(a, b); err != nil {
								return p.errf(dn, df+".rules", "overlaps domain %q: %s", o.Name, strings.TrimPrefix(err.Error(), "mapt: "))
							}
						}
					}
				}
				f.Domains = append(f.Domains, d)
				return nil
			})
		}
		return errUnknown
	})
	if err != nil {
		return nil, err
	}
	if !seenDomains || len(f.Domains) == 0 {
		return nil, &Error{Path: path, Line: top.Line, Field: "domains", Err: errors.New("no domains defined")}
	}
	return f, nil
}

// Domain returns the named domain, or the only one when name is empty.
func (f *File) Domain(name string) (Domain, error) {
	if name == "" {
		if len(f.Domains) == 1 {
			return f.Domains[0], nil
		}
		names := make([]string, len(f.Domains))
		for i, d := range f.Domains {
			names[i] = d.Name
		}
		return Domain{}, fmt.Errorf("domainfile: %s has %d domains (%s): name one", f.Path, len(f.Domains), strings.Join(names, ", "))
	}
	for _, d := range f.Domains {
		if d.Name == name {
			return d, nil
		}
	}
	return Domain{}, fmt.Errorf("domainfile: %s: no domain %q", f.Path, name)
}

// Rules returns the rules of every domain, for the BR's forwarding table.
func (f *File) Rules() []mapt.Rule {
	var out []mapt.Rule
	for _, d := range f.Domains {
		out = append(out, d.Rules...)
	}
	return out
}

var errUnknown = errors.New("unknown key")

type parser struct{ path string }

func (p parser) errf(n *node, field, format string, args ...any) error {
	return &Error{Path: p.path, Line: n.Line, Field: field, Err: fmt.Errorf(format, args...)}
}

// mapping walks a mapping node, rejecting duplicate keys and, through
// errUnknown from fn, unknown ones.
func (p parser) mapping(n *node, prefix string, fn func(key string, v *node, field string) error) error {
	if n.Kind != mappingNode {
		return p.errf(n, strings.TrimSuffix(prefix, "."), "want a mapping of keys to values")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := prefix + k.Value
		if line, dup := seen[k.Value]; dup {
			return p.errf(k, field, "given twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		if err := fn(k.Value, v, field); err != nil {
			if errors.Is(err, errUnknown) {
				return p.errf(k, field, "unknown key")
			}
			return err
		}
	}
	return nil
}

func (p parser) scalar(v *node, field string) (string, error) {
	if v.Kind != scalarNode {
		return "", p.errf(v, field, "want a single value")
	}
	return v.Value, nil
}

func (p parser) str(v *node, field string, dst *string) error {
	s, err := p.scalar(v, field)
	*dst = s
	return err
}

func (p parser) uint(v *node, field string, max uint64, dst *int) error {
	s, err := p.scalar(v, field)
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil || n > max {
		return p.errf(v, field, "%q is not a number in 0-%d", s, max)
	}
	*dst = int(n)
	return nil
}

func (p parser) prefix(v *node, field string, v6 bool, dst *netip.Prefix) error {
	s, err := p.scalar(v, field)
	if err != nil {
		return err
	}
	pf, err := netip.ParsePrefix(s)
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	if err != nil || pf.Addr().Is6() != v6 {
		return p.errf(v, field, "%q is not an %s prefix", s, family)
	}
	if pf != pf.Masked() {
		return p.errf(v, field, "%s has host bits set (want %s)", pf, pf.Masked())
	}
	*dst = pf
	return nil
}

func (p parser) boolean(v *node, field string, dst *bool) error {
	s, err := p.scalar(v, field)
	if err != nil {
		return err
	}
	switch s {
	case "true", "yes", "on":
		*dst = true
	case "false", "no", "off":
		*dst = false
	default:
		return p.errf(v, field, "%q is not true or false", s)
	}
	return nil
}

// dsField reads copy or an octet (mapt.ParseDSField).
func (p parser) dsField(v *node, field string, dst *mapt.DSField) error {
	s, err := p.scalar(v, field)
	if err != nil {
		return err
	}
	if *dst, err = mapt.ParseDSField(s); err != nil {
		return p.errf(v, field, "%q: want copy or an octet 0-255 (decimal or 0x hex)", s)
	}
	return nil
}

// switched reads a feature switch: on (the feature's word for it, such
// as "neighbor") or "off".
func (p parser) switched(v *node, field, on string, dst *bool) error {
	var mode string
	if err := p.str(v, field, &mode); err != nil {
		return err
	}
	switch mode {
	case on:
		*dst = true
	case "off":
		*dst = false
	default:
		return p.errf(v, field, "%q: want %s or off", mode, on)
	}
	return nil
}

func (p parser) br(n *node, prefix string, br *BR) error {
	return p.mapping(n, prefix+".", func(key string, v *node, field string) error {
		switch key {
		case "ipv6-interface":
			return p.str(v, field, &br.IPv6Interface)
		case "ipv4-interface":
			return p.str(v, field, &br.IPv4Interface)
		case "source-check":
			return p.switched(v, field, "neighbor", &br.SourceCheck)
		case "icmp-source":
			var a string
			if err := p.str(v, field, &a); err != nil {
				return err
			}
			addr, err := netip.ParseAddr(a)
			if err != nil || !addr.Is4() || !addr.IsGlobalUnicast() {
				return p.errf(v, field, "%q is not a unicast IPv4 address", a)
			}
			br.ICMPSource = addr
			return nil
		case "lowest-ipv6-mtu":
			if err := p.uint(v, field, 65535, &br.LowestIPv6MTU); err != nil {
				return err
			}
			if br.LowestIPv6MTU < 1280 {
				return p.errf(v, field, "%d is below the IPv6 minimum MTU 1280", br.LowestIPv6MTU)
			}
			return nil
		case "fast-path":
			return p.switched(v, field, "on", &br.FastPath)
		case "traffic-class":
			return p.dsField(v, field, &br.TrafficClass)
		case "tos":
			return p.dsField(v, field, &br.TOS)
		case "icmp-rate":
			var r string
			if err := p.str(v, field, &r); err != nil {
				return err
			}
			n, err := strconv.ParseUint(r, 10, 32)
			switch {
			case r == "off":
				br.ICMPRate = -1
			case err != nil || n == 0 || n > 1000000:
				return p.errf(v, field, "%q: want errors per second and CPU (1-1000000) or off", r)
			default:
				br.ICMPRate = int(n)
			}
			return nil
		case "anycast":
			return p.anycast(v, field, &br.Anycast)
		case "metrics":
			if err := p.str(v, field, &br.Metrics); err != nil {
				return err
			}
			if br.Metrics == "off" {
				br.Metrics = ""
				return nil
			}
			if _, err := netip.ParseAddrPort(br.Metrics); err != nil {
				return p.errf(v, field, "%q is not ADDRESS:PORT (or off)", br.Metrics)
			}
			return nil
		}
		return errUnknown
	})
}

func (p parser) domain(n *node, prefix string) (Domain, error) {
	d := Domain{Line: n.Line}
	var seenDMR, seenRules bool
	err := p.mapping(n, prefix+".", func(key string, v *node, field string) error {
		switch key {
		case "name":
			return p.str(v, field, &d.Name)
		case "dmr":
			seenDMR = true
			if err := p.prefix(v, field, true, &d.DMR); err != nil {
				return err
			}
			if err := mapt.ValidateDMR(d.DMR); err != nil {
				return p.errf(v, field, "%s", strings.TrimPrefix(err.Error(), "mapt: "))
			}
			return nil
		case "rules":
			seenRules = true
			const want = "want a non-empty list of rules"
			if len(v.Content) == 0 {
				return p.errf(v, field, want)
			}
			return p.list(v, field, want, func(rn *node, rf string) error {
				r, err := p.rule(rn, rf)
				if err != nil {
					return err
				}
				for j, o := range d.Rules {
					if err := mapt.Overlap(o, r); err != nil {
						return p.errf(rn, rf, "overlaps %s[%d]: %s", field, j, strings.TrimPrefix(err.Error(), "mapt: "))
					}
				}
				d.Rules = append(d.Rules, r)
				return nil
			})
		case "kea":
			return p.kea(v, field, &d.Kea)
		}
		return errUnknown
	})
	if err != nil {
		return Domain{}, err
	}
	switch {
	case d.Name == "":
		return Domain{}, p.errf(n, prefix+".name", "missing")
	case !seenDMR:
		return Domain{}, p.errf(n, prefix+".dmr", "missing (every MAP-T domain needs a DMR, RFC 7599 s5.1)")
	case !seenRules:
		return Domain{}, p.errf(n, prefix+".rules", "missing")
	}
	if err := p.checkKea(n, prefix, &d); err != nil {
		return Domain{}, err
	}
	return d, nil
}

func (p parser) rule(n *node, prefix string) (mapt.Rule, error) {
	r := mapt.Rule{PSIDOffset: mapt.DefaultPSIDOffset, EABits: -1}
	var psid int
	var seenK, seenPSID bool
	lines := map[string]*node{}
	err := p.mapping(n, prefix+".", func(key string, v *node, field string) error {
		lines[key] = v
		switch key {
		case "ipv6-prefix":
			return p.prefix(v, field, true, &r.IPv6Prefix)
		case "ipv4-prefix":
			return p.prefix(v, field, false, &r.IPv4Prefix)
		case "ea-len":
			return p.uint(v, field, mapt.MaxEABits, &r.EABits)
		case "psid-offset":
			return p.uint(v, field, 15, &r.PSIDOffset)
		case "psid-len":
			seenK = true
			return p.uint(v, field, 16, &r.PSIDLen)
		case "psid":
			seenPSID = true
			return p.uint(v, field, 0xffff, &psid)
		case "fmr":
			return p.boolean(v, field, &r.FMR)
		}
		return errUnknown
	})
	if err != nil {
		return mapt.Rule{}, err
	}
	for _, req := range []string{"ipv6-prefix", "ipv4-prefix", "ea-len"} {
		if lines[req] == nil {
			return mapt.Rule{}, p.errf(n, prefix+"."+req, "missing")
		}
	}
	r.PSID = uint16(psid)
	if seenPSID && !seenK {
		return mapt.Rule{}, p.errf(lines["psid"], prefix+".psid", "given without psid-len")
	}
	if err := r.Validate(); err != nil {
		// Point at the field the core complains about where we can.
		at, field, first := n, prefix, len(err.Error())
		for key, v := range lines {
			if i := strings.Index(err.Error(), ": "+key); i >= 0 && i < first {
				at, field, first = v, prefix+"."+key, i
			}
		}
		return mapt.Rule{}, p.errf(at, field, "%s", strings.TrimPrefix(err.Error(), "mapt: "))
	}
	return r.Canonical(), nil
}

func (p parser) anycast(n *node, prefix string, a *Anycast) error {
	a.Drain, a.CheckInterval = DefaultDrain, DefaultCheckInterval
	seenTable := false
	err := p.mapping(n, prefix+".", func(key string, v *node, field string) error {
		switch key {
		case "table":
			seenTable = true
			var s string
			if err := p.str(v, field, &s); err != nil {
				return err
			}
			// 253-255 are the default, main and local tables: routes
			// there would be used for forwarding. Netlink libraries
			// carry table numbers as signed 32-bit integers.
			t, err := strconv.ParseUint(s, 0, 31)
			if err != nil || t == 0 || (t >= 253 && t <= 255) {
				return p.errf(v, field, "%q: want a routing table number in 1-2147483647 other than 253-255 (default, main, local)", s)
			}
			a.Table = uint32(t)
			return nil
		case "drain":
			return p.duration(v, field, 0, time.Minute, &a.Drain)
		case "check-interval":
			return p.duration(v, field, 10*time.Millisecond, 10*time.Second, &a.CheckInterval)
		case "require-routes":
			return p.list(v, field, "want a list of addresses, one a line", func(item *node, f string) error {
				s, err := p.scalar(item, f)
				if err != nil {
					return err
				}
				addr, err := netip.ParseAddr(s)
				if err != nil || addr.Zone() != "" || !addr.IsGlobalUnicast() {
					return p.errf(item, f, "%q is not a unicast IPv4 or IPv6 address", s)
				}
				a.RequireRoutes = append(a.RequireRoutes, addr.Unmap())
				return nil
			})
		}
		return errUnknown
	})
	if err != nil {
		return err
	}
	if !seenTable {
		return p.errf(n, prefix+".table", "missing")
	}
	return nil
}

func (p parser) duration(v *node, field string, lo, hi time.Duration, dst *time.Duration) error {
	s, err := p.scalar(v, field)
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		return p.errf(v, field, "%q: want a duration in %s-%s, e.g. 500ms", s, lo, hi)
	}
	*dst = d
	return nil
}
