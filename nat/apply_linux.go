package nat

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/mapt"
)

// ackBuffer is the netlink send and receive buffer size. A port set cut
// into 512 slots is a batch of more than 1000 messages, sent in one
// sendmsg (EMSGSIZE past the send buffer) and each acknowledged (ENOBUFS
// past the receive buffer; the default overflows at about 200).
const ackBuffer = 8 << 20

// NAT programs the SNAT table of one network namespace and cleans up the
// conntrack entries a change leaves behind.
//
// A NAT is not safe for concurrent use.
type NAT struct {
	netns int
	nft   *nftables.Conn
	ct    *conntrack.Conn
	log   *slog.Logger
}

// Open connects to nftables and conntrack in the network namespace netnsFD
// (0: the caller's). log may be nil.
func Open(netnsFD int, log *slog.Logger) (*NAT, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nft, err := dialNFT(netnsFD)
	if err != nil {
		return nil, err
	}
	ct, err := conntrack.Dial(&netlink.Config{NetNS: netnsFD})
	if err != nil {
		nft.CloseLasting()
		return nil, fmt.Errorf("nat: conntrack: %w", err)
	}
	return &NAT{netns: netnsFD, nft: nft, ct: ct, log: log}, nil
}

// dialNFT opens one netlink socket for all requests (half the time of a
// socket per request).
func dialNFT(netnsFD int) (*nftables.Conn, error) {
	nft, err := nftables.New(nftables.WithNetNSFd(netnsFD), nftables.AsLasting(), nftables.WithSockOptions(bigAckBuffer))
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return nil, fmt.Errorf("nat: the kernel lacks nfnetlink (CONFIG_NETFILTER_NETLINK, OpenWrt package kmod-nft-core): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("nat: nftables: %w", err)
	}
	return nft, nil
}

// flushBatch sends the queued transaction. After a failure the socket may
// still hold answers to the failed batch, so it is replaced.
func (n *NAT) flushBatch() error {
	err := n.nft.Flush()
	if err == nil {
		return nil
	}
	n.nft.CloseLasting()
	if nft, derr := dialNFT(n.netns); derr == nil {
		n.nft = nft
	} else {
		n.log.Warn("nat: cannot reopen nftables socket", "err", derr)
	}
	return err
}

// Close releases the netlink sockets; the table stays.
func (n *NAT) Close() error { return errors.Join(n.nft.CloseLasting(), n.ct.Close()) }

// bigAckBuffer makes room for a whole batch and its acknowledgements: each
// is capped to its header (NETLINK_CAP_ACK) and the buffers are forced
// past rmem_max/wmem_max, which CAP_NET_ADMIN may do.
func bigAckBuffer(c *netlink.Conn) error {
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		return fmt.Errorf("nat: netlink cap ack: %w", err)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ackBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, ackBuffer))
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("nat: netlink socket buffers: %w", serr)
	}
	return nil
}

// Apply programs cfg in one transaction: the old table, if any, is deleted
// and the new one created atomically, so packets never see a half-built
// rule set. When the kernel already holds exactly the rules for cfg, Apply
// sends nothing and returns changed = false. When it replaces another
// binding, the conntrack entries of ports and addresses cfg no longer owns
// are deleted afterwards.
func (n *NAT) Apply(cfg Config) (changed bool, err error) {
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	st, err := n.read()
	if err != nil {
		return false, err
	}
	same, err := n.matches(st, cfg)
	if err != nil {
		return false, err
	}
	if same {
		return false, nil
	}
	old, had, err := st.config()
	if err != nil {
		n.log.Warn("nat: cannot read the previous binding; its conntrack entries stay", "err", err)
		had = false
	}
	// Add-then-delete makes the delete valid whether or not the table
	// exists, inside the same batch.
	n.nft.AddTable(table())
	n.nft.DelTable(table())
	if err := build(n.nft, cfg); err != nil {
		// Drop the half-queued batch with its socket.
		n.nft.CloseLasting()
		if nft, derr := dialNFT(n.netns); derr == nil {
			n.nft = nft
		}
		return false, err
	}
	if err := n.flushBatch(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			if ferr := n.missingFeature(); ferr != nil {
				return false, ferr
			}
		}
		return false, fmt.Errorf("nat: apply %s: %w", cfg, err)
	}
	n.log.Info("nat: applied", "config", cfg.String(), "slots", len(cfg.chunks()))
	if had {
		if _, err := n.flush(old.Addr, cfg); err != nil {
			return true, err
		}
	}
	return true, nil
}

