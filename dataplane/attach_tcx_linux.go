package dataplane

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// tcxAttachment is a BPF link on a TCX hook (Linux 6.6+). Other programs
// on the hook stay where they are; ours is appended to the chain, and
// returns TC_ACT_UNSPEC (TCX_NEXT) for packets it does not translate.
type tcxAttachment struct {
	l link.Link
}

func attachTCX(prog *ebpf.Program, ifindex int, ingress bool) (*tcxAttachment, error) {
	at := ebpf.AttachTCXEgress
	if ingress {
		at = ebpf.AttachTCXIngress
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
	if err != nil {
		return nil, err
	}
	return &tcxAttachment{l: l}, nil
}

func (a *tcxAttachment) detach() error { return a.l.Close() }
