package dataplane

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// tcxAttachment is a BPF link on a TCX hook (Linux 6.6+). Other programs
// on the hook stay where they are; ours is appended to the chain, and
// returns TC_ACT_UNSPEC (TCX_NEXT) for packets it does not translate.
// A pinned link (pin != "") outlives the process: the kernel keeps the
// program on the hook until the pin is removed.
type tcxAttachment struct {
	l   link.Link
	pin string
}

// attachTCX attaches prog, or with pin set adopts the link pinned there
// by an earlier run: kept when it is on the same hook (its program
// swapped for prog with one BPF_LINK_UPDATE when they differ, which no
// packet sees half-done), replaced when it is on another device or on
// none (the device it was on went away).
func attachTCX(prog *ebpf.Program, ifindex int, ingress bool, pin string) (*tcxAttachment, error) {
	at := ebpf.AttachTCXEgress
	if ingress {
		at = ebpf.AttachTCXIngress
	}
	if pin != "" {
		a, err := adoptTCX(prog, ifindex, at, pin)
		if a != nil || err != nil {
			return a, err
		}
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
	if err != nil {
		return nil, err
	}
	if pin == "" {
		return &tcxAttachment{l: l}, nil
	}
	// A stale pin (another device) makes way: its link is useless.
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.Close()
		return nil, fmt.Errorf("remove stale link pin: %w", err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link: %w", err)
	}
	return &tcxAttachment{l: l, pin: pin}, nil
}

// adoptTCX returns the link pinned at pin when it is on the hook (ifindex,
// at), running prog; nil when there is no such link.
func adoptTCX(prog *ebpf.Program, ifindex int, at ebpf.AttachType, pin string) (*tcxAttachment, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return nil, nil // none, or not a link: attach a new one
	}
	info, err := l.Info()
	tcx := (*link.TCXInfo)(nil)
	if err == nil {
		tcx = info.TCX()
	}
	if tcx == nil || int(tcx.Ifindex) != ifindex || ebpf.AttachType(tcx.AttachType) != at {
		l.Close()
		return nil, nil
	}
	want, err := progID(prog)
	if err != nil {
		l.Close()
		return nil, err
	}
	if info.Program != want {
		if err := l.Update(prog); err != nil {
			l.Close()
			return nil, fmt.Errorf("replace the program of the pinned link: %w", err)
		}
	}
	return &tcxAttachment{l: l, pin: pin}, nil
}

func (a *tcxAttachment) detach() error {
	if a.pin != "" {
		if err := os.Remove(a.pin); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.l.Close()
			return fmt.Errorf("unpin link: %w", err)
		}
	}
	return a.l.Close()
}

func (a *tcxAttachment) release() error { return a.l.Close() }

// dropPinnedLink removes a link pinned by an earlier run (in TCX mode)
// once the same program runs from a cls_bpf filter.
func dropPinnedLink(pin string) {
	os.Remove(pin)
}

// progID is the kernel's ID of a loaded program.
func progID(p *ebpf.Program) (ebpf.ProgramID, error) {
	info, err := p.Info()
	if err != nil {
		return 0, fmt.Errorf("program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("the kernel gives no program IDs")
	}
	return id, nil
}
