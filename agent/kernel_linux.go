package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/internal/rpfilter"
	"github.com/mapt-go/mapt/nat"
)

// linuxKernel applies the CE's state in the agent's network namespace.
type linuxKernel struct {
	cfg Config
	log *slog.Logger
	h   *netlink.Handle
	nat *nat.NAT
	wan netlink.Link
	// xl is the translator, attached to uplinkIndex and the WAN. The
	// agent's loop sets it; counters reads it from the status socket's
	// goroutine, so both hold xlMu (setXL, dropXL).
	xlMu        sync.Mutex
	xl          *dataplane.Translator
	uplinkIndex int
	// pinDir is where xl is pinned ("" when it is not: no BPF filesystem,
	// or Config.PinRoot "-").
	pinDir string
}

func newKernel(cfg Config) (kernel, string, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // only rtnetlink: xfrm_user may be absent (OpenWrt without IPsec)
	if err != nil {
		return nil, "", fmt.Errorf("agent: netlink: %w", err)
	}
	wan := cfg.WAN
	if wan == "" {
		name, why, err := PickWAN(h)
		if err != nil {
			h.Close()
			return nil, "", err
		}
		cfg.Logger.Info("picked the WAN", "wan", name, "why", why)
		wan = name
	}
	// A WAN given by name may not exist yet (a PPPoE or VLAN device
	// comes up later); the agent waits for it.
	l, err := h.LinkByName(wan)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		l = nil
	case err != nil:
		h.Close()
		return nil, "", fmt.Errorf("agent: wan %q: %w", wan, err)
	}
	n, err := nat.Open(0, cfg.Logger)
	if err != nil {
		h.Close()
		return nil, "", fmt.Errorf("agent: %w", err)
	}
	cfg.WAN = wan
	return &linuxKernel{cfg: cfg, log: cfg.Logger, h: h, nat: n, wan: l, pinDir: pinDir(cfg, wan)}, wan, nil
}

// pinDir prepares the pin root and returns the translator's directory
// in it, or "" to run unpinned (said in the log: the translator then
// stops with the agent).
func pinDir(cfg Config, wan string) string {
	root, err := dataplane.PreparePinRoot(cfg.PinRoot)
	if err != nil {
		cfg.Logger.Warn("translator not pinned: it will stop with the agent", "err", err)
		return ""
	}
	if root == "" {
		return ""
	}
	return filepath.Join(root, dataplane.CEPinName(wan))
}

// uplinkMTU is the smaller of the WAN MTU and lowest-ipv6-mtu less 28
// bytes: the 20 an IPv6 header adds over an IPv4 one (RFC 7599 s10.1) and
// the 8 of the Fragment Header an IPv4 fragment gains in translation (RFC
// 7915 s5.1.1). So the stack fragments IPv4 packets with DF clear to
// pieces whose translations fit lowest-ipv6-mtu (RFC 7915 s4.1), and
// sends Fragmentation Needed for DF-set ones, before the translator would
// have to.
func (k *linuxKernel) uplinkMTU() int {
	if k.wan == nil {
		return 0
	}
	return capMTU(k.wan.Attrs().MTU, k.cfg.LowestIPv6MTU, k.cfg.UplinkMTU)
}

// refreshWAN re-reads the WAN device (after a link event: a new ifindex,
// a new MTU, the carrier).
func (k *linuxKernel) refreshWAN() (wanState, error) {
	l, err := k.h.LinkByName(k.cfg.WAN)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		k.wan = nil
		return wanState{}, nil
	}
	if err != nil {
		return wanState{}, fmt.Errorf("agent: wan %s: %w", k.cfg.WAN, err)
	}
	k.wan = l
	return linkState(l), nil
}

// linkState is the agent's view of a link.
func linkState(l netlink.Link) wanState {
	a := l.Attrs()
	return wanState{Present: true, Index: a.Index, MTU: a.MTU, Carrier: carrier(a.RawFlags)}
}

// carrier reports whether a device is up with its lower layer up
// (IFF_UP and IFF_LOWER_UP, RFC 2863 operational state as Linux keeps it).
func carrier(flags uint32) bool {
	return flags&unix.IFF_UP != 0 && flags&unix.IFF_LOWER_UP != 0
}