// Teardown deletes the table, and nothing else, then the conntrack entries
// of the address it translated to. It is not an error when the table does
// not exist.
func (n *NAT) Teardown() error {
	old, had, err := n.Current()
	if err != nil {
		had = false
	}
	if err != nil {
		n.log.Warn("nat: cannot read the binding being withdrawn; its conntrack entries stay", "err", err)
	}
	n.nft.AddTable(table())
	n.nft.DelTable(table())
	if err := n.flushBatch(); err != nil {
		return fmt.Errorf("nat: teardown: %w", err)
	}
	if had {
		if _, err := n.flush(old.Addr, Config{}); err != nil {
			return err
		}
	}
	return nil
}

// state is our table as the kernel holds it: each chain's rules.
type state struct {
	table *nftables.Table // nil: no table
	rules map[string][]*nftables.Rule
}

// read fetches our table, its chains and their rules.
func (n *NAT) read() (state, error) {
	t, err := n.nft.ListTableOfFamily(TableName, nftables.TableFamilyIPv4)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return state{}, nil
		}
		return state{}, fmt.Errorf("nat: read table: %w", err)
	}
	all, err := n.nft.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return state{}, fmt.Errorf("nat: read chains: %w", err)
	}
	st := state{table: t, rules: map[string][]*nftables.Rule{}}
	for _, ch := range all {
		if ch.Table.Name != TableName {
			continue
		}
		rules, err := n.nft.GetRules(t, ch)
		if err != nil {
			return state{}, fmt.Errorf("nat: read rules of %s: %w", ch.Name, err)
		}
		st.rules[ch.Name] = rules
	}
	return st, nil
}

// matches reports whether st is exactly what build writes for cfg, judged
// by the comment, which carries cfg's fingerprint, of every rule in every
// chain of the table, and by the size of the slot map.
func (n *NAT) matches(st state, cfg Config) (bool, error) {
	if st.table == nil {
		return false, nil
	}
	want := expectedComments(cfg)
	if len(st.rules) != len(want) {
		return false, nil
	}
	for name, rules := range st.rules {
		exp, ok := want[name]
		if !ok || len(rules) != len(exp) {
			return false, nil
		}
		for i, r := range rules {
			if got, _ := userdata.GetString(r.UserData, userdata.TypeComment); got != exp[i] {
				return false, nil
			}
		}
	}
	s, err := n.nft.GetSetByName(st.table, slotMapName)
	if err != nil {
		return false, nil
	}
	elems, err := n.nft.GetSetElements(s)
	if err != nil {
		return false, fmt.Errorf("nat: read slot map: %w", err)
	}
	return len(elems) == len(cfg.chunks()), nil
}

// Current reads back the binding the table translates to: the address and
// the port set from the slot chains, the uplink and the MTU from the other
// rules. ok is false when there is no table. An agent restarting after a
// crash uses it to adopt, and later clean up after, what it left behind.
// A set that contained port 0 reads back without it.
func (n *NAT) Current() (cfg Config, ok bool, err error) {
	st, err := n.read()
	if err != nil {
		return Config{}, false, err
	}
	return st.config()
}

func (st state) config() (cfg Config, ok bool, err error) {
	if st.table == nil {
		return Config{}, false, nil
	}
	var lo, hi netip.Addr
	for _, rules := range st.rules {
		for _, r := range rules {
			s := decodeRule(r.Exprs)
			switch {
			case s.dnat:
				cfg.MeshAlias = s.lo
			case s.nat && s.ports != nil:
				cfg.Ports = append(cfg.Ports, *s.ports)
				lo, hi = s.lo, s.hi
			case s.mss != 0:
				cfg.MTU = s.mss + 40
			}
			if s.oif != "" {
				cfg.Uplink = s.oif
			}
			if role, _ := userdata.GetString(r.UserData, userdata.TypeComment); strings.HasSuffix(role, " "+roleMSSInWAN) {
				cfg.WAN = s.iif
			}
		}
	}
	if !lo.IsValid() || len(cfg.Ports) == 0 {
		return Config{}, false, fmt.Errorf("nat: table %s holds no port set", TableName)
	}
	if !hi.IsValid() {
		hi = lo
	}
	cfg.Addr, err = rangePrefix(lo, hi)
	if err != nil {
		return Config{}, false, err
	}
	cfg.Ports = mergeRanges(cfg.Ports)
	return cfg, true, nil
}

