package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/internal/mapcli"
	"github.com/mapt-go/mapt/mapt"
)

// runAgent is `ce-agent run`: zero-touch by default.
func runAgent(args []string, stdout, stderr io.Writer) error {
	fs := mapcli.NewFlags("run", stderr)
	var cfg agent.Config
	fs.StringVar(&cfg.WAN, "wan", "", "WAN interface (default: the one holding the IPv6 default route, or the only one with carrier)")
	fs.StringVar(&cfg.StateDir, "state-dir", agent.DefaultStateDir, "where the lease and the DHCPv6 identity are kept")
	fs.StringVar(&cfg.Uplink, "uplink", agent.DefaultUplink, "name of the IPv4 uplink device the agent creates")
	fs.StringVar(&cfg.Hook, "hook", "", "script run on every change, with the binding in MAPT_* environment variables")
	fs.StringVar(&cfg.StatusSocket, "status-socket", agent.DefaultStatusSocket, "unix socket for ce-agent status (- for none)")
	fs.BoolVar(&cfg.ReleaseOnStop, "release-on-stop", false, "send DHCPv6 Release when stopped")
	fs.BoolVar(&cfg.LeaveInPlace, "leave-in-place", false, "keep the kernel state when stopped, for a restart")
	fs.BoolVar(&cfg.NoDefaultRoute, "no-default-route", false, "do not install the IPv4 default route through the uplink")
	inbound := fs.String("inbound", "uplink", "where translated packets from the MAP domain enter the IPv4 stack: uplink (a firewall sees them arrive there, as OpenWrt's mapt zone) or wan (saves a second receive per packet; the agent turns the WAN's rp_filter off, firewall rules for this traffic must name the WAN)")
	fs.StringVar(&cfg.AttachMode, "attach-mode", "", "translator hooks: tcx or clsact (default: tcx where the kernel has it)")
	fs.StringVar(&cfg.PinRoot, "pin-dir", dataplane.DefaultPinRoot, "directory on a BPF filesystem where the translator is pinned, so that it keeps forwarding while the agent is away and a restart adopts it (- for none)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logTime := fs.Bool("log-time", true, "timestamps on log lines (off under procd or netifd: syslog adds its own)")
	fs.IntVar(&cfg.UplinkMTU, "uplink-mtu", 0, "cap the uplink MTU below min(WAN MTU, lowest-ipv6-mtu) - 28 (0: none)")
	fs.IntVar(&cfg.LowestIPv6MTU, "lowest-ipv6-mtu", dataplane.DefaultLowestIPv6MTU,
		"RFC 7915 lowest-ipv6-mtu: IPv4 packets with DF clear leave as IPv6 fragments of at most this size; raise it when every IPv6 path in the domain carries more")
	icmpRate := fs.String("icmp-rate", "100", "ICMP errors the translator sends itself (ports outside our set, source routes), per second and CPU, or off")
	trafficClass := fs.String("traffic-class", "copy", "IPv6 Traffic Class of translated packets: copy (the IPv4 TOS octet) or an octet 0-255, e.g. 0 (RFC 7915 s4.1)")
	tos := fs.String("tos", "copy", "IPv4 TOS octet of translated packets to the LAN: copy (the IPv6 Traffic Class) or an octet 0-255 (RFC 7915 s5.1)")
	clientID := fs.String("client-id", "", "DHCPv6 client identifier: the DUID in hex (default: DUID-LL of the WAN, kept in --state-dir)")
	iaid := fs.String("iaid", "", "IAID of the IA_PD, decimal or 0x-hex (default: hashed from the WAN's name, kept in --state-dir)")
	vendorClass := fs.String("vendor-class", "", "DHCPv6 vendor class option payload in hex: enterprise number, then vendor-class-data (RFC 8415 s21.16)")
	var userClass, reqopts stringList
	fs.Var(&userClass, "user-class", "DHCPv6 user class item (repeatable, RFC 8415 s21.15)")
	fs.Var(&reqopts, "reqopt", "extra DHCPv6 option code to request (repeatable)")
	domainFile := fs.String("domain", "", "static mode: domain file (the format br reads) instead of DHCPv6 S46 options")
	domainName := fs.String("domain-name", "", "static mode: which domain of --domain (when it has several)")
	var rules mapcli.RuleFlags
	fs.Var(&rules, "rule", "static mode: mapping rule IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr] (repeatable; needs --dmr)")
	dmrFlag := fs.String("dmr", "", "static mode: the DMR (RFC 6052 prefix) for --rule")
	prefixFlag := fs.String("prefix", "", "static mode: end-user prefix (default: the prefix delegated by DHCPv6)")
	if err := fs.ParseNone(args); err != nil {
		return err
	}
	level, err := mapcli.ParseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = newLogger(stdout, stderr, level, *logTime)
	if cfg.LowestIPv6MTU < 1280 || cfg.LowestIPv6MTU > 65535 {
		return mapcli.UsageError{Err: fmt.Errorf("--lowest-ipv6-mtu %d: want 1280-65535 (1280 is the IPv6 minimum)", cfg.LowestIPv6MTU)}
	}
	if cfg.ICMPRate, err = parseICMPRate(*icmpRate); err != nil {
		return err
	}
	if cfg.TrafficClass, err = mapt.ParseDSField(*trafficClass); err != nil {
		return mapcli.UsageError{Err: fmt.Errorf("--traffic-class %q: want copy or an octet 0-255 (decimal or 0x hex)", *trafficClass)}
	}
	if cfg.TOS, err = mapt.ParseDSField(*tos); err != nil {
		return mapcli.UsageError{Err: fmt.Errorf("--tos %q: want copy or an octet 0-255 (decimal or 0x hex)", *tos)}
	}
	switch *inbound {
	case "uplink":
	case "wan":
		cfg.InboundViaWAN = true
	default:
		return mapcli.UsageError{Err: fmt.Errorf("--inbound %q: want wan or uplink", *inbound)}
	}
	if cfg.UplinkMTU < 0 || cfg.UplinkMTU > 0 && cfg.UplinkMTU < 68 {
		return mapcli.UsageError{Err: fmt.Errorf("--uplink-mtu %d: IPv4 needs at least 68", cfg.UplinkMTU)}
	}
	if cfg.DHCPv6, err = dhcpv6Options(*clientID, *iaid, *vendorClass, userClass, reqopts); err != nil {
		return err
	}
	prefix, err := mapcli.ParsePrefix6("--prefix", *prefixFlag)
	if err != nil {
		return err
	}
	switch {
	case *domainFile != "" && len(rules) > 0:
		return mapcli.UsageError{Err: errors.New("run: give --domain or --rule, not both")}
	case *domainFile != "":
		f, err := domainfile.Load(*domainFile)
		if err != nil {
			return mapcli.UsageError{Err: err}
		}
		d, err := f.Domain(*domainName)
		if err != nil {
			return mapcli.UsageError{Err: err}
		}
		cfg.Static = &agent.Static{Domain: d.Domain, Prefix: prefix}
	case len(rules) > 0:
		dmr, err := mapcli.ParsePrefix6("--dmr", *dmrFlag)
		if err != nil {
			return err
		}
		d := mapt.Domain{Name: "static", Rules: rules, DMR: dmr}
		if err := d.Validate(); err != nil {
			return mapcli.UsageError{Err: err}
		}
		cfg.Static = &agent.Static{Domain: d, Prefix: prefix}
	case prefix.IsValid() || *dmrFlag != "":
		return mapcli.UsageError{Err: errors.New("run: --prefix and --dmr need --domain or --rule")}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return agent.Run(ctx, cfg)
}

// stringList collects a repeated string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// dhcpv6Options reads the DHCPv6 client flags (OpenWrt's clientid, reqopts,
// vendorclass and userclass options, as dhcpv6.sh passes them to odhcp6c).
func dhcpv6Options(clientID, iaid, vendorClass string, userClass, reqopts []string) (agent.DHCPv6Options, error) {
	var o agent.DHCPv6Options
	var err error
	if clientID != "" {
		if o.ClientID, err = hex.DecodeString(strings.ReplaceAll(clientID, ":", "")); err != nil || len(o.ClientID) < 2 {
			return o, mapcli.UsageError{Err: fmt.Errorf("--client-id %q: want a DUID in hex", clientID)}
		}
	}
	if iaid != "" {
		n, err := strconv.ParseUint(iaid, 0, 32)
		if err != nil {
			return o, mapcli.UsageError{Err: fmt.Errorf("--iaid %q: want a 32-bit number", iaid)}
		}
		v := uint32(n)
		o.IAID = &v
	}
	if vendorClass != "" {
		if o.VendorClass, err = hex.DecodeString(vendorClass); err != nil || len(o.VendorClass) < 4 {
			return o, mapcli.UsageError{Err: fmt.Errorf("--vendor-class %q: want hex, an enterprise number (4 bytes) then data", vendorClass)}
		}
	}
	for _, u := range userClass {
		if u == "" || len(u) > 0xffff {
			return o, mapcli.UsageError{Err: fmt.Errorf("--user-class %q: want 1 to 65535 bytes", u)}
		}
		o.UserClass = append(o.UserClass, []byte(u))
	}
	for _, r := range reqopts {
		for _, f := range strings.FieldsFunc(r, func(c rune) bool { return c == ',' || c == ' ' }) {
			n, err := strconv.ParseUint(f, 10, 16)
			if err != nil || n == 0 {
				return o, mapcli.UsageError{Err: fmt.Errorf("--reqopt %q: want a DHCPv6 option code, 1-65535", f)}
			}
			o.RequestOptions = append(o.RequestOptions, dhcpv6.OptionCode(n))
		}
	}
	return o, nil
}

// status is `ce-agent status`.
func status(args []string, stdout, stderr io.Writer) error {
	fs := mapcli.NewFlags("status", stderr)
	socket := fs.String("status-socket", agent.DefaultStatusSocket, "the agent's status socket")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.ParseNone(args); err != nil {
		return err
	}
	s, err := agent.ReadStatus(*socket)
	if err != nil {
		return err
	}
	if *asJSON {
		return mapcli.WriteJSON(stdout, s)
	}
	s.WriteText(stdout)
	return nil
}

// parseICMPRate reads --icmp-rate: errors per second and CPU, or off (-1).
func parseICMPRate(s string) (int, error) {
	if s == "off" {
		return -1, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 1000000 {
		return 0, mapcli.UsageError{Err: fmt.Errorf("--icmp-rate %q: want errors per second and CPU (1-1000000) or off", s)}
	}
	return int(n), nil
}
