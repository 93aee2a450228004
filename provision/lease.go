package provision

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/mapt-go/mapt/mapt"
)

// Lease is a delegated prefix and the MAP-T domains that came with it.
// Lifetimes count from Obtained, the time the Reply arrived.
type Lease struct {
	Prefix     netip.Prefix
	Preferred  time.Duration
	Valid      time.Duration
	T1, T2     time.Duration
	Obtained   time.Time
	ServerID   []byte // DUID of the server that gave the lease
	ServerAddr netip.Addr
	Domains    []mapt.Domain
	Ignored    []string // why S46 containers were ignored (RFC 7598 s6, RFC 8026)
	// Mechanism is the softwire chosen (MechanismMAPT), or "" when none
	// was; S46Priority is the server's OPTION_S46_PRIORITY (RFC 8026 s3)
	// by name, most preferred first; Selection says how the choice was
	// made. See SelectS46.
	Mechanism   string   `json:",omitempty"`
	S46Priority []string `json:",omitempty"`
	Selection   string   `json:",omitempty"`
	// DNS, Search and NTP are the server's recursive DNS servers and
	// domain search list (RFC 3646 s3, s4) and NTP servers, addresses or
	// names (RFC 5908 s4), for the LAN. At most 16 of each.
	DNS    []netip.Addr `json:",omitempty"`
	Search []string     `json:",omitempty"`
	NTP    []string     `json:",omitempty"`
	// IgnoredOptions says which options of the answer were left out
	// because they did not decode or carried unsafe names.
	IgnoredOptions []string `json:",omitempty"`
}

// setOptions copies the options the client decodes itself (DNS, search
// list, NTP) into the lease.
func (l *Lease) setOptions(r *received) {
	l.DNS, l.Search, l.NTP = r.opts.dns, r.opts.search, r.opts.ntp
	l.IgnoredOptions = r.ignored
}

// RenewAt is when the client sends Renew (T1, RFC 8415 s18.2.4).
func (l *Lease) RenewAt() time.Time { return l.Obtained.Add(l.T1) }

// RebindAt is when the client sends Rebind (T2, RFC 8415 s18.2.5).
func (l *Lease) RebindAt() time.Time { return l.Obtained.Add(l.T2) }

// Expires is the end of the prefix's valid lifetime.
func (l *Lease) Expires() time.Time { return l.Obtained.Add(l.Valid) }

// SameBinding reports whether o delegates the same prefix with the same
// MAP-T domains: what the agent applies is then unchanged, whatever the
// lifetimes did.
func (l *Lease) SameBinding(o *Lease) bool {
	if l == nil || o == nil {
		return l == o
	}
	return l.Prefix == o.Prefix && reflect.DeepEqual(normDomains(l.Domains), normDomains(o.Domains))
}

func normDomains(d []mapt.Domain) []mapt.Domain {
	if len(d) == 0 {
		return nil
	}
	return d
}

// leaseFile and identityFile live in the state directory.
const (
	leaseFile    = "lease.json"
	identityFile = "identity.json"
)

// writeFileAtomic writes data so that a crash leaves either the old file
// or the new one, never a torn one: temporary file, fsync, rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return werr
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// SaveLease writes the lease to dir/lease.json atomically.
func SaveLease(dir string, l *Lease) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("provision: encode lease: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, leaseFile), b); err != nil {
		return fmt.Errorf("provision: save lease: %w", err)
	}
	return nil
}

// LoadLease reads dir/lease.json. It returns nil and no error when there
// is none.
func LoadLease(dir string) (*Lease, error) {
	b, err := os.ReadFile(filepath.Join(dir, leaseFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provision: load lease: %w", err)
	}
	var l Lease
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("provision: load lease %s: %w", filepath.Join(dir, leaseFile), err)
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("provision: load lease %s: %w", filepath.Join(dir, leaseFile), err)
	}
	return &l, nil
}

// maxLifetime is the largest lifetime a DHCPv6 message can carry
// (0xffffffff s, RFC 8415 s7.7: infinity).
const maxLifetime = 0xffffffff * time.Second

