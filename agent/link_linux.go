package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PickWAN chooses the WAN when none is configured: the interface holding
// the IPv6 default route, else the only non-loopback interface with
// carrier. The reason is returned for the log.
func PickWAN(h *netlink.Handle) (string, string, error) {
	routes, err := h.RouteListFiltered(unix.AF_INET6, &netlink.Route{Dst: nil}, 0)
	if err != nil {
		return "", "", fmt.Errorf("agent: pick wan: list routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.LinkIndex > 0 {
			if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
				return l.Attrs().Name, "it holds the IPv6 default route", nil
			}
		}
	}
	links, err := h.LinkList()
	if err != nil {
		return "", "", fmt.Errorf("agent: pick wan: list links: %w", err)
	}
	var up []string
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&unix.IFF_LOOPBACK != 0 || a.OperState != netlink.OperUp {
			continue
		}
		if _, tun := l.(*netlink.Tuntap); tun {
			continue
		}
		up = append(up, a.Name)
	}
	if len(up) == 1 {
		return up[0], "it is the only interface with carrier", nil
	}
	return "", "", fmt.Errorf("agent: pick wan: no IPv6 default route and %d interfaces with carrier %v: give --wan", len(up), up)
}

// ensureUplink creates (or adopts) the persistent L3 TUN device the LAN's
// IPv4 traffic is routed into, and gives it its MTU, the CE's IPv4 address
// and, optionally, the default route. It removes addresses of an old
// binding. The TC programs need no reader on the device (ARCHITECTURE.md,
// A TUN uplink).
func ensureUplink(h *netlink.Handle, name string, mtu int, addr netip.Addr, defaultRoute bool) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		tun := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: name},
			Mode:      netlink.TUNTAP_MODE_TUN,
			Flags:     netlink.TUNTAP_NO_PI,
		}
		if err := h.LinkAdd(tun); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
				return nil, fmt.Errorf("agent: create uplink %s: the kernel lacks TUN (/dev/net/tun; module tun, OpenWrt package kmod-tun): %w", name, err)
			}
			return nil, fmt.Errorf("agent: create uplink %s: %w", name, err)
		}
		if l, err = h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("agent: uplink %s: %w", name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("agent: uplink %s: %w", name, err)
	default:
		if l.Type() != "tuntap" {
			return nil, fmt.Errorf("agent: uplink %s exists and is a %s device, not ours: choose another --uplink", name, l.Type())
		}
	}
	if l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return nil, fmt.Errorf("agent: uplink %s: set mtu %d: %w", name, mtu, err)
		}
	}
	want := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(addr, 32))}
	addrs, err := h.AddrList(l, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("agent: uplink %s: list addresses: %w", name, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.IPNet.String() {
			have = true
			continue
		}
		if err := h.AddrDel(l, &a); err != nil {
			return nil, fmt.Errorf("agent: uplink %s: remove old address %s: %w", name, a.IPNet, err)
		}
	}
	if !have {
		if err := h.AddrAdd(l, want); err != nil {
			return nil, fmt.Errorf("agent: uplink %s: add %s: %w", name, addr, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("agent: uplink %s: set up: %w", name, err)
	}
	if defaultRoute {
		r := &netlink.Route{
			LinkIndex: l.Attrs().Index,
			Dst:       prefixNet(netip.MustParsePrefix("0.0.0.0/0")),
			Src:       addr.AsSlice(),
			Scope:     netlink.SCOPE_LINK,
		}
		if err := h.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("agent: uplink %s: default route: %w", name, err)
		}
	}
	return l, nil
}

// removeUplink deletes the uplink device (with its addresses and routes).
func removeUplink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: uplink %s: %w", name, err)
	}
	if l.Type() != "tuntap" {
		return fmt.Errorf("agent: uplink %s is a %s device, not ours: left alone", name, l.Type())
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("agent: remove uplink %s: %w", name, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// watchWAN follows the WAN device through rtnetlink (RTM_NEWLINK and
// RTM_DELLINK, RTNLGRP_LINK) and sends what changed: carrier, presence
// (a device of that name removed or created, which is a new ifindex), MTU.
// It stops when ctx ends. Events are coalesced: a burst of messages about
// one change gives one event.
func watchWAN(ctx context.Context, name string, log *slog.Logger) (<-chan linkEvent, error) {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	failed := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			log.Error("agent: link watch", "err", err)
			select {
			case <-failed:
			default:
				close(failed)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("agent: watch links: %w", err)
	}
	// The state the watch starts from; events are changes from it.
	var cur wanState
	if l, err := netlink.LinkByName(name); err == nil {
		cur = linkState(l)
	}
	out := make(chan linkEvent, 16)
	send := func(ev linkEvent) {
		select {
		case out <- ev:
		case <-ctx.Done():
		}
	}
	go func() {
		defer close(done)
		for {
			var u netlink.LinkUpdate
			select {
			case <-ctx.Done():
				return
			case <-failed:
				return
			case u = <-updates:
			}
			if u.Link == nil || u.Link.Attrs() == nil {
				continue
			}
			a := u.Link.Attrs()
			mine := a.Name == name
			if !mine && !(cur.Present && a.Index == cur.Index) {
				continue
			}
			var next wanState
			if mine && u.Header.Type != unix.RTM_DELLINK {
				next = wanState{Present: true, Index: a.Index, MTU: a.MTU, Carrier: carrier(u.IfInfomsg.Flags)}
			}
			// A rename away from our name, or a deletion, leaves next
			// absent.
			for _, ev := range linkChanges(cur, next) {
				send(ev)
			}
			cur = next
		}
	}()
	return out, nil
}
