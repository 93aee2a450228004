package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
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
	detach() error
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
	up, err := net.InterfaceByName(uplink)
	if err != nil {
		return fmt.Errorf("dataplane: attach ce: uplink: %w", err)
	}
	w, err := net.InterfaceByName(wan)
	if err != nil {
		return fmt.Errorf("dataplane: attach ce: wan: %w", err)
	}
	cfg := t.Config()
	cfg.UplinkIfindex = up.Index
	cfg.WANIfindex = w.Index
	cfg.WANMTU = w.MTU
	cfg.UplinkL3 = len(up.HardwareAddr) == 0
	if err := t.Update(cfg); err != nil {
		return err
	}
	if err := t.attach(t.Prog4to6(), up.Index, false, mode); err != nil {
		return fmt.Errorf("dataplane: attach ce: uplink %s egress: %w", uplink, err)
	}
	if err := t.attach(t.Prog6to4(), w.Index, true, mode); err != nil {
		t.Detach()
		return fmt.Errorf("dataplane: attach ce: wan %s ingress: %w", wan, err)
	}
	return nil
}

// AttachBR hooks the BR programs in the caller's network namespace: 6->4
// at the ingress of the IPv6-side device, 4->6 at the ingress of the
// IPv4-side device (they may be the same device).
func (t *Translator) AttachBR(v6dev, v4dev string, mode AttachMode) error {
	if t.mode != BR {
		return fmt.Errorf("dataplane: attach br: translator is %v", t.mode)
	}
	d6, err := net.InterfaceByName(v6dev)
	if err != nil {
		return fmt.Errorf("dataplane: attach br: ipv6 side: %w", err)
	}
	d4, err := net.InterfaceByName(v4dev)
	if err != nil {
		return fmt.Errorf("dataplane: attach br: ipv4 side: %w", err)
	}
	// br_local sends what it translates out of these devices.
	cfg := t.Config()
	cfg.WANIfindex = d6.Index
	cfg.UplinkIfindex = d4.Index
	// With br_local attached, what would not fit the IPv6 side with DF
	// clear is fragmented by the stack first (br_ingress4).
	cfg.WANMTU = d6.MTU
	if err := t.Update(cfg); err != nil {
		return err
	}
	if err := t.attach(t.Prog6to4(), d6.Index, true, mode); err != nil {
		return fmt.Errorf("dataplane: attach br: %s ingress: %w", v6dev, err)
	}
	if err := t.attach(t.Prog4to6(), d4.Index, true, mode); err != nil {
		t.Detach()
		return fmt.Errorf("dataplane: attach br: %s ingress: %w", v4dev, err)
	}
	return nil
}

// AttachBRLocal hooks br_local to the egress of dev, a device without a
// link layer (TUN) to which the BR routes the DMR prefix and the CEs' IPv4
// prefixes. What the BR's own stack sends there (Packet Too Big for a
// packet that outgrew the IPv6 link in translation, Time Exceeded for a
// CE's packet) is translated and sent out of the devices given to
// AttachBR, which must come first.
func (t *Translator) AttachBRLocal(dev string, mode AttachMode) error {
	if t.mode != BR {
		return fmt.Errorf("dataplane: attach br local: translator is %v", t.mode)
	}
	d, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("dataplane: attach br local: %w", err)
	}
	cfg := t.Config()
	if cfg.WANIfindex == 0 || cfg.UplinkIfindex == 0 {
		return fmt.Errorf("dataplane: attach br local: call AttachBR first")
	}
	cfg.UplinkL3 = len(d.HardwareAddr) == 0
	if err := t.Update(cfg); err != nil {
		return err
	}
	if err := t.attach(t.coll.Programs["br_local"], d.Index, false, mode); err != nil {
		return fmt.Errorf("dataplane: attach br local: %s egress: %w", dev, err)
	}
	return nil
}

func (t *Translator) attach(prog *ebpf.Program, ifindex int, ingress bool, mode AttachMode) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if mode == AttachAuto || mode == AttachTCX {
		a, err := attachTCX(prog, ifindex, ingress)
		if err == nil {
			t.attached = append(t.attached, a)
			t.attachMode = AttachTCX
			return nil
		}
		if mode == AttachTCX || !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
	} else if mode != AttachClsact {
		return fmt.Errorf("unknown attach mode %q", mode)
	}
	a, err := attachClsact(prog, ifindex, ingress)
	if err != nil {
		return err
	}
	t.attached = append(t.attached, a)
	t.attachMode = AttachClsact
	return nil
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
