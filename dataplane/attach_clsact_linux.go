package dataplane

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Our cls_bpf filters are recognised by priority and handle: attaching
// replaces a filter of ours left by an earlier run, and never touches
// other filters on the same hook.
const (
	clsactPrio   = 0x4d54 // "MT"
	clsactHandle = 1
)

// clsactAttachment is a direct-action cls_bpf filter on a clsact qdisc,
// the fallback for kernels without TCX.
type clsactAttachment struct {
	h            *netlink.Handle
	filter       *netlink.BpfFilter
	qdisc        *netlink.GenericQdisc
	createdQdisc bool
}

func attachClsact(prog *ebpf.Program, ifindex int, ingress bool, prio uint16) (*clsactAttachment, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // in the caller's namespace; rtnetlink only (no xfrm_user needed)
	if err != nil {
		return nil, err
	}
	a := &clsactAttachment{h: h, createdQdisc: true}
	a.qdisc = &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscAdd(a.qdisc); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			h.Close()
			return nil, fmt.Errorf("add clsact qdisc: %w",
				moduleError(err, "the clsact qdisc (CONFIG_NET_SCH_INGRESS, module sch_ingress)", "kmod-sched-core"))
		}
		a.createdQdisc = false
	}
	parent := uint32(netlink.HANDLE_MIN_EGRESS)
	if ingress {
		parent = netlink.HANDLE_MIN_INGRESS
	}
	info, _ := prog.Info()
	name := "mapt"
	if info != nil {
		name = "mapt-" + info.Name
	}
	a.filter = &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    parent,
			Handle:    clsactHandle,
			Priority:  prio,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           prog.FD(),
		Name:         name,
		DirectAction: true,
	}
	if err := h.FilterReplace(a.filter); err != nil {
		a.dropQdisc()
		h.Close()
		return nil, fmt.Errorf("add cls_bpf filter: %w",
			moduleError(err, "the cls_bpf classifier (CONFIG_NET_CLS_BPF, module cls_bpf)", "kmod-sched-bpf"))
	}
	return a, nil
}

// AttachClsactFilter puts prog on the clsact ingress or egress hook of
// ifindex as a direct-action cls_bpf filter at priority prio (lower runs
// first), replacing a filter of ours left there at that priority, and
// creates the clsact qdisc when the device has none. detach removes the
// filter, and the qdisc when this call made it and nothing else is on it.
// For programs that run next to the translator's on kernels without TCX
// (dataplane/savi, ahead of it).
func AttachClsactFilter(prog *ebpf.Program, ifindex int, ingress bool, prio uint16) (detach func() error, err error) {
	a, err := attachClsact(prog, ifindex, ingress, prio)
	if err != nil {
		return nil, err
	}
	return a.detach, nil
}

func (a *clsactAttachment) detach() error {
	defer a.h.Close()
	err := a.h.FilterDel(a.filter)
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		err = nil // the device or the filter is gone already
	}
	if err != nil {
		return fmt.Errorf("delete cls_bpf filter: %w", err)
	}
	a.dropQdisc()
	return nil
}

func (a *clsactAttachment) release() error {
	a.h.Close()
	return nil
}

// dropClsact removes our cls_bpf filter from a hook, left there by an
// earlier run in clsact mode, once prog runs on the hook's TCX chain.
func dropClsact(prog *ebpf.Program, ifindex int, ingress bool) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return
	}
	defer h.Close()
	parent := uint32(netlink.HANDLE_MIN_EGRESS)
	if ingress {
		parent = netlink.HANDLE_MIN_INGRESS
	}
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	filters, err := h.FilterList(link, parent)
	if err != nil {
		return
	}
	name := "mapt"
	if info, _ := prog.Info(); info != nil {
		name = "mapt-" + info.Name
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == clsactPrio && bf.Handle == clsactHandle && bf.Name == name {
			h.FilterDel(bf)
		}
	}
}

// dropQdisc removes the clsact qdisc if we created it and no filter is
// left on it.
func (a *clsactAttachment) dropQdisc() {
	if !a.createdQdisc {
		return
	}
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: a.qdisc.LinkIndex}}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		if fs, err := a.h.FilterList(link, parent); err != nil || len(fs) > 0 {
			return
		}
	}
	a.h.QdiscDel(a.qdisc)
}
