package nat

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/mapt"
)

func TestValidate(t *testing.T) {
	good := Config{Uplink: "up0", Addr: netip.MustParsePrefix("192.0.2.18/32"), Ports: []mapt.PortRange{{First: 1232, Last: 1235}}, MTU: 1480}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // substring of the error, "" for none
	}{
		{"good", func(*Config) {}, ""},
		{"empty port set", func(c *Config) { c.Ports = nil }, "port set: empty"},
		{"larger than 65536", func(c *Config) {
			c.Ports = []mapt.PortRange{{First: 0, Last: 65535}, {First: 1000, Last: 1000}}
		}, "65537 ports, more than 65536"},
		{"overlapping", func(c *Config) {
			c.Ports = []mapt.PortRange{{First: 2000, Last: 2100}, {First: 1000, Last: 2000}}
		}, "ranges 1000-2000 and 2000-2100 overlap"},
		{"reversed range", func(c *Config) { c.Ports = []mapt.PortRange{{First: 10, Last: 9}} }, "range 10-9: first port above last"},
		{"only port 0", func(c *Config) { c.Ports = []mapt.PortRange{{First: 0, Last: 0}} }, "only port 0"},
		{"too many slots", func(c *Config) {
			c.Ports = mapt.PortSet{PortParams: mapt.PortParams{Offset: 13, Len: 3}, PSID: 1}.Ranges()
		}, "8191 ranges need 8191 slots, more than 4096"},
		{"a=12 still fits", func(c *Config) {
			c.Ports = mapt.PortSet{PortParams: mapt.PortParams{Offset: 12, Len: 4}, PSID: 1}.Ranges()
		}, ""},
		{"no uplink", func(c *Config) { c.Uplink = "" }, `uplink ""`},
		{"long uplink", func(c *Config) { c.Uplink = "a-very-long-device" }, "1-15 bytes"},
		{"wan", func(c *Config) { c.WAN = "eth0.2" }, ""},
		{"long wan", func(c *Config) { c.WAN = "a-very-long-device" }, `wan "a-very-long-device"`},
		{"wan is the uplink", func(c *Config) { c.WAN = "up0" }, "other than the uplink's"},
		{"ipv6 address", func(c *Config) { c.Addr = netip.MustParsePrefix("2001:db8::1/128") }, "not an IPv4"},
		{"no address", func(c *Config) { c.Addr = netip.Prefix{} }, "not an IPv4"},
		{"host bits", func(c *Config) { c.Addr = netip.MustParsePrefix("192.0.2.18/30") }, "host bits"},
		{"unspecified", func(c *Config) { c.Addr = netip.MustParsePrefix("0.0.0.0/32") }, "unspecified"},
		{"tiny mtu", func(c *Config) { c.MTU = 100 }, "mtu 100"},
		{"huge mtu", func(c *Config) { c.MTU = 70000 }, "mtu 70000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not say %q", err, tc.want)
			case err != nil && !strings.HasPrefix(err.Error(), "nat: "):
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestFromBinding(t *testing.T) {
	for _, tc := range []struct {
		rule, eup string
		addr      string
		ranges    []mapt.PortRange // first and last
		n         int
	}{
		// The seed's CE 11b and Jool's CE 774 (ARCHITECTURE.md, Conventions and reference vectors).
		{"2001:db8:ce::/51,192.0.2.0/24,13,a=0", "2001:db8:ce:11b::/64", "192.0.2.8/32", []mapt.PortRange{{First: 55296, Last: 57343}}, 1},
		{"2001:db8:ce::/51,192.0.2.0/24,13,a=0", "2001:db8:ce:774::/64", "192.0.2.59/32", []mapt.PortRange{{First: 40960, Last: 43007}}, 1},
		// RFC 7597 Appendix A, example 1: PSID 0x34, 63 ranges of 4.
		{"2001:db8::/40,192.0.2.0/24,16,a=6", "2001:db8:12:3400::/56", "192.0.2.18/32", []mapt.PortRange{{First: 1232, Last: 1235}, {First: 64720, Last: 64723}}, 63},
		// EA + r < 32: a prefix, all ports.
		{"2001:db8::/40,192.0.2.0/24,6", "2001:db8:50::/46", "192.0.2.80/30", []mapt.PortRange{{First: 0, Last: 65535}}, 1},
	} {
		cfg := bindingConfig(t, tc.rule, tc.eup, "up0", 1480)
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s %s: %v", tc.rule, tc.eup, err)
		}
		if cfg.Addr.String() != tc.addr || len(cfg.Ports) != tc.n || cfg.Ports[0] != tc.ranges[0] || cfg.Ports[len(cfg.Ports)-1] != tc.ranges[len(tc.ranges)-1] {
			t.Errorf("%s %s: got %s %v, want %s %v (%d ranges)", tc.rule, tc.eup, cfg.Addr, cfg.Ports, tc.addr, tc.ranges, tc.n)
		}
	}
}

