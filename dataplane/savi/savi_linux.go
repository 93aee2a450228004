package savi

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mapt-go/mapt/dataplane"
)

// clsactPriority runs before the translator's filter (0x4d54).
const clsactPriority = 0x4d53

// Check is the loaded program.
type Check struct {
	objs saviObjects
	// names are the counters, from enum reason in bpf/savi.c.
	names  []string
	detach []func() error
	// release lets go of what detach would remove (Release).
	release []func() error
}

// Load loads the program (without attaching it).
func Load() (*Check, error) {
	if err := dataplane.CheckKernel(); err != nil {
		return nil, fmt.Errorf("savi: %w", err)
	}
	spec, err := loadSavi()
	if err != nil {
		return nil, fmt.Errorf("savi: load: %w", err)
	}
	c := &Check{}
	if c.names, err = dataplane.EnumNames(spec, "reason", "R_"); err != nil {
		return nil, fmt.Errorf("savi: %w", err)
	}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		return nil, fmt.Errorf("savi: load: %w", err)
	}
	return c, nil
}

// Attach hooks the check to dev's ingress, ahead of before (the
// translator's program on that hook): with TCX anchored before it, with
// clsact at a priority that runs first.
func (c *Check) Attach(dev string, before *ebpf.Program, mode dataplane.AttachMode) error {
	return c.AttachPinned(dev, before, mode, "")
}

// AttachPinned is Attach with the TCX link pinned at pin (a file on a BPF
// filesystem), so that the check goes on while the BR is away, and a link
// an earlier run pinned there is taken over: its program is replaced by
// ours in place (BPF_LINK_UPDATE), ahead of the translator as it was.
func (c *Check) AttachPinned(dev string, before *ebpf.Program, mode dataplane.AttachMode, pin string) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("savi: %w", err)
	}
	if mode != dataplane.AttachClsact {
		if pin != "" {
			if l := adopt(ifi.Index, pin); l != nil {
				if err := l.Update(c.objs.SaviIngress); err == nil {
					c.pinned(l, pin)
					return nil
				}
				l.Close()
			}
			os.Remove(pin) // stale: on another device, or none
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: c.objs.SaviIngress,
			Attach: ebpf.AttachTCXIngress, Anchor: link.BeforeProgram(before)})
		if err == nil && pin != "" {
			if err := l.Pin(pin); err != nil {
				l.Close()
				return fmt.Errorf("savi: pin %s: %w", pin, err)
			}
			c.pinned(l, pin)
			return nil
		}
		if err == nil {
			c.detach = append(c.detach, l.Close)
			c.release = append(c.release, l.Close)
			return nil
		}
		if mode == dataplane.AttachTCX || !errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("savi: attach to %s: %w", dev, err)
		}
	}
	detach, err := dataplane.AttachClsactFilter(c.objs.SaviIngress, ifi.Index, true, clsactPriority)
	if err != nil {
		return fmt.Errorf("savi: attach to %s (clsact): %w", dev, err)
	}
	c.detach = append(c.detach, detach)
	return nil
}

// Counters returns the check's counts by reason, summed over CPUs.
func (c *Check) Counters() (map[string]uint64, error) {
	out, err := dataplane.SumPerCPU(c.objs.SaviCounters, c.names)
	if err != nil {
		return nil, fmt.Errorf("savi: counters: %w", err)
	}
	return out, nil
}

// adopt returns the TCX link pinned at pin when it is on ifindex's
// ingress.
func adopt(ifindex int, pin string) link.Link {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return nil
	}
	info, err := l.Info()
	if err != nil || info.TCX() == nil || int(info.TCX().Ifindex) != ifindex || ebpf.AttachType(info.TCX().AttachType) != ebpf.AttachTCXIngress {
		l.Close()
		return nil
	}
	return l
}

func (c *Check) pinned(l link.Link, pin string) {
	c.detach = append(c.detach, func() error {
		os.Remove(pin)
		return l.Close()
	})
	c.release = append(c.release, l.Close)
}

// Release drops our handles for a stop that leaves the BR in place: a
// pinned TCX link and a cls_bpf filter stay on the hook (the restart
// takes them over); an unpinned TCX link ends with them, and until the
// restart attaches the check again, CE packets go unchecked (none is
// lost).
func (c *Check) Release() error {
	var errs []error
	for _, r := range c.release {
		errs = append(errs, r())
	}
	c.detach, c.release = nil, nil
	errs = append(errs, c.objs.Close())
	return errors.Join(errs...)
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