// validate checks what a lease read from disk must satisfy before the
// client resumes it and the agent applies it: the invariants of
// leaseFromMessage. A lease file is ours, but a torn write (or a hand
// edit) must give an error, not a bad binding.
func (l *Lease) validate() error {
	switch {
	case !l.Prefix.IsValid() || !l.Prefix.Addr().Is6() || l.Prefix.Addr().Is4In6() || l.Prefix != l.Prefix.Masked():
		return fmt.Errorf("prefix %v is not a masked IPv6 prefix", l.Prefix)
	case len(l.ServerID) == 0 || len(l.ServerID) > 130:
		return fmt.Errorf("server-id of %d bytes, want 1-130 (RFC 8415 s11.1)", len(l.ServerID))
	case l.Obtained.IsZero() || l.Obtained.Year() < 2000 || l.Obtained.Year() > 9999:
		return fmt.Errorf("obtained time %v", l.Obtained)
	case l.Valid <= 0 || l.Valid > maxLifetime || l.Preferred < 0 || l.Preferred > l.Valid:
		return fmt.Errorf("lifetimes preferred %v valid %v", l.Preferred, l.Valid)
	case l.T1 < 0 || l.T1 > l.T2 || l.T2 > l.Valid:
		return fmt.Errorf("timers T1 %v T2 %v valid %v", l.T1, l.T2, l.Valid)
	case len(l.DNS) > maxListed || len(l.Search) > maxListed || len(l.NTP) > maxListed:
		return errors.New("more than 16 DNS, search or NTP entries")
	}
	if l.ServerAddr.IsValid() && l.ServerAddr.Zone() != "" {
		return fmt.Errorf("server address %v has a zone", l.ServerAddr)
	}
	for i, d := range l.Domains {
		// What a container must hold (RFC 7598 s5.2): a rule and a DMR.
		if len(d.Rules) == 0 {
			return fmt.Errorf("domain %d: no rules", i+1)
		}
		if err := mapt.ValidateDMR(d.DMR); err != nil {
			return fmt.Errorf("domain %d: %w", i+1, err)
		}
		if err := d.Validate(); err != nil {
			return fmt.Errorf("domain %d: %w", i+1, err)
		}
	}
	for _, a := range l.DNS {
		if !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return fmt.Errorf("DNS server %v is not an IPv6 address", a)
		}
	}
	for _, name := range append(append([]string(nil), l.Search...), l.NTP...) {
		if _, err := netip.ParseAddr(name); err == nil {
			continue
		}
		if _, rest, err := readName(appendName(nil, name)); err != nil || len(rest) != 0 || strings.Contains(name, "..") || strings.HasSuffix(name, ".") {
			return fmt.Errorf("name %q: not a plain domain name", name)
		}
	}
	return nil
}

// RemoveLease deletes dir/lease.json, if any.
func RemoveLease(dir string) error {
	if err := os.Remove(filepath.Join(dir, leaseFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("provision: remove lease: %w", err)
	}
	return nil
}

// Identity is what the server knows the client by: its DUID and the IAID
// of its IA_PD (RFC 8415 s11, s12). Both must survive restarts, or the
// server hands out a new prefix.
type Identity struct {
	DUID []byte
	IAID [4]byte
}

// duid decodes the stored DUID.
func (id Identity) duid() (dhcpv6.DUID, error) {
	d, err := dhcpv6.DUIDFromBytes(id.DUID)
	if err != nil {
		return nil, fmt.Errorf("provision: duid %x: %w", id.DUID, err)
	}
	return d, nil
}

// newIdentity makes a DUID-LL from the interface's MAC (RFC 8415 s11.4),
// or a random DUID-UUID (RFC 6355) when it has none, and an IAID hashed
// from the interface name.
func newIdentity(ifname string, mac net.HardwareAddr) (Identity, error) {
	var d dhcpv6.DUID
	if len(mac) == 6 {
		d = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}
	} else {
		var u [16]byte
		if _, err := rand.Read(u[:]); err != nil {
			return Identity{}, fmt.Errorf("provision: generate duid: %w", err)
		}
		u[6] = u[6]&0x0f | 0x40 // version 4
		u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
		d = &dhcpv6.DUIDUUID{UUID: u}
	}
	h := fnv.New32a()
	h.Write([]byte(ifname))
	var id Identity
	id.DUID = d.ToBytes()
	binary.BigEndian.PutUint32(id.IAID[:], h.Sum32())
	return id, nil
}

// loadIdentity returns the identity persisted in dir, creating and saving
// it on first use. With no dir the identity is derived afresh each time,
// which is stable as long as the MAC is.
func loadIdentity(dir, ifname string, mac net.HardwareAddr) (Identity, error) {
	if dir == "" {
		return newIdentity(ifname, mac)
	}
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var id Identity
		if err := json.Unmarshal(b, &id); err != nil {
			return Identity{}, fmt.Errorf("provision: identity %s: %w", path, err)
		}
		if _, err := id.duid(); err != nil {
			return Identity{}, fmt.Errorf("provision: identity %s: %w", path, err)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Identity{}, fmt.Errorf("provision: identity: %w", err)
	}
	id, err := newIdentity(ifname, mac)
	if err != nil {
		return Identity{}, err
	}
	b, _ = json.MarshalIndent(id, "", "  ")
	if err := writeFileAtomic(path, b); err != nil {
		return Identity{}, fmt.Errorf("provision: save identity: %w", err)
	}
	return id, nil
}
