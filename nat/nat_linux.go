package nat

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/mapt"
)

// TableName is the nftables table the package owns, in family ip. Nothing
// else in it is preserved: Apply replaces it and Teardown deletes it.
const TableName = "mapt"

// slotMapName is the verdict map from round-robin slot to slot chain.
const slotMapName = "slots"

// Chain and set names inside the table.
const (
	chainNAT     = "postrouting"
	chainMSS     = "forward"
	chainClamp   = "mss-clamp"
	chainMeshIn  = "mesh-prerouting"
	chainMeshOut = "mesh-output"
	setPorts     = "ports"
)

// commentPrefix starts the comment of every rule we write; the rest of the
// comment is the fingerprint of the configuration and the rule's role.
const commentPrefix = "mapt "

// formatVersion changes whenever the generated rule set changes shape, so
// that an agent upgrade replaces the table of an older one.
const formatVersion = "5"

// Buckets is the number of round-robin counters per protocol. A flow's
// destination (address and port; the address for ICMP) hashes to one of
// them, so flows to one destination share their counter only with the
// destinations that hash alike, not with all traffic.
const Buckets = 16

// bucketSeed is the jhash seed of the bucket choice. It is fixed so that
// the rule set, and its fingerprint, depend on the configuration only.
const bucketSeed = 0x6d617074 // "mapt"

// Port-carrying protocols, each with its own counters: a separate numgen
// per protocol keeps, say, DNS over UDP from shifting where the next TCP
// connection lands. The key is what NAT uniqueness depends on besides the
// translated port: destination address and port, or for ICMP echo the
// destination address alone.
var portProtos = []struct {
	tag    string
	proto  []byte
	byPort bool // the bucket key includes the destination port
}{
	{"tcp", []byte{unix.IPPROTO_TCP}, true},
	{"udp", []byte{unix.IPPROTO_UDP}, true},
	{"icmp", []byte{unix.IPPROTO_ICMP}, false},
	{"udplite-sctp-dccp", []byte{unix.IPPROTO_UDPLITE, unix.IPPROTO_SCTP, unix.IPPROTO_DCCP}, true},
}

// bucketChain names the chain holding one round-robin counter.
func bucketChain(tag string, k int) string { return fmt.Sprintf("%s-rr-%d", tag, k) }

// bucketMap names a protocol's verdict map from bucket to counter chain.
func bucketMap(tag string) string { return tag + "-buckets" }

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
}

// fingerprint identifies a configuration together with the format of the
// rules generated for it.
func fingerprint(c Config) string {
	h := sha256.New()
	fmt.Fprintf(h, "v%s|%s|%s|%d|%s|", formatVersion, c.Uplink, c.Addr, c.MTU, c.MeshAlias)
	if c.WAN != "" {
		fmt.Fprintf(h, "wan %s|", c.WAN)
	}
	for _, r := range sortedRanges(c.Ports) {
		fmt.Fprintf(h, "%d-%d,", r.First, r.Last)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// roleMSSInWAN is the role of the clamp rule for SYNs from the WAN, by
// which Current reads the WAN's name back.
const roleMSSInWAN = "mss-in-wan"

func comment(fp, role string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, commentPrefix+fp+" "+role)
}

// ifname is the 16-byte, NUL-padded form the meta iifname/oifname
// expressions load.
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func addrRange(p netip.Prefix) (netip.Addr, netip.Addr) {
	lo := p.Masked().Addr()
	a := lo.As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])|host)
	return lo, netip.AddrFrom4(a)
}

// slotChain names the chain that translates into one slot of the port set.
func slotChain(r mapt.PortRange) string { return fmt.Sprintf("ports-%d-%d", r.First, r.Last) }

// snat is the statement "snat to addr[-addr][:first-last]" in registers
// 1-4.
func snat(addr netip.Prefix, ports *mapt.PortRange) []expr.Any {
	lo, hi := addrRange(addr)
	x := &expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}
	out := []expr.Any{&expr.Immediate{Register: 1, Data: lo.AsSlice()}}
	if lo != hi {
		out = append(out, &expr.Immediate{Register: 2, Data: hi.AsSlice()})
		x.RegAddrMax = 2
	}
	if ports != nil {
		out = append(out,
			&expr.Immediate{Register: 3, Data: binaryutil.BigEndian.PutUint16(ports.First)},
			&expr.Immediate{Register: 4, Data: binaryutil.BigEndian.PutUint16(ports.Last)},
		)
		x.RegProtoMin, x.RegProtoMax, x.Specified = 3, 4, true
	}
	return append(out, x)
}

