package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mapt-go/mapt/internal/serve"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/provision"
)

// Status is what `ce-agent status` shows.
type Status struct {
	State      string            `json:"state"` // waiting, bound, expired, stopped
	WAN        string            `json:"wan"`
	Uplink     string            `json:"uplink"`
	Source     string            `json:"source"` // dhcpv6 or static
	Lease      *LeaseStatus      `json:"lease,omitempty"`
	Link       *LinkStatus       `json:"link,omitempty"`
	DHCPv6     *provision.Stats  `json:"dhcpv6,omitempty"`
	Binding    *mapt.BindingJSON `json:"binding,omitempty"`
	FMRs       []string          `json:"fmrs,omitempty"`
	AttachMode string            `json:"attach_mode,omitempty"`
	Counters   map[string]uint64 `json:"counters,omitempty"`
	Events     []Event           `json:"events"`
	Since      time.Time         `json:"since"`
}

// LeaseStatus is the DHCPv6 side of the status.
type LeaseStatus struct {
	Prefix    string    `json:"prefix"`
	Server    string    `json:"server,omitempty"`
	ServerID  string    `json:"server_id,omitempty"`
	Obtained  time.Time `json:"obtained"`
	Renew     time.Time `json:"renew"`
	Rebind    time.Time `json:"rebind"`
	Expires   time.Time `json:"expires"`
	Preferred string    `json:"preferred"`
	Valid     string    `json:"valid"`
	Ignored   []string  `json:"ignored,omitempty"`
	// Softwire is the mechanism chosen ("map-t") or empty; S46Priority
	// the server's preference order (RFC 8026); Selection how the
	// choice was made.
	Softwire    string   `json:"softwire,omitempty"`
	S46Priority []string `json:"s46_priority,omitempty"`
	Selection   string   `json:"selection,omitempty"`
	// DNS, Search and NTP are what the server offers the LAN (RFC 3646,
	// RFC 5908).
	DNS            []netip.Addr `json:"dns,omitempty"`
	Search         []string     `json:"dns_search,omitempty"`
	NTP            []string     `json:"ntp,omitempty"`
	IgnoredOptions []string     `json:"ignored_options,omitempty"`
}