// detach drops the translator: the WAN device it was attached to is gone.
func (k *linuxKernel) detach() error {
	if err := k.dropXL(false); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

func (k *linuxKernel) apply(d, old *Desired, force bool) error {
	if k.wan == nil {
		return fmt.Errorf("agent: wan %s: the device does not exist (waiting for it)", k.cfg.WAN)
	}
	b := d.Binding
	mtu := k.uplinkMTU()
	up, err := ensureUplink(k.h, k.cfg.Uplink, mtu, b.IPv4.Addr(), !k.cfg.NoDefaultRoute)
	if err != nil {
		return err
	}
	// With InboundViaWAN the translator hands the packets from the MAP
	// domain to the stack on the WAN (dataplane ce_ingress): the WAN must
	// not filter them by reverse path, and nat must know it.
	nc := nat.FromBinding(b, k.cfg.Uplink, mtu)
	if k.cfg.InboundViaWAN {
		if c, err := rpfilter.Off(rpfilter.Conf, k.cfg.WAN); err != nil {
			return fmt.Errorf("agent: wan %s: %w (reverse-path filtering drops the translated packets from the MAP domain)", k.cfg.WAN, err)
		} else if c != nil {
			k.log.Warn("reverse-path filtering turned off on the WAN: translated packets from the MAP domain enter the IPv4 stack there, their route back is the uplink; other devices keep theirs",
				"sysctl", c.Key(), "was", c.Own, "all_was", c.All)
		}
		nc.WAN = k.cfg.WAN
	}
	changed, err := k.nat.Apply(nc)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if changed {
		k.log.Debug("nat table applied", "ipv4", b.IPv4, "ports", b.PortSet.String())
	}
	return k.applyTranslator(d, up.Attrs().Index, force)
}

// translatorConfig is the translator's configuration for d: the binding
// and rules, lowest-ipv6-mtu, the rate of its own ICMP errors, the DS
// field settings, and the stand-in nat uses for CEs sharing our address
// (nat.MeshAlias).
func (k *linuxKernel) translatorConfig(d *Desired) dataplane.Config {
	cfg := dataplane.Config{Mode: dataplane.CE, Binding: d.Binding, DMR: d.DMR, FMRs: d.FMRs,
		LowestIPv6MTU: k.cfg.LowestIPv6MTU, ICMPRate: k.cfg.ICMPRate, InboundViaUplink: !k.cfg.InboundViaWAN,
		TrafficClass: k.cfg.TrafficClass, TOS: k.cfg.TOS}
	if d.Binding.PortSet.Shared() {
		cfg.MeshAlias = nat.MeshAlias
	}
	return cfg
}

// applyTranslator loads and attaches the translator the first time, and
// afterwards only rewrites its maps (atomically for the packets). A new
// uplink device (another ifindex) or a forced re-apply re-attaches.
//
// A pinned translator is adopted where an earlier run (killed, or
// stopped with LeaveInPlace) left it, and re-attaching it keeps it on its
// hooks: neither a restart nor a forced re-apply interrupts the packets.
func (k *linuxKernel) applyTranslator(d *Desired, uplinkIndex int, force bool) error {
	if k.xl != nil && (force || uplinkIndex != k.uplinkIndex) {
		k.dropXL(k.pinDir != "") // a pinned one is adopted again below
	}
	if k.xl == nil {
		var xl *dataplane.Translator
		var err error
		if k.pinDir != "" {
			xl, err = dataplane.LoadPinned(k.translatorConfig(d), k.pinDir)
		} else {
			xl, err = dataplane.Load(k.translatorConfig(d))
		}
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		if err := xl.AttachCE(k.cfg.Uplink, k.cfg.WAN, dataplane.AttachMode(k.cfg.AttachMode)); err != nil {
			xl.Close()
			return fmt.Errorf("agent: %w", err)
		}
		adoption, why := xl.Adoption()
		k.log.Info("translator attached", "mode", xl.AttachMode(), "uplink", k.cfg.Uplink, "wan", k.cfg.WAN,
			"pinned", k.pinDir, "adoption", adoption, "why", why)
		k.setXL(xl, uplinkIndex)
		return nil
	}
	cfg := k.xl.Config()
	next := k.translatorConfig(d)
	cfg.Binding, cfg.DMR, cfg.FMRs, cfg.MeshAlias = next.Binding, next.DMR, next.FMRs, next.MeshAlias
	if err := k.xl.Update(cfg); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

func (k *linuxKernel) withdraw(old *Desired) error {
	var errs []error
	if err := k.dropXL(false); err != nil {
		errs = append(errs, err)
	}
	if err := k.nat.Teardown(); err != nil {
		errs = append(errs, err)
	}
	if err := removeUplink(k.h, k.cfg.Uplink); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// setXL makes xl the translator.
func (k *linuxKernel) setXL(xl *dataplane.Translator, uplinkIndex int) {
	k.xlMu.Lock()
	defer k.xlMu.Unlock()
	k.xl, k.uplinkIndex = xl, uplinkIndex
}

// dropXL lets go of the translator: leaves it in place (for adoption by a
// later load or run) or closes it, detaching it.
func (k *linuxKernel) dropXL(leave bool) error {
	k.xlMu.Lock()
	defer k.xlMu.Unlock()
	if k.xl == nil {
		return nil
	}
	var err error
	if leave {
		err = k.xl.LeaveInPlace()
	} else {
		err = k.xl.Close()
	}
	k.xl = nil
	return err
}

// counters reads the translator's counters; the status socket calls it
// from its own goroutine.
func (k *linuxKernel) counters() (map[string]uint64, string) {
	k.xlMu.Lock()
	defer k.xlMu.Unlock()
	if k.xl == nil {
		return nil, ""
	}
	c, err := k.xl.Counters()
	if err != nil {
		k.log.Warn("read counters", "err", err)
	}
	// New connections that found no free port of the set: NAT
	// exhaustion, otherwise visible only in conntrack's statistics.
	if k.nat != nil {
		if n, err := k.nat.InsertFailed(); err != nil {
			k.log.Warn("read conntrack statistics", "err", err)
		} else if c != nil {
			c[NATInsertFailed] = n
		}
	}
	return c, string(k.xl.AttachMode())
}

// NATInsertFailed is the status counter of new connections the NAT could
// not give a port (nat.NAT.InsertFailed): the port set is full for some
// destination.
const NATInsertFailed = "nat_insert_failed"

// close releases our handles. A translator still loaded (LeaveInPlace)
// stays attached when it can outlive us: pinned, or in clsact filters;
// unpinned TCX links end with the process.
func (k *linuxKernel) close() error {
	k.dropXL(true)
	k.h.Close()
	return k.nat.Close()
}