// build queues the whole table for cfg on c: the caller flushes it as one
// transaction.
func build(c *nftables.Conn, cfg Config) error {
	fp := fingerprint(cfg)
	t := c.AddTable(table())
	nat := c.AddChain(&nftables.Chain{
		Name: chainNAT, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	oif := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(cfg.Uplink)},
	}
	// A binding without port sharing owns all of its addresses' ports:
	// LAN hosts that hold an address of its prefix (RFC 7597 s5.2: the
	// prefix is the CE's to route) and the router itself pass unchanged.
	if !cfg.shared() {
		c.AddRule(&nftables.Rule{Table: t, Chain: nat, UserData: comment(fp, "own"), Exprs: append(append([]expr.Any{}, oif...),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net4Mask(cfg.Addr.Bits()), Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: cfg.Addr.Masked().Addr().AsSlice()},
			&expr.Verdict{Kind: expr.VerdictAccept},
		)})
	}
	// One regular chain per slot; the round-robin rules jump to them.
	chunks := cfg.chunks()
	slots := make([]*nftables.Chain, len(chunks))
	for i, ch := range chunks {
		slots[i] = c.AddChain(&nftables.Chain{Name: slotChain(ch), Table: t})
		c.AddRule(&nftables.Rule{Table: t, Chain: slots[i], Exprs: snat(cfg.Addr, &ch), UserData: comment(fp, "slot")})
	}
	// One named map shared by the per-protocol rules; each rule has its
	// own counter. Named, not anonymous, so that the key keeps host byte
	// order (numgen's) and nft lists it readably.
	slotMap := &nftables.Set{
		Table: t, Name: slotMapName, IsMap: true,
		KeyType: nftables.TypeInteger, KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict,
	}
	elems := make([]nftables.SetElement, len(chunks))
	for i := range chunks {
		elems[i] = nftables.SetElement{
			Key:         binaryutil.NativeEndian.PutUint32(uint32(i)),
			VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: slots[i].Name},
		}
	}
	// Elements go in several messages: one netlink attribute holds at
	// most 64 KiB, about 1000 verdict elements.
	if err := c.AddSet(slotMap, nil); err != nil {
		return fmt.Errorf("nat: slot map: %w", err)
	}
	for len(elems) > 0 {
		n := min(len(elems), 256)
		if err := c.SetAddElements(slotMap, elems[:n]); err != nil {
			return fmt.Errorf("nat: slot map: %w", err)
		}
		elems = elems[n:]
	}
	for _, p := range portProtos {
		// Counter chains: "numgen inc mod N vmap @slots".
		bmap := &nftables.Set{
			Table: t, Name: bucketMap(p.tag), IsMap: true,
			KeyType: nftables.TypeInteger, KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict,
		}
		if err := c.AddSet(bmap, nil); err != nil {
			return fmt.Errorf("nat: bucket map: %w", err)
		}
		belems := make([]nftables.SetElement, Buckets)
		for k := range Buckets {
			ch := c.AddChain(&nftables.Chain{Name: bucketChain(p.tag, k), Table: t})
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: comment(fp, "rr"), Exprs: []expr.Any{
				&expr.Numgen{Register: 1, Modulus: uint32(len(chunks)), Type: unix.NFT_NG_INCREMENTAL},
				&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetID: slotMap.ID, SetName: slotMap.Name},
			}})
			belems[k] = nftables.SetElement{
				Key:         binaryutil.NativeEndian.PutUint32(uint32(k)),
				VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: ch.Name},
			}
		}
		if err := c.SetAddElements(bmap, belems); err != nil {
			return fmt.Errorf("nat: bucket map: %w", err)
		}

		exprs := append([]expr.Any{}, oif...)
		exprs = append(exprs, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})
		if len(p.proto) == 1 {
			exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.proto})
		} else {
			s := &nftables.Set{Table: t, Anonymous: true, Constant: true, KeyType: nftables.TypeInetProto}
			var el []nftables.SetElement
			for _, b := range p.proto {
				el = append(el, nftables.SetElement{Key: []byte{b}})
			}
			if err := c.AddSet(s, el); err != nil {
				return fmt.Errorf("nat: protocol set: %w", err)
			}
			exprs = append(exprs, &expr.Lookup{SourceRegister: 1, SetID: s.ID, SetName: s.Name})
		}
		// jhash over "ip daddr . th dport" (4 + 4 bytes: the payload
		// load zeroes the port's register padding) or "ip daddr".
		keyLen := uint32(4)
		exprs = append(exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4})
		if p.byPort {
			exprs = append(exprs, &expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			keyLen = 8
		}
		exprs = append(exprs,
			&expr.Hash{SourceRegister: 1, DestRegister: 1, Length: keyLen, Modulus: Buckets, Seed: bucketSeed, Type: expr.HashTypeJenkins},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetID: bmap.ID, SetName: bmap.Name},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: exprs, UserData: comment(fp, p.tag)})
	}
	// Everything else (GRE, ESP, ...) has no port the kernel could map:
	// address-only SNAT.
	c.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: append(append([]expr.Any{}, oif...), snat(cfg.Addr, nil)...), UserData: comment(fp, "other")})

	if cfg.MeshAlias.IsValid() {
		ports, err := portSet(c, t, cfg)
		if err != nil {
			return err
		}
		if err := mesh(c, t, cfg, fp, ports); err != nil {
			return err
		}
	}

	// MSS clamping of forwarded SYNs in both directions, so that neither
	// end sends segments the uplink cannot carry. Every forwarded packet
	// passes the forward chain: its one rule tests what is cheapest to
	// test and rarest to match first (a TCP SYN), and only SYNs jump to
	// the clamp, which compares device names.
	mss := c.AddChain(&nftables.Chain{
		Name: chainMSS, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityMangle,
	})
	clamp := c.AddChain(&nftables.Chain{Name: chainClamp, Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: mss, UserData: comment(fp, "mss"), Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x06}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chainClamp},
	}})
	val := binaryutil.BigEndian.PutUint16(uint16(cfg.MSS()))
	type clampDir struct {
		key  expr.MetaKey
		dev  string
		role string
	}
	dirs := []clampDir{{expr.MetaKeyOIFNAME, cfg.Uplink, "mss-out"}, {expr.MetaKeyIIFNAME, cfg.Uplink, "mss-in"}}
	if cfg.WAN != "" {
		dirs = append(dirs, clampDir{expr.MetaKeyIIFNAME, cfg.WAN, roleMSSInWAN})
	}
	for _, dir := range dirs {
		c.AddRule(&nftables.Rule{Table: t, Chain: clamp, UserData: comment(fp, dir.role), Exprs: []expr.Any{
			&expr.Meta{Key: dir.key, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(dir.dev)},
			&expr.Exthdr{Op: expr.ExthdrOpTcpopt, Type: 2, Offset: 2, Len: 2, DestRegister: 1},
			&expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: val},
			&expr.Immediate{Register: 1, Data: val},
			&expr.Exthdr{Op: expr.ExthdrOpTcpopt, Type: 2, Offset: 2, Len: 2, SourceRegister: 1},
		}})
	}
	return nil
}

