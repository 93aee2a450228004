package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/mapt-go/mapt/mapt"
)

// Status is what `ce-agent status` shows.
type Status struct {
	State      string             `json:"state"` // waiting, bound, expired, stopped
	WAN        string             `json:"wan"`
	Uplink     string             `json:"uplink"`
	Source     string             `json:"source"` // dhcpv6 or static
	Lease      *LeaseStatus       `json:"lease,omitempty"`
	Binding    *mapt.BindingJSON `json:"binding,omitempty"`
	FMRs       []string           `json:"fmrs,omitempty"`
	AttachMode string             `json:"attach_mode,omitempty"`
	Counters   map[string]uint64  `json:"counters,omitempty"`
	Events     []Event            `json:"events"`
	Since      time.Time          `json:"since"`
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
	counters := b.counters
	b.mu.Unlock()
	if counters != nil {
		s.Counters, s.AttachMode = counters()
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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			json.NewEncoder(c).Encode(b.snapshot())
			c.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	return func() {
		stop()
		l.Close()
		wg.Wait()
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
	fmt.Fprintf(w, "wan              %s\n", s.WAN)
	fmt.Fprintf(w, "uplink           %s\n", s.Uplink)
	if l := s.Lease; l != nil {
		fmt.Fprintf(w, "lease            %s from %s, renew %s, rebind %s, expires %s\n", l.Prefix, l.Server,
			l.Renew.Format(time.TimeOnly), l.Rebind.Format(time.TimeOnly), l.Expires.Format(time.TimeOnly))
		for _, why := range l.Ignored {
			fmt.Fprintf(w, "ignored          %s\n", why)
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
