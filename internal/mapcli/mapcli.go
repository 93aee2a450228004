package mapcli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mapt-go/mapt/mapt"
)

// UsageError is bad input on the command line; commands exit with status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// RuleFlags collects repeated --rule flags.
type RuleFlags []mapt.Rule

func (r *RuleFlags) String() string {
	s := make([]string, len(*r))
	for i, x := range *r {
		s[i] = x.String()
	}
	return strings.Join(s, " ")
}

func (r *RuleFlags) Set(v string) error {
	rule, err := mapt.ParseRule(v)
	if err != nil {
		return err
	}
	*r = append(*r, rule)
	return nil
}

// Flags is a subcommand's flag set: it reports errors once, through the
// returned error, instead of printing usage; -h prints the usage to help.
type Flags struct {
	*flag.FlagSet
	help io.Writer
}

// NewFlags returns an empty flag set for the subcommand name.
func NewFlags(name string, help io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Flags{fs, help}
}

// ParseNone parses a command line that takes no positional arguments.
func (fs *Flags) ParseNone(args []string) error {
	pos, err := fs.ParseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), pos[0])
	}
	return nil
}

// ParseAll parses flags that may stand before or after the positional
// arguments, and returns the positional ones.
func (fs *Flags) ParseAll(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(fs.help, "usage of %s:\n", fs.Name())
				fs.SetOutput(fs.help)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, UsageError{fmt.Errorf("%s: %w", fs.Name(), err)}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// PortsJSON is a port set as inclusive [first, last] pairs (mapt's
// schema).
type PortsJSON = mapt.PortsJSON

func portsJSON(s mapt.PortSet) PortsJSON { return mapt.PortSetJSON(s) }

// DeriveJSON is the JSON form of `ce-agent derive`: the binding's JSON form
// as package mapt defines it.
type DeriveJSON = mapt.BindingJSON

// BindingJSON converts a binding to the derive JSON form.
func BindingJSON(b mapt.Binding, dmr netip.Prefix) DeriveJSON { return b.JSON(dmr) }

// WriteBinding prints a binding as aligned text, the format of `derive`
// and of the agent's status.
func WriteBinding(w io.Writer, b mapt.Binding, dmr netip.Prefix) {
	ps := b.PortSet
	fmt.Fprintf(w, "rule             %s\n", b.Rule)
	fmt.Fprintf(w, "end-user-prefix  %s\n", b.EndUserPrefix)
	fmt.Fprintf(w, "ipv4             %s\n", b.IPv4)
	fmt.Fprintf(w, "psid             %d (0x%x), length %d, offset %d\n", ps.PSID, ps.PSID, ps.Len, ps.Offset)
	plural := "s"
	if ps.NumRanges() == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "ports            %s (%d ports, %d range%s of %d)\n", ps, ps.Count(), ps.NumRanges(), plural, ps.RangeSize())
	fmt.Fprintf(w, "map-address      %s\n", b.MAPAddress)
	if dmr.IsValid() {
		fmt.Fprintf(w, "dmr              %s\n", dmr)
	}
}

// WriteJSON prints one compact JSON object per line, a stable form for
// scripts.
func WriteJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// Derive runs `ce-agent derive`.
func Derive(args []string, stdout, stderr io.Writer) error {
	fs := NewFlags("derive", stderr)
	var rules RuleFlags
	fs.Var(&rules, "rule", "mapping rule IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr] (repeatable)")
	prefix := fs.String("prefix", "", "end-user IPv6 prefix (delegated prefix)")
	dmrFlag := fs.String("dmr", "", "default mapping rule: the BR's RFC 6052 prefix (optional)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := fs.ParseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("derive: unexpected argument %q", pos[0])
	}
	if len(rules) == 0 {
		return usagef("derive: at least one --rule is required")
	}
	if *prefix == "" {
		return usagef("derive: --prefix is required")
	}
	eup, err := netip.ParsePrefix(*prefix)
	if err != nil || !eup.Addr().Is6() {
		return usagef("derive: --prefix %q: not an IPv6 prefix", *prefix)
	}
	var dmr netip.Prefix
	if *dmrFlag != "" {
		if dmr, err = netip.ParsePrefix(*dmrFlag); err != nil {
			return usagef("derive: --dmr %q: not an IPv6 prefix", *dmrFlag)
		}
		if err := mapt.ValidateDMR(dmr); err != nil {
			return UsageError{err}
		}
	}
	b, err := mapt.Domain{Rules: rules}.Derive(eup)
	if err != nil {
		return UsageError{err}
	}
	if *asJSON {
		return WriteJSON(stdout, BindingJSON(b, dmr))
	}
	WriteBinding(stdout, b, dmr)
	return nil
}

// LookupIPv4JSON is the JSON form of `br lookup IPv4[:port]`.
type LookupIPv4JSON struct {
	IPv4          string `json:"ipv4"`
	Port          uint16 `json:"port"`
	PSID          uint16 `json:"psid"`
	MAPAddress    string `json:"map_address"`
	EndUserPrefix string `json:"end_user_prefix"`
	Rule          string `json:"rule"`
}

