package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AttachMode is how programs are hooked to a device.
type AttachMode string

const (
	// AttachAuto uses TCX where the kernel has it (6.6+) and clsact +
	// cls_bpf otherwise (OpenWrt 23.05 runs 5.15).
	AttachAuto AttachMode = ""
	// AttachTCX uses BPF links on the TCX hooks.
	AttachTCX AttachMode = "tcx"
	// AttachClsact uses a direct-action cls_bpf filter on a clsact qdisc.
	AttachClsact AttachMode = "clsact"
)

// attachment is one program on one hook.
type attachment interface {
	// detach takes the program off the hook (and removes its pin).
	detach() error
	// release drops our handles and leaves the program on the hook when
	// something else holds it there (a pin, a cls_bpf filter).
	release() error
}

// AttachCE hooks the CE programs to its devices in the caller's network
// namespace: 4->6 at the egress of the IPv4 uplink (after SNAT), 6->4 at
// the ingress of the WAN (before conntrack), and points the programs'
// redirects at those devices. An uplink without a link-layer address (a
// TUN device) gets its Ethernet header from the program.
func (t *Translator) AttachCE(uplink, wan string, mode AttachMode) error {
	if t.mode != CE {
		return fmt.Errorf("dataplane: attach ce: translator is %v", t.mode)
	}
	up, err := linkByName(uplink)
	if err != nil {
		return fmt.Errorf("dataplane: attach ce: uplink: %w", err)
	}
	w, err := linkByName(wan)
	if err != nil {
		return fmt.Errorf("dataplane: attach ce: wan: %w", err)
	}
	cfg := t.Config()
	cfg.IPv4Side, cfg.IPv6Side = up, w
	// Packets the CE translates to IPv4 go to the LAN, whose MTU is not
	// ours to know: the uplink's does not bound what errors report.
	cfg.IPv4Side.MTU = 0
	return t.attachAll("attach ce", cfg, mode, []hook{
		{t.name4to6(), "uplink", uplink, up.Ifindex, false},
		{t.name6to4(), "wan", wan, w.Ifindex, true},
	})
}

// AttachBR hooks the BR programs in the caller's network namespace: 6->4
// at the ingress of the IPv6-side device, 4->6 at the ingress of the
// IPv4-side device (they may be the same device), and, when local is not
// empty, br_local at the egress of local: a device without a link layer
// (TUN) to which the BR routes the DMR prefix and the CEs' IPv4 prefixes.
// What the BR's own stack sends there (Packet Too Big for a packet that
// outgrew the IPv6 link in translation, Time Exceeded for a CE's packet,
// the pieces of what it fragmented for br_ingress4) is translated and sent
// out of the other side.
func (t *Translator) AttachBR(v6dev, v4dev, local string, mode AttachMode) error {
	if t.mode != BR {
		return fmt.Errorf("dataplane: attach br: translator is %v", t.mode)
	}
	d6, err := linkByName(v6dev)
	if err != nil {
		return fmt.Errorf("dataplane: attach br: ipv6 side: %w", err)
	}
	d4, err := linkByName(v4dev)
	if err != nil {
		return fmt.Errorf("dataplane: attach br: ipv4 side: %w", err)
	}
	cfg := t.Config()
	cfg.IPv6Side, cfg.IPv4Side = d6, d4
	hooks := []hook{
		{t.name6to4(), "ipv6 side", v6dev, d6.Ifindex, true},
		{t.name4to6(), "ipv4 side", v4dev, d4.Ifindex, true},
	}
	if local != "" {
		if cfg.Local, err = linkByName(local); err != nil {
			return fmt.Errorf("dataplane: attach br: local device: %w", err)
		}
		hooks = append(hooks, hook{"br_local", "local", local, cfg.Local.Ifindex, false})
	}
	return t.attachAll("attach br", cfg, mode, hooks)
}

// hook is one program to put on one device's ingress or egress; role and
// name say which device, for errors.
type hook struct {
	prog       string
	role, name string
	ifindex    int
	ingress    bool
}

