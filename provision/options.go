package provision

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/s46"
)

// Options the LAN needs from the server besides the prefix: the router
// hands them to netifd (dnsmasq's upstreams, the search list, sysntpd),
// which odhcp6c did before the agent became the WAN's DHCPv6 client.
const (
	OptionDNSServers = dhcpv6.OptionDNSRecursiveNameServer // 23, RFC 3646 s3
	OptionDomainList = dhcpv6.OptionDomainSearchList       // 24, RFC 3646 s4
	OptionNTPServer  = dhcpv6.OptionNTPServer              // 56, RFC 5908 s4
	OptionS46Prio    = dhcpv6.OptionS46Priority            // 111, RFC 8026 s3
)

// maxListed bounds each list taken from a server (DNS servers, search
// domains, NTP servers): a hostile server must not grow the hook's
// environment or netifd's resolv.conf without bound.
const maxListed = 16

// serverOptions are the options of a message that the client decodes
// itself rather than through insomniacslk: a malformed one must cost the
// option, not the whole message (and with it the lease), and their values
// end up in shell variables and resolv.conf, so they are checked for
// characters that could do harm there.
type serverOptions struct {
	dns    []netip.Addr
	search []string
	ntp    []string
}

// received is a parsed message from a server: insomniacslk's message for
// everything but the options above, those options decoded, and one line
// per option left out.
type received struct {
	m       *dhcpv6.Message
	opts    serverOptions
	ignored []string
}

// criticalOption reports whether a message whose option code cannot be
// decoded must be dropped as a whole: without these the client cannot
// tell whom the message is for, from whom, or what it grants.
func criticalOption(c dhcpv6.OptionCode) bool {
	switch c {
	case dhcpv6.OptionClientID, dhcpv6.OptionServerID, dhcpv6.OptionIAPD, dhcpv6.OptionStatusCode,
		dhcpv6.OptionPreference, dhcpv6.OptionRapidCommit:
		return true
	}
	return false
}

// parseMessage decodes a datagram from a server (RFC 8415 s8 header, s21
// options). A broken header or option framing, or an undecodable critical
// option, is an error; any other option that does not decode is left out
// and named in ignored.
func parseMessage(b []byte) (*received, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%d bytes, shorter than the 4-byte header", len(b))
	}
	typ := dhcpv6.MessageType(b[0])
	if typ == dhcpv6.MessageTypeRelayForward || typ == dhcpv6.MessageTypeRelayReply {
		return nil, fmt.Errorf("relay message %s on the client port", typ)
	}
	tlvs, err := s46.SplitOptions("message", b[4:])
	if err != nil {
		return nil, err
	}
	r := &received{m: &dhcpv6.Message{MessageType: typ}}
	copy(r.m.TransactionID[:], b[1:4])
	r.m.Options.Options = make(dhcpv6.Options, 0, len(tlvs))
	for _, o := range tlvs {
		var err error
		switch o.Code {
		case OptionDNSServers:
			err = r.opts.addDNS(o.Data)
		case OptionDomainList:
			err = r.opts.addSearch(o.Data)
		case OptionNTPServer:
			err = r.opts.addNTP(o.Data)
		}
		if err != nil {
			r.ignored = append(r.ignored, fmt.Sprintf("option %d ignored: %v", uint16(o.Code), err))
			continue
		}
		opt, err := dhcpv6.ParseOption(o.Code, o.Data)
		if err != nil {
			if criticalOption(o.Code) {
				return nil, fmt.Errorf("option %s (%d): %w", o.Code, uint16(o.Code), err)
			}
			r.ignored = append(r.ignored, fmt.Sprintf("option %s (%d) ignored: %v", o.Code, uint16(o.Code), err))
			continue
		}
		r.m.Options.Add(opt)
	}
	return r, nil
}

// addDNS decodes OPTION_DNS_SERVERS (RFC 3646 s3): IPv6 addresses.
func (s *serverOptions) addDNS(b []byte) error {
	if len(b) == 0 || len(b)%16 != 0 {
		return fmt.Errorf("DNS servers: length %d is not a positive multiple of 16", len(b))
	}
	for ; len(b) > 0; b = b[16:] {
		a := netip.AddrFrom16([16]byte(b[:16]))
		if a.IsUnspecified() || a.IsMulticast() || a.Is4In6() {
			continue
		}
		if len(s.dns) < maxListed {
			s.dns = append(s.dns, a)
		}
	}
	return nil
}

