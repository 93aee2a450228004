package savi

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/dataplane"
)

// counterNames follow enum reason in bpf/savi.c.
var counterNames = [...]string{"checked", "exempt", "no_route", "other_if", "other_mac", "unverified"}

// clsactPriority runs before the translator's filter (0x4d54).
const clsactPriority = 0x4d53

// Check is the loaded program.
type Check struct {
	objs   saviObjects
	detach []func() error
}

// Load loads the program (without attaching it).
func Load() (*Check, error) {
	if err := dataplane.CheckKernel(); err != nil {
		return nil, fmt.Errorf("savi: %w", err)
	}
	c := &Check{}
	if err := loadSaviObjects(&c.objs, nil); err != nil {
		return nil, fmt.Errorf("savi: load: %w", err)
	}
	return c, nil
}

// Attach hooks the check to dev's ingress, ahead of before (the
// translator's program on that hook): with TCX anchored before it, with
// clsact at a priority that runs first.
func (c *Check) Attach(dev string, before *ebpf.Program, mode dataplane.AttachMode) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("savi: %w", err)
	}
	if mode != dataplane.AttachClsact {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: c.objs.SaviIngress,
			Attach: ebpf.AttachTCXIngress, Anchor: link.BeforeProgram(before)})
		if err == nil {
			c.detach = append(c.detach, l.Close)
			return nil
		}
		if mode == dataplane.AttachTCX || !errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("savi: attach to %s: %w", dev, err)
		}
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifi.Index, Parent: netlink.HANDLE_MIN_INGRESS, Handle: 1,
			Priority: clsactPriority, Protocol: unix.ETH_P_ALL},
		Fd: c.objs.SaviIngress.FD(), Name: "mapt-savi", DirectAction: true,
	}
	// The translator's attach created the clsact qdisc.
	if err := netlink.FilterReplace(f); err != nil {
		return fmt.Errorf("savi: attach to %s (clsact): %w", dev, err)
	}
	c.detach = append(c.detach, func() error {
		if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			return err
		}
		return nil
	})
	return nil
}

// Counters returns the check's counts by reason, summed over CPUs.
func (c *Check) Counters() (map[string]uint64, error) {
	out := make(map[string]uint64, len(counterNames))
	for i, name := range counterNames {
		var per []uint64
		if err := c.objs.SaviCounters.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("savi: counters: %w", err)
		}
		for _, v := range per {
			out[name] += v
		}
	}
	return out, nil
}

// Release drops our handles for a stop that leaves the BR in place: a
// cls_bpf filter stays on its hook (the restart replaces it); a TCX link
// ends with them, and until the restart attaches the check again, CE
// packets go unchecked (none is lost).
func (c *Check) Release() error {
	c.detach = nil
	return c.objs.Close()
}

// Close detaches the program and releases it.
func (c *Check) Close() error {
	var errs []error
	for i := len(c.detach) - 1; i >= 0; i-- {
		errs = append(errs, c.detach[i]())
	}
	c.detach = nil
	errs = append(errs, c.objs.Close())
	return errors.Join(errs...)
}