// portSet adds the interval set of the ports of the set, for the mesh
// rules.
//
// Nothing here checks what leaves the uplink: packets conntrack does not
// translate (invalid or untracked: an ICMP error for no known connection,
// a notrack rule elsewhere) keep their LAN address or port, and the CE
// translator, the one place they must pass to leave, drops and counts
// them (dataplane counter src_not_ours). An nftables guard doing the same
// after NAT cost every packet three more rules (issue 15, bench/results).
func portSet(c *nftables.Conn, t *nftables.Table, cfg Config) (*nftables.Set, error) {
	ports := &nftables.Set{Table: t, Name: setPorts, Interval: true, KeyType: nftables.TypeInetService}
	var elems []nftables.SetElement
	for _, r := range mergeRanges(cfg.chunks()) {
		elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.First)})
		if r.Last < 65535 {
			elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.Last + 1), IntervalEnd: true})
		}
	}
	if err := c.AddSet(ports, nil); err != nil {
		return nil, fmt.Errorf("nat: port set: %w", err)
	}
	for len(elems) > 0 {
		n := min(len(elems), 512)
		if err := c.SetAddElements(ports, elems[:n]); err != nil {
			return nil, fmt.Errorf("nat: port set: %w", err)
		}
		elems = elems[n:]
	}
	return ports, nil
}