// TestChunks checks the slots: they cover the set exactly (port 0
// excepted), none exceeds what the kernel searches completely, and larger
// ones come first.
func TestChunks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ports  []mapt.PortRange
		slots  int
		sizes  []int // first and last slot size
		covers int
	}{
		{"seed a=0 2048", []mapt.PortRange{{First: 55296, Last: 57343}}, 16, []int{128, 128}, 2048},
		{"rfc ex1", mapt.PortSet{PortParams: mapt.PortParams{Offset: 6, Len: 8}, PSID: 0x34}.Ranges(), 63, []int{4, 4}, 252},
		{"full address", []mapt.PortRange{{First: 0, Last: 65535}}, 512, []int{128, 127}, 65535},
		{"psid 0 a=0 k=6 keeps system ports", []mapt.PortRange{{First: 0, Last: 1023}}, 8, []int{128, 127}, 1023},
		{"odd sizes", []mapt.PortRange{{First: 5000, Last: 5299}, {First: 100, Last: 102}}, 4, []int{100, 3}, 303},
		{"one port", []mapt.PortRange{{First: 4000, Last: 4000}}, 1, []int{1, 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Ports: tc.ports}
			chunks := c.chunks()
			if len(chunks) != tc.slots {
				t.Fatalf("%d slots, want %d: %v", len(chunks), tc.slots, chunks)
			}
			if chunks[0].Size() != tc.sizes[0] || chunks[len(chunks)-1].Size() != tc.sizes[1] {
				t.Errorf("slot sizes %d..%d, want %d..%d", chunks[0].Size(), chunks[len(chunks)-1].Size(), tc.sizes[0], tc.sizes[1])
			}
			checkChunks(t, c, chunks)
			if c.Count() != tc.covers {
				t.Errorf("Count %d, want %d", c.Count(), tc.covers)
			}
		})
	}
}

// checkChunks asserts the slot invariants for a valid c.
func checkChunks(t *testing.T, c Config, chunks []mapt.PortRange) {
	t.Helper()
	seen := make(map[uint16]bool)
	for i, ch := range chunks {
		if ch.Size() > maxChunk || ch.First > ch.Last {
			t.Fatalf("slot %s: %d ports, limit %d", ch, ch.Size(), maxChunk)
		}
		if i > 0 && ch.Size() > chunks[i-1].Size() {
			t.Fatalf("slot %s larger than the one before it (%s)", ch, chunks[i-1])
		}
		for p := int(ch.First); p <= int(ch.Last); p++ {
			if seen[uint16(p)] {
				t.Fatalf("port %d in two slots", p)
			}
			seen[uint16(p)] = true
			if p == 0 || !c.Owns(c.Addr.Addr(), uint16(p)) && c.Addr.IsValid() {
				t.Fatalf("slot %s holds port %d outside the set", ch, p)
			}
		}
	}
	want := 0
	for _, r := range c.Ports {
		want += r.Size()
		if r.First == 0 {
			want--
		}
	}
	if len(seen) != want {
		t.Fatalf("slots cover %d ports, the set (without port 0) has %d", len(seen), want)
	}
}

// FuzzChunks feeds arbitrary range lists through Validate and, when they
// pass, checks the slot invariants: the configuration is the input the
// agent builds from untrusted DHCPv6 data.
func FuzzChunks(f *testing.F) {
	f.Add([]byte{0xd8, 0x00, 0xdf, 0xff})
	f.Add([]byte{0x04, 0xd0, 0x04, 0xd3, 0x08, 0xd0, 0x08, 0xd3})
	f.Add([]byte{0, 0, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0x10, 0, 0x20, 0, 0x1f, 0xff, 0x30, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ports []mapt.PortRange
		for i := 0; i+3 < len(b) && len(ports) < 64; i += 4 {
			ports = append(ports, mapt.PortRange{First: uint16(b[i])<<8 | uint16(b[i+1]), Last: uint16(b[i+2])<<8 | uint16(b[i+3])})
		}
		c := Config{Uplink: "up0", Addr: netip.MustParsePrefix("192.0.2.1/32"), Ports: ports, MTU: 1500}
		if err := c.Validate(); err != nil {
			if !strings.HasPrefix(err.Error(), "nat: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		checkChunks(t, c, c.chunks())
	})
}