// LinkStatus is the WAN device as the agent last saw it.
type LinkStatus struct {
	State     string `json:"state"` // up, no-carrier, absent
	Ifindex   int    `json:"ifindex,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	UplinkMTU int    `json:"uplink_mtu,omitempty"`
}

// Event is one state change, kept for the status.
type Event struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

const maxEvents = 20

// statusBoard holds the current status for the socket.
type statusBoard struct {
	mu sync.Mutex
	s  Status
	// counters fetches live counters when the status is read.
	counters func() (map[string]uint64, string)
	// dhcp fetches the DHCPv6 client's counters, when there is a client.
	dhcp func() provision.Stats
}

func (b *statusBoard) update(fn func(*Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(&b.s)
}

func (b *statusBoard) event(format string, args ...any) {
	b.update(func(s *Status) {
		s.Events = append(s.Events, Event{Time: time.Now().UTC(), Message: fmt.Sprintf(format, args...)})
		if len(s.Events) > maxEvents {
			s.Events = s.Events[len(s.Events)-maxEvents:]
		}
	})
}

func (b *statusBoard) snapshot() Status {
	b.mu.Lock()
	s := b.s
	s.Events = append([]Event(nil), b.s.Events...)
	if b.s.Link != nil {
		l := *b.s.Link
		s.Link = &l
	}
	counters, dhcp := b.counters, b.dhcp
	b.mu.Unlock()
	if counters != nil {
		s.Counters, s.AttachMode = counters()
	}
	if dhcp != nil {
		st := dhcp()
		s.DHCPv6 = &st
	}
	return s
}

// serveStatus answers every connection on a unix socket (mode 0600: the
// status names subscriber addresses) with the status as JSON.
func serveStatus(ctx context.Context, path string, b *statusBoard) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	// A socket left by a killed agent would block the bind.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("agent: status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("agent: status socket: %w", err)
	}
	stopServe := serve.Accept(l, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		json.NewEncoder(c).Encode(b.snapshot())
		c.Close()
	})
	stop := context.AfterFunc(ctx, func() { l.Close() })
	return func() {
		stop()
		stopServe()
		os.Remove(path)
	}, nil
}

// ReadStatus asks a running agent for its status.
func ReadStatus(path string) (*Status, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("agent: no agent is listening on %s (is ce-agent running?)", path)
		}
		return nil, fmt.Errorf("agent: status: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	data, err := io.ReadAll(c)
	if err != nil {
		return nil, fmt.Errorf("agent: status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("agent: status: bad answer: %w", err)
	}
	return &s, nil
}

// WriteText prints a status for people.
func (s *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "state            %s (since %s)\n", s.State, s.Since.Format(time.RFC3339))
	fmt.Fprintf(w, "source           %s\n", s.Source)
	if l := s.Link; l != nil {
		fmt.Fprintf(w, "wan              %s (%s, ifindex %d, mtu %d)\n", s.WAN, l.State, l.Ifindex, l.MTU)
	} else {
		fmt.Fprintf(w, "wan              %s\n", s.WAN)
	}
	if l := s.Link; l != nil && l.UplinkMTU > 0 {
		fmt.Fprintf(w, "uplink           %s (mtu %d)\n", s.Uplink, l.UplinkMTU)
	} else {
		fmt.Fprintf(w, "uplink           %s\n", s.Uplink)
	}
	if l := s.Lease; l != nil {
		fmt.Fprintf(w, "lease            %s from %s, renew %s, rebind %s, expires %s\n", l.Prefix, l.Server,
			l.Renew.Format(time.TimeOnly), l.Rebind.Format(time.TimeOnly), l.Expires.Format(time.TimeOnly))
		if l.Selection != "" {
			fmt.Fprintf(w, "softwire         %s\n", l.Selection)
		}
		for _, why := range l.Ignored {
			fmt.Fprintf(w, "ignored          %s\n", why)
		}
		for _, why := range l.IgnoredOptions {
			fmt.Fprintf(w, "ignored          %s\n", why)
		}
		if len(l.DNS) > 0 {
			dns := make([]string, len(l.DNS))
			for i, a := range l.DNS {
				dns[i] = a.String()
			}
			fmt.Fprintf(w, "dns              %s\n", strings.Join(dns, " "))
		}
		if len(l.Search) > 0 {
			fmt.Fprintf(w, "dns-search       %s\n", strings.Join(l.Search, " "))
		}
		if len(l.NTP) > 0 {
			fmt.Fprintf(w, "ntp              %s\n", strings.Join(l.NTP, " "))
		}
	}
	if d := s.DHCPv6; d != nil {
		fmt.Fprintf(w, "dhcpv6           %d received (%d advertise, %d reply)\n", d.Received, d.Advertises, d.Replies)
		for _, k := range sortedKeys(d.Counters) {
			fmt.Fprintf(w, "dhcpv6-dropped   %-24s %d\n", k, d.Counters[k])
		}
		if d.Last != "" {
			fmt.Fprintf(w, "dhcpv6-last      %s %s\n", d.LastAt.Format(time.TimeOnly), d.Last)
		}
	}
	if b := s.Binding; b != nil {
		fmt.Fprintf(w, "bmr              %s\n", b.Rule)
		fmt.Fprintf(w, "ipv4             %s\n", b.IPv4)
		fmt.Fprintf(w, "psid             %d (0x%x), length %d, offset %d\n", b.PSID, b.PSID, b.PSIDLen, b.PSIDOffset)
		fmt.Fprintf(w, "ports            %s (%d ports)\n", portsText(b.Ports), b.PortCount)
		fmt.Fprintf(w, "map-address      %s\n", b.MAPAddress)
		fmt.Fprintf(w, "dmr              %s\n", b.DMR)
	}
	for _, r := range s.FMRs {
		fmt.Fprintf(w, "fmr              %s\n", r)
	}
	if s.AttachMode != "" {
		fmt.Fprintf(w, "attach-mode      %s\n", s.AttachMode)
	}
	// Zero counters are noise for people; --json has them all.
	for _, k := range sortedKeys(s.Counters) {
		if s.Counters[k] != 0 {
			fmt.Fprintf(w, "counter          %-24s %d\n", k, s.Counters[k])
		}
	}
	for _, e := range s.Events {
		fmt.Fprintf(w, "event            %s %s\n", e.Time.Format(time.TimeOnly), e.Message)
	}
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func portsText(p mapt.PortsJSON) string {
	out := ""
	for i, r := range p {
		if i == 3 && len(p) > 4 {
			out += fmt.Sprintf(" ... %d-%d", p[len(p)-1][0], p[len(p)-1][1])
			break
		}
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%d-%d", r[0], r[1])
	}
	return out
}
