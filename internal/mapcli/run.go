package mapcli

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
)

// ParseLogLevel reads debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, UsageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", s)}
	}
	return l, nil
}

// ParsePrefix6 reads an IPv6 prefix flag; empty is the zero prefix.
func ParsePrefix6(flag, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() {
		return netip.Prefix{}, UsageError{fmt.Errorf("%s %q: not an IPv6 prefix", flag, s)}
	}
	return p, nil
}
