package dataplane

import (
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/testenv"
)

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		code uint32
		ok   bool
	}{
		{5<<16 | 10<<8, true},
		{5<<16 | 10<<8 | 223, true},
		{6<<16 | 1<<8, true},
		{5<<16 | 9<<8 | 255, false},
		{4<<16 | 19<<8, false},
	} {
		err := versionAtLeast(c.code)
		if (err == nil) != c.ok {
			t.Errorf("%#x: %v, want ok=%v", c.code, err, c.ok)
			continue
		}
		var ke *KernelError
		if err != nil && (!errors.As(err, &ke) || !strings.Contains(err.Error(), "needs Linux 5.10+")) {
			t.Errorf("%#x: %q does not name the minimum kernel", c.code, err)
		}
	}
}

func TestModuleError(t *testing.T) {
	err := moduleError(unix.ENOENT, "the cls_bpf classifier", "kmod-sched-bpf")
	if !strings.Contains(err.Error(), "lacks the cls_bpf classifier (OpenWrt package kmod-sched-bpf)") || !errors.Is(err, unix.ENOENT) {
		t.Errorf("ENOENT: %q", err)
	}
	if err := moduleError(unix.EPERM, "x", "y"); err != unix.EPERM {
		t.Errorf("EPERM became %v", err)
	}
}

// TestNetlinkRouteOnly: the clsact path must not open NETLINK_XFRM, which
// kernels without xfrm_user (OpenWrt without IPsec) refuse.
func TestNetlinkRouteOnly(t *testing.T) {
	testenv.Require(t)
	l := testenv.New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Veth(a, "eth0", b, "eth0")
	tr := load(t, ceConfig())
	err := a.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		at, err := attachClsact(tr.Prog6to4(), ifi.Index, true, clsactPrio)
		if err != nil {
			return err
		}
		defer at.detach()
		if at.h.SupportsNetlinkFamily(unix.NETLINK_XFRM) {
			t.Error("the clsact handle opened NETLINK_XFRM")
		}
		if !at.h.SupportsNetlinkFamily(unix.NETLINK_ROUTE) {
			t.Error("the clsact handle has no NETLINK_ROUTE socket")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