// LookupIPv6JSON is the JSON form of `br lookup IPv6`.
type LookupIPv6JSON struct {
	IPv6          string    `json:"ipv6"`
	IPv4          string    `json:"ipv4"`
	PSID          uint16    `json:"psid"`
	Ports         PortsJSON `json:"ports"`
	EndUserPrefix string    `json:"end_user_prefix"`
	Rule          string    `json:"rule"`
}

// Lookup runs `br lookup`. Rules come from --rule flags or, when the
// caller passes loadRules, from elsewhere (the BR's domain file).
func Lookup(args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet) func() ([]mapt.Rule, error)) error {
	fs := NewFlags("lookup", stderr)
	var rules RuleFlags
	fs.Var(&rules, "rule", "mapping rule IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr] (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	var load func() ([]mapt.Rule, error)
	if extra != nil {
		load = extra(fs.FlagSet)
	}
	pos, err := fs.ParseAll(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("lookup: want exactly one ADDRESS (IPv4:port, IPv4 or IPv6), got %d", len(pos))
	}
	if load != nil {
		more, err := load()
		if err != nil {
			return err
		}
		rules = append(rules, more...)
	}
	if len(rules) == 0 {
		return usagef("lookup: at least one --rule is required")
	}
	arg := pos[0]
	if v6, err := netip.ParseAddr(arg); err == nil && v6.Is6() {
		return lookupIPv6(stdout, rules, v6, *asJSON)
	}
	v4, port, err := parseIPv4Port(arg)
	if err != nil {
		return err
	}
	return lookupIPv4(stdout, rules, v4, port, *asJSON)
}

func parseIPv4Port(arg string) (netip.Addr, *uint16, error) {
	host, portStr, hasPort := strings.Cut(arg, ":")
	v4, err := netip.ParseAddr(host)
	if err != nil || !v4.Is4() {
		return netip.Addr{}, nil, usagef("lookup: %q: not IPv4:port, IPv4 or IPv6", arg)
	}
	if !hasPort {
		return v4, nil, nil
	}
	n, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.Addr{}, nil, usagef("lookup: %q: port %q is not in 0-65535", arg, portStr)
	}
	p := uint16(n)
	return v4, &p, nil
}

func lookupIPv4(w io.Writer, rules []mapt.Rule, v4 netip.Addr, port *uint16, asJSON bool) error {
	var p uint16
	if port != nil {
		p = *port
	}
	if port == nil {
		r, ok := mapt.MatchIPv4(rules, v4, 0)
		if !ok {
			return UsageError{fmt.Errorf("lookup: %s: %w", v4, mapt.ErrNoMatch)}
		}
		if r.SharingBits() > 0 {
			return usagef("lookup: %s is shared by %d CEs under rule %s: give IPv4:port", v4, 1<<r.SharingBits(), r)
		}
	}
	addr, b, err := mapt.MapIPv4(rules, v4, p)
	if err != nil {
		if errors.Is(err, mapt.ErrNoMatch) {
			return UsageError{fmt.Errorf("lookup: %w", err)}
		}
		return err
	}
	out := LookupIPv4JSON{
		IPv4: v4.String(), Port: p, PSID: b.PSID(), MAPAddress: addr.String(),
		EndUserPrefix: b.EndUserPrefix.String(), Rule: b.Rule.String(),
	}
	if asJSON {
		return WriteJSON(w, out)
	}
	fmt.Fprintf(w, "ipv4             %s\n", out.IPv4)
	if port != nil {
		fmt.Fprintf(w, "port             %d\n", p)
	}
	fmt.Fprintf(w, "psid             %d (0x%x)\n", b.PSID(), b.PSID())
	fmt.Fprintf(w, "map-address      %s\n", addr)
	fmt.Fprintf(w, "end-user-prefix  %s\n", b.EndUserPrefix)
	fmt.Fprintf(w, "rule             %s\n", b.Rule)
	return nil
}

func lookupIPv6(w io.Writer, rules []mapt.Rule, v6 netip.Addr, asJSON bool) error {
	v4, b, err := mapt.MapIPv6(rules, v6)
	if err != nil {
		return UsageError{fmt.Errorf("lookup: %w", err)}
	}
	out := LookupIPv6JSON{
		IPv6: v6.String(), IPv4: v4.String(), PSID: b.PSID(), Ports: portsJSON(b.PortSet),
		EndUserPrefix: b.EndUserPrefix.String(), Rule: b.Rule.String(),
	}
	if asJSON {
		return WriteJSON(w, out)
	}
	fmt.Fprintf(w, "ipv6             %s\n", v6)
	fmt.Fprintf(w, "ipv4             %s\n", v4)
	fmt.Fprintf(w, "psid             %d (0x%x)\n", b.PSID(), b.PSID())
	fmt.Fprintf(w, "ports            %s (%d ports)\n", b.PortSet, b.PortSet.Count())
	if b.AddressFor(v4) != v6 {
		fmt.Fprintf(w, "warning          interface ID does not match: %s expected\n", b.AddressFor(v4))
	}
	fmt.Fprintf(w, "end-user-prefix  %s\n", b.EndUserPrefix)
	fmt.Fprintf(w, "rule             %s\n", b.Rule)
	return nil
}
