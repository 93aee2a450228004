package provision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/mapt-go/mapt/s46"
)

// Why a received message does not give a lease.
var (
	// errNotForUs: a message to drop (another client's, no server-id, a
	// retryable server failure); the exchange goes on.
	errNotForUs = errors.New("not an answer for us")
	// errNoPrefix: the server has no prefix for us (NoPrefixAvail, or
	// every prefix has lifetime 0).
	errNoPrefix = errors.New("no prefix available")
	// errNoBinding: the server does not know our IA_PD (RFC 8415
	// s18.2.10.1); the client must send Request.
	errNoBinding = errors.New("server has no binding for the IA_PD")
)

// requestedOptions is the ORO (RFC 8415 s21.7) every message but Release
// carries: the MAP-T container (RFC 7598 s7: servers send containers only
// when asked) with the S46 priority option, which RFC 8026 s3 wants
// requested with the containers the client supports; the DNS servers and
// search list (RFC 3646) and NTP servers (RFC 5908) that the LAN needs now
// that no other DHCPv6 client runs on the WAN; and SOL_MAX_RT, which RFC
// 8415 s21.24 says every ORO must carry.
var requestedOptions = []dhcpv6.OptionCode{
	s46.OptionContMAPT, OptionS46Prio, OptionDNSServers, OptionDomainList, OptionNTPServer, dhcpv6.OptionSolMaxRT,
}

// maxElapsed is the largest elapsed-time value, in 1/100 s (RFC 8415
// s21.9: 0xffff means "longer than that").
const maxElapsed = 0xffff * 10 * time.Millisecond

// msgConfig is what the client's messages carry besides each exchange's
// own fields.
type msgConfig struct {
	oro         []dhcpv6.OptionCode // the ORO; requestedOptions plus ClientConfig.RequestOptions
	vendorClass []byte              // OPTION_VENDOR_CLASS payload (RFC 8415 s21.16), nil: none
	userClass   [][]byte            // OPTION_USER_CLASS items (RFC 8415 s21.15), nil: none
	rapidCommit bool                // Rapid Commit in Solicit (RFC 8415 s21.14)
}

// oro returns requestedOptions followed by extra, without duplicates.
func oro(extra []dhcpv6.OptionCode) []dhcpv6.OptionCode {
	out := append([]dhcpv6.OptionCode(nil), requestedOptions...)
	for _, c := range extra {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// buildMessage makes a client message. insomniacslk's constructors add an
// IA_NA and a time-based DUID; this one carries our stable DUID and one
// IA_PD (with the current prefix as a hint, or the binding to renew).
func buildMessage(typ dhcpv6.MessageType, xid dhcpv6.TransactionID, id Identity, elapsed time.Duration, serverID []byte, prefix netip.Prefix, mc msgConfig) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: typ, TransactionID: xid}
	m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionClientID, OptionData: id.DUID})
	if serverID != nil {
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionServerID, OptionData: serverID})
	}
	if typ != dhcpv6.MessageTypeRelease {
		m.AddOption(dhcpv6.OptRequestedOption(mc.oro...))
	}
	m.AddOption(dhcpv6.OptElapsedTime(min(elapsed, maxElapsed)))
	if mc.rapidCommit && typ == dhcpv6.MessageTypeSolicit {
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
	}
	if len(mc.userClass) > 0 {
		m.AddOption(&dhcpv6.OptUserClass{UserClasses: mc.userClass})
	}
	if len(mc.vendorClass) > 0 {
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionVendorClass, OptionData: mc.vendorClass})
	}
	pd := &dhcpv6.OptIAPD{IaId: id.IAID}
	if prefix.IsValid() {
		// Lifetimes 0: the server ignores them (RFC 8415 s18.2.4).
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 128)}})
	}
	m.AddOption(pd)
	return m
}

// statusError turns a non-success status code into an error.
func statusError(where string, sc *dhcpv6.OptStatusCode) error {
	if sc == nil || sc.StatusCode == iana.StatusSuccess {
		return nil
	}
	switch sc.StatusCode {
	case iana.StatusNoPrefixAvail:
		return fmt.Errorf("%s: %w: %s %q", where, errNoPrefix, sc.StatusCode, sc.StatusMessage)
	case iana.StatusNoBinding:
		return fmt.Errorf("%s: %w: %q", where, errNoBinding, sc.StatusMessage)
	}
	return fmt.Errorf("%s: status %s %q: %w", where, sc.StatusCode, sc.StatusMessage, errNotForUs)
}