// decoded is what Current needs from one rule.
type decoded struct {
	oif    string
	iif    string
	nat    bool
	dnat   bool
	lo, hi netip.Addr
	ports  *mapt.PortRange
	mss    int
}

func decodeRule(exprs []expr.Any) decoded {
	var d decoded
	regs := map[uint32][]byte{}
	// The device name a Cmp compares with goes to the field of the
	// meta key loaded just before it.
	var dev *string
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			switch e.Key {
			case expr.MetaKeyOIFNAME:
				dev = &d.oif
			case expr.MetaKeyIIFNAME:
				dev = &d.iif
			default:
				dev = nil
			}
		case *expr.Cmp:
			if dev != nil && e.Op == expr.CmpOpEq {
				*dev = cString(e.Data)
			}
			dev = nil
		case *expr.Immediate:
			regs[e.Register] = e.Data
		case *expr.Exthdr:
			if e.SourceRegister != 0 && len(regs[e.SourceRegister]) == 2 {
				d.mss = int(regs[e.SourceRegister][0])<<8 | int(regs[e.SourceRegister][1])
			}
		case *expr.NAT:
			d.nat = true
			d.dnat = e.Type == expr.NATTypeDestNAT
			d.lo, _ = netip.AddrFromSlice(regs[e.RegAddrMin])
			if e.RegAddrMax != 0 {
				d.hi, _ = netip.AddrFromSlice(regs[e.RegAddrMax])
			}
			pmin, pmax := regs[e.RegProtoMin], regs[e.RegProtoMax]
			if e.RegProtoMin != 0 && len(pmin) >= 2 && len(pmax) >= 2 {
				d.ports = &mapt.PortRange{First: uint16(pmin[0])<<8 | uint16(pmin[1]), Last: uint16(pmax[0])<<8 | uint16(pmax[1])}
			}
		}
	}
	return d
}

func cString(b []byte) string {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// rangePrefix turns an address range back into the prefix it was made of.
func rangePrefix(lo, hi netip.Addr) (netip.Prefix, error) {
	for bits := 32; bits >= 0; bits-- {
		p := netip.PrefixFrom(lo, bits)
		if p.Masked().Addr() != lo {
			break
		}
		if l, h := addrRange(p); l == lo && h == hi {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("nat: table %s: addresses %s-%s are no prefix", TableName, lo, hi)
}

// mergeRanges joins adjacent slots back into the ranges of the set.
func mergeRanges(in []mapt.PortRange) []mapt.PortRange {
	rs := sortedRanges(in)
	var out []mapt.PortRange
	for _, r := range rs {
		if len(out) > 0 && int(out[len(out)-1].Last)+1 == int(r.First) {
			out[len(out)-1].Last = r.Last
			continue
		}
		out = append(out, r)
	}
	return out
}

// flush deletes the conntrack entries translated to an address of old
// that next (zero when withdrawn) does not own with the entry's port or
// echo identifier: no flow may keep a port the CE no longer holds. It
// returns how many it deleted.
func (n *NAT) flush(old netip.Prefix, next Config) (int, error) {
	flows, err := n.ct.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("nat: conntrack dump: %w", err)
	}
	deleted := 0
	for _, f := range flows {
		dst := f.TupleReply.IP.DestinationAddress
		if !f.TupleOrig.IP.SourceAddress.Is4() || !old.Contains(dst) {
			continue
		}
		if next.Addr.IsValid() && keeps(next, f) {
			continue
		}
		if err := n.ct.Delete(f); err != nil && !errors.Is(err, syscall.ENOENT) {
			return deleted, fmt.Errorf("nat: conntrack delete: %w", err)
		}
		deleted++
	}
	n.log.Info("nat: flushed conntrack entries of the old binding", "addr", old, "deleted", deleted)
	return deleted, nil
}

// keeps reports whether next still owns the translated side of f.
func keeps(next Config, f conntrack.Flow) bool {
	dst := f.TupleReply.IP.DestinationAddress
	switch f.TupleOrig.Proto.Protocol {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_UDPLITE, unix.IPPROTO_SCTP, unix.IPPROTO_DCCP:
		return next.Owns(dst, f.TupleReply.Proto.DestinationPort)
	case unix.IPPROTO_ICMP:
		return next.Owns(dst, f.TupleReply.Proto.ICMPID)
	default:
		return next.Addr.Contains(dst)
	}
}
