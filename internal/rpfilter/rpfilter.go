// Package rpfilter turns IPv4 reverse-path filtering (RFC 3704) off for
// the one device on which translated packets enter the IPv4 stack, and
// leaves every other device filtered as it was.
//
// Both translators need it: the BR's IPv6 side receives the CEs' packets
// as IPv4 from addresses it routes elsewhere, and the CE's WAN receives
// the Internet's packets as IPv4 while the route back to them is the
// uplink. Neither device has an IPv4 address, and the kernel's check
// (fib_validate_source) rejects every packet on such a device in loose
// mode (2) too, not only in strict mode (1): off (0) is the one setting
// that lets them in.
package rpfilter

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Conf is where the kernel keeps the per-device IPv4 settings
// (net.ipv4.conf).
const Conf = "/proc/sys/net/ipv4/conf"

// Change is what Off changed: the device and the settings it found, its
// own and "all".
type Change struct {
	Dev, Own, All string
}

// Key is the sysctl Off set to 0.
func (c Change) Key() string { return "net.ipv4.conf." + c.Dev + ".rp_filter" }

// Off turns reverse-path filtering off for dev, under conf (Conf but in
// tests). The kernel applies the larger of all's value and the device's,
// so when all is on, every other device (and "default", for devices made
// later) first gets the value all gave it, and then all goes to 0: only
// dev loses its filtering. It returns nil when dev was not filtered.
func Off(conf, dev string) (*Change, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(conf, name, "rp_filter"))
		return strings.TrimSpace(string(b)), err
	}
	set := func(name, val string) error {
		if err := os.WriteFile(filepath.Join(conf, name, "rp_filter"), []byte(val), 0o644); err != nil {
			return fmt.Errorf("rpfilter: set net.ipv4.conf.%s.rp_filter=%s: %w", name, val, err)
		}
		return nil
	}
	all, err := read("all")
	if err != nil {
		return nil, fmt.Errorf("rpfilter: read net.ipv4.conf.all.rp_filter: %w", err)
	}
	own, err := read(dev)
	if err != nil {
		return nil, fmt.Errorf("rpfilter: read net.ipv4.conf.%s.rp_filter: %w", dev, err)
	}
	if all == "0" && own == "0" {
		return nil, nil
	}
	if all != "0" {
		entries, err := os.ReadDir(conf)
		if err != nil {
			return nil, fmt.Errorf("rpfilter: list net.ipv4.conf: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if name == "all" || name == dev {
				continue
			}
			v, err := read(name)
			if err != nil {
				continue // a device that went away
			}
			if v < all { // "0" < "1" < "2"
				if err := set(name, all); err != nil {
					return nil, err
				}
			}
		}
		if err := set("all", "0"); err != nil {
			return nil, err
		}
	}
	if err := set(dev, "0"); err != nil {
		return nil, err
	}
	return &Change{Dev: dev, Own: own, All: all}, nil
}