// attachAll writes cfg (the devices' indexes and link layers, which the
// programs' redirects need before the first packet) and then hooks each
// program in order. When one fails after others were hooked, Detach takes
// the translator's hooks off again (the callers attach a translator just
// loaded, so those are this call's), and the error names the device.
func (t *Translator) attachAll(op string, cfg Config, mode AttachMode, hooks []hook) error {
	if err := t.Update(cfg); err != nil {
		return err
	}
	for i, h := range hooks {
		if err := t.attach(h.prog, h.ifindex, h.ingress, mode); err != nil {
			if i > 0 {
				t.Detach()
			}
			dir := "egress"
			if h.ingress {
				dir = "ingress"
			}
			return fmt.Errorf("dataplane: %s: %s %s %s: %w", op, h.role, h.name, dir, err)
		}
	}
	return nil
}

// linkByName is linkOf of the device called name.
func linkByName(name string) (Link, error) {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return Link{}, err
	}
	return linkOf(i)
}

// linkOf describes a device for the programs, refusing the kinds they
// cannot handle: an Ethernet device (the programs see the MAC header and
// send through the neighbour table), or one without link layer (TUN,
// PPP, raw-IP modems, IP tunnels: bare IP packets, sent as they are).
func linkOf(i *net.Interface) (Link, error) {
	l := Link{Ifindex: i.Index, MTU: i.MTU}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return l, err
	}
	defer h.Close()
	nl, err := h.LinkByIndex(i.Index)
	if err != nil {
		return l, fmt.Errorf("%s: %w", i.Name, err)
	}
	switch t := nl.Attrs().EncapType; t {
	case "ether":
	case "none", "ppp", "unknown519", "ipip", "tunnel6", "sit", "gre", "ip6gre":
		// 519 is ARPHRD_RAWIP (wwan, qmi_wwan), which netlink does not name.
		l.L3 = true
	default:
		return l, fmt.Errorf("%s is a %s device: the translator handles Ethernet devices and devices without link layer (TUN, PPP, raw IP, IP tunnels)", i.Name, t)
	}
	return l, nil
}

// attach hooks the program name to a device. A pinned translator finds
// its link of an earlier run in the pin directory: on the same hook it is
// kept (its program replaced atomically when ours differs), elsewhere (a
// device that went away) a new link replaces it. Whatever an earlier run
// left on the other kind of hook (a cls_bpf filter when we attach with
// TCX, a pinned link when with clsact) goes once ours is in place.
func (t *Translator) attach(name string, ifindex int, ingress bool, mode AttachMode) error {
	prog := t.coll.Programs[name]
	if prog == nil {
		return fmt.Errorf("no program %s in the %s object", name, t.mode)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pin := ""
	if t.pin != nil {
		pin = t.pin.linkPath(name)
	}
	if mode == AttachAuto || mode == AttachTCX {
		a, err := attachTCX(prog, ifindex, ingress, pin)
		if err == nil {
			t.attached = append(t.attached, a)
			t.attachMode = AttachTCX
			if pin != "" {
				dropClsact(prog, ifindex, ingress)
			}
			return nil
		}
		if mode == AttachTCX && errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("dataplane: attach mode tcx: %w (attach mode clsact works from Linux %s)",
				&KernelError{Feature: "TCX hooks", Since: "6.6", Err: err}, MinKernel)
		}
		if mode == AttachTCX || !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
	} else if mode != AttachClsact {
		return fmt.Errorf("unknown attach mode %q", mode)
	}
	a, err := attachClsact(prog, ifindex, ingress, clsactPrio)
	if err != nil {
		return err
	}
	t.attached = append(t.attached, a)
	t.attachMode = AttachClsact
	if pin != "" {
		dropPinnedLink(pin)
	}
	return nil
}

// name4to6 and name6to4 are the programs of Prog4to6 and Prog6to4.
func (t *Translator) name4to6() string {
	if t.mode == CE {
		return "ce_egress"
	}
	return "br_ingress4"
}

func (t *Translator) name6to4() string {
	if t.mode == CE {
		return "ce_ingress"
	}
	return "br_ingress6"
}

// AttachMode reports how the programs are attached ("" when they are not).
func (t *Translator) AttachMode() AttachMode {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attachMode
}

// Detach removes every hook this translator added, and only those.
func (t *Translator) Detach() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for i := len(t.attached) - 1; i >= 0; i-- {
		if err := t.attached[i].detach(); err != nil {
			errs = append(errs, err)
		}
	}
	t.attached = nil
	t.attachMode = AttachAuto
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dataplane: detach: %w", err)
	}
	return nil
}
