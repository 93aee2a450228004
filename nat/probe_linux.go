package nat

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// feature is one nftables part the table needs that a kernel may lack:
// an expression or chain type that lives in a module of its own.
type feature struct {
	name   string // what the error calls it
	module string // the Linux module
	kmod   string // the OpenWrt package that ships it
	// chain, when set, is the chain type to create; exprs the rule to
	// put in a plain chain otherwise.
	chain nftables.ChainType
	exprs []expr.Any
}

// nftFeatures are probed in this order, so that a missing nf_nat is named
// before the nat expression that needs it.
var nftFeatures = []feature{
	{name: "nat chains", module: "nft_chain_nat", kmod: "kmod-nft-nat", chain: nftables.ChainTypeNAT},
	{name: "the counter expression", module: "nft_counter", kmod: "kmod-nft-core", exprs: []expr.Any{&expr.Counter{}}},
	{name: "the numgen expression", module: "nft_numgen", kmod: "kmod-nft-core",
		exprs: []expr.Any{&expr.Numgen{Register: 1, Modulus: 2, Type: unix.NFT_NG_INCREMENTAL}}},
	{name: "the hash expression", module: "nft_hash", kmod: "kmod-nft-core",
		exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Hash{SourceRegister: 1, DestRegister: 1, Length: 4, Modulus: 2, Type: expr.HashTypeJenkins},
		}},
	{name: "the exthdr expression (TCP options, MSS clamping)", module: "nft_exthdr", kmod: "kmod-nft-core",
		exprs: []expr.Any{&expr.Exthdr{Op: expr.ExthdrOpTcpopt, Type: 2, Offset: 2, Len: 2, DestRegister: 1}}},
}

// probeTable is created and deleted within each probe's transaction.
const probeTable = "mapt-probe"

// missingFeature finds which part of the table the kernel lacks, after a
// transaction failed with ENOENT (how nf_tables says "unknown expression
// or chain type"). It returns nil when every probe passes.
func (n *NAT) missingFeature() error {
	for _, f := range nftFeatures {
		t := n.nft.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: probeTable})
		ch := &nftables.Chain{Name: "probe", Table: t}
		if f.chain != "" {
			ch.Type, ch.Hooknum, ch.Priority = f.chain, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource
		}
		n.nft.AddChain(ch)
		if f.exprs != nil {
			n.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: f.exprs})
		}
		n.nft.DelTable(t)
		if err := n.flushBatch(); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("nat: the kernel lacks nftables %s (module %s, OpenWrt package %s): %w", f.name, f.module, f.kmod, err)
			}
			return nil // something else; the caller reports the original error
		}
	}
	return nil
}