// addSearch decodes OPTION_DOMAIN_LIST (RFC 3646 s4): fully qualified
// names in DNS wire format, uncompressed (RFC 8415 s10).
func (s *serverOptions) addSearch(b []byte) error {
	var names []string
	for len(b) > 0 {
		name, rest, err := readName(b)
		if err != nil {
			return fmt.Errorf("domain list: %w", err)
		}
		names = append(names, name)
		b = rest
	}
	for _, n := range names {
		if len(s.search) < maxListed {
			s.search = append(s.search, n)
		}
	}
	return nil
}

// NTP suboptions (RFC 5908 s4).
const (
	ntpSrvAddr = 1
	ntpMCAddr  = 2
	ntpSrvFQDN = 3
)

// addNTP decodes OPTION_NTP_SERVER (RFC 5908 s4): server and multicast
// addresses and server names, one per suboption; unknown suboptions are
// skipped (s4).
func (s *serverOptions) addNTP(b []byte) error {
	subs, err := s46.SplitOptions("NTP server", b)
	if err != nil {
		return err
	}
	var found []string
	for _, so := range subs {
		switch so.Code {
		case ntpSrvAddr, ntpMCAddr:
			if len(so.Data) != 16 {
				return fmt.Errorf("NTP server: suboption %d: length %d, want 16", so.Code, len(so.Data))
			}
			found = append(found, netip.AddrFrom16([16]byte(so.Data)).String())
		case ntpSrvFQDN:
			name, rest, err := readName(so.Data)
			if err != nil {
				return fmt.Errorf("NTP server: suboption 3: %w", err)
			}
			if len(rest) != 0 {
				return fmt.Errorf("NTP server: suboption 3: %d bytes after the name", len(rest))
			}
			found = append(found, name)
		}
	}
	if len(found) == 0 {
		return errors.New("NTP server: no server address or name")
	}
	for _, f := range found {
		if len(s.ntp) < maxListed {
			s.ntp = append(s.ntp, f)
		}
	}
	return nil
}

// readName reads one fully qualified domain name in DNS wire format
// (RFC 1035 s3.1) without compression (RFC 8415 s10) and returns it
// without the trailing dot. Labels must be letters, digits, '-' or '_'
// (RFC 1123 s2.1 host names, and the underscore of service labels): the
// names go into resolv.conf and shell variables, where a newline or a
// '$(' would be an injection.
func readName(b []byte) (string, []byte, error) {
	var labels []string
	total := 0
	for {
		if len(b) == 0 {
			return "", nil, errors.New("name not terminated by a zero-length label")
		}
		n := int(b[0])
		b = b[1:]
		if n == 0 {
			break
		}
		if n&0xc0 != 0 {
			return "", nil, fmt.Errorf("label length byte %#02x: compression or extended labels are not allowed (RFC 8415 s10)", n)
		}
		if n > len(b) {
			return "", nil, fmt.Errorf("label of %d bytes, only %d left", n, len(b))
		}
		label := b[:n]
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", nil, fmt.Errorf("label %q: byte %#02x is not a letter, digit, '-' or '_'", label, c)
			}
		}
		labels = append(labels, string(label))
		total += n + 1
		if total > 254 {
			return "", nil, errors.New("name longer than 255 bytes")
		}
		b = b[n:]
	}
	if len(labels) == 0 {
		return "", nil, errors.New("empty name (the root)")
	}
	return strings.Join(labels, "."), b, nil
}

// appendName encodes a name in DNS wire format; tests and the fuzzer's
// seeds use it.
func appendName(b []byte, name string) []byte {
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(append(b, byte(len(l))), l...)
	}
	return append(b, 0)
}

// s46PriorityOption is OPTION_S46_PRIORITY (RFC 8026 s3): the server's
// softwire mechanisms, most preferred first, as container option codes.
type s46PriorityOption []dhcpv6.OptionCode

// parseS46Priority decodes the option's payload: one or more 16-bit codes.
func parseS46Priority(b []byte) (s46PriorityOption, error) {
	if len(b) == 0 || len(b)%2 != 0 {
		return nil, fmt.Errorf("S46 priority: option-length %d, want a positive even number (RFC 8026 s3)", len(b))
	}
	var p s46PriorityOption
	for ; len(b) > 0; b = b[2:] {
		p = append(p, dhcpv6.OptionCode(binary.BigEndian.Uint16(b)))
	}
	return p, nil
}