// mesh DNATs packets to our own address with a port of another CE that
// shares it to the mesh alias (RFC 7599 s8.1: the port picks the CE), from
// the LAN (prerouting) and from the router itself (output), so that they
// leave by the uplink to be translated to that CE instead of being
// delivered here. Ports of our own set stay ours: the router's services
// and port forwards keep them. ports is portSet's.
func mesh(c *nftables.Conn, t *nftables.Table, cfg Config, fp string, ports *nftables.Set) error {
	// An anonymous set binds to one rule: each rule gets its own.
	match := func() ([]expr.Any, error) {
		protos := &nftables.Set{Table: t, Anonymous: true, Constant: true, KeyType: nftables.TypeInetProto}
		var pe []nftables.SetElement
		for _, p := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_UDPLITE, unix.IPPROTO_SCTP, unix.IPPROTO_DCCP} {
			pe = append(pe, nftables.SetElement{Key: []byte{p}})
		}
		if err := c.AddSet(protos, pe); err != nil {
			return nil, fmt.Errorf("nat: mesh protocol set: %w", err)
		}
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: cfg.Addr.Addr().AsSlice()},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetID: protos.ID, SetName: protos.Name},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetID: ports.ID, SetName: ports.Name, Invert: true},
			&expr.Immediate{Register: 1, Data: cfg.MeshAlias.AsSlice()},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		}, nil
	}
	in := c.AddChain(&nftables.Chain{
		Name: chainMeshIn, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
	})
	m, err := match()
	if err != nil {
		return err
	}
	// From the LAN: neither from the uplink nor, translated, from the WAN.
	notMAP := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(cfg.Uplink)},
	}
	if cfg.WAN != "" {
		notMAP = append(notMAP, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(cfg.WAN)})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: in, UserData: comment(fp, "mesh"), Exprs: append(notMAP, m...)})
	out := c.AddChain(&nftables.Chain{
		Name: chainMeshOut, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
	})
	if m, err = match(); err != nil {
		return err
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: out, UserData: comment(fp, "mesh"), Exprs: m})
	return nil
}

func net4Mask(bits int) []byte {
	m := make([]byte, 4)
	binary.BigEndian.PutUint32(m, ^uint32(0)<<(32-bits))
	return m
}

// expectedComments lists, chain by chain, the comments build writes.
func expectedComments(cfg Config) map[string][]string {
	fp := fingerprint(cfg)
	var nat []string
	if !cfg.shared() {
		nat = append(nat, commentPrefix+fp+" own")
	}
	for _, p := range portProtos {
		nat = append(nat, commentPrefix+fp+" "+p.tag)
	}
	nat = append(nat, commentPrefix+fp+" other")
	want := map[string][]string{
		chainNAT:   nat,
		chainMSS:   {commentPrefix + fp + " mss"},
		chainClamp: {commentPrefix + fp + " mss-out", commentPrefix + fp + " mss-in"},
	}
	if cfg.WAN != "" {
		want[chainClamp] = append(want[chainClamp], commentPrefix+fp+" "+roleMSSInWAN)
	}
	if cfg.MeshAlias.IsValid() {
		want[chainMeshIn] = []string{commentPrefix + fp + " mesh"}
		want[chainMeshOut] = []string{commentPrefix + fp + " mesh"}
	}
	for _, ch := range cfg.chunks() {
		want[slotChain(ch)] = []string{commentPrefix + fp + " slot"}
	}
	for _, p := range portProtos {
		for k := range Buckets {
			want[bucketChain(p.tag, k)] = []string{commentPrefix + fp + " rr"}
		}
	}
	return want
}