// leaseFromMessage checks that an Advertise or Reply answers us and takes
// the lease from our IA_PD and the MAP-T containers from the message. The
// error wraps errNotForUs, errNoPrefix or errNoBinding.
func leaseFromMessage(m *dhcpv6.Message, id Identity, from netip.Addr, now time.Time) (*Lease, error) {
	cid := m.Options.GetOne(dhcpv6.OptionClientID)
	if cid == nil || !bytes.Equal(cid.ToBytes(), id.DUID) {
		return nil, fmt.Errorf("client-id does not match ours: %w", errNotForUs)
	}
	sid := m.Options.GetOne(dhcpv6.OptionServerID)
	if sid == nil || len(sid.ToBytes()) == 0 {
		return nil, fmt.Errorf("no server-id: %w", errNotForUs)
	}
	if err := statusError("message", m.Options.Status()); err != nil {
		return nil, err
	}
	var pd *dhcpv6.OptIAPD
	for _, p := range m.Options.IAPD() {
		if p.IaId == id.IAID {
			pd = p
			break
		}
	}
	if pd == nil {
		return nil, fmt.Errorf("no IA_PD with IAID %x: %w", id.IAID, errNoPrefix)
	}
	if err := statusError("IA_PD", pd.Options.Status()); err != nil {
		return nil, err
	}
	if pd.T1 > pd.T2 && pd.T2 > 0 {
		// RFC 8415 s21.21: such an IA_PD is discarded.
		return nil, fmt.Errorf("IA_PD T1 %s > T2 %s: %w", pd.T1, pd.T2, errNoPrefix)
	}
	l := &Lease{Obtained: now, ServerID: append([]byte(nil), sid.ToBytes()...), ServerAddr: from.WithZone("")}
	for _, p := range pd.Options.Prefixes() {
		if p.Prefix == nil || p.ValidLifetime == 0 || p.PreferredLifetime > p.ValidLifetime {
			continue // withdrawn or invalid (RFC 8415 s21.22)
		}
		if statusError("IAPREFIX", p.Options.Status()) != nil {
			continue
		}
		a, ok := netip.AddrFromSlice(p.Prefix.IP.To16())
		bits, _ := p.Prefix.Mask.Size()
		if !ok || a.Is4In6() {
			continue
		}
		l.Prefix = netip.PrefixFrom(a, bits).Masked()
		l.Preferred, l.Valid = p.PreferredLifetime, p.ValidLifetime
		break
	}
	if !l.Prefix.IsValid() {
		return nil, fmt.Errorf("IA_PD holds no usable prefix: %w", errNoPrefix)
	}
	// T1/T2 of 0 leave the times to the client; RFC 8415 s14.2 recommends
	// 0.5 and 0.8 of the preferred lifetime.
	l.T1, l.T2 = pd.T1, pd.T2
	if l.T1 == 0 {
		l.T1 = l.Preferred / 2
	}
	if l.T2 == 0 {
		l.T2 = l.Preferred / 5 * 4 // not *4 first: 0xffffffff s would overflow
	}
	l.T2 = min(l.T2, l.Valid)
	l.T1 = min(l.T1, l.T2)
	sel := SelectS46(m.Options.Options)
	l.Domains, l.Ignored = sel.Domains, sel.Ignored
	l.Mechanism, l.S46Priority, l.Selection = sel.Mechanism, sel.Priority, sel.Why
	return l, nil
}

// solMaxRT returns the server's SOL_MAX_RT (RFC 8415 s21.24) if the
// message carries a valid one.
func solMaxRT(m *dhcpv6.Message) (time.Duration, bool) {
	o := m.Options.GetOne(dhcpv6.OptionSolMaxRT)
	if o == nil {
		return 0, false
	}
	b := o.ToBytes()
	if len(b) != 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(b)
	if v < 60 || v > 86400 {
		return 0, false // out of range: ignored (s21.24)
	}
	return time.Duration(v) * time.Second, true
}

// preference is the server's preference value (RFC 8415 s21.8), 0 if
// absent.
func preference(m *dhcpv6.Message) uint8 {
	o := m.Options.GetOne(dhcpv6.OptionPreference)
	if o == nil {
		return 0
	}
	if b := o.ToBytes(); len(b) == 1 {
		return b[0]
	}
	return 0
}
