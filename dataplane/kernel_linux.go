package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// MinKernel is the oldest Linux the programs run on: bpf_redirect_neigh
// (5.10) sends the CE's translated packets to the WAN and the BR's own
// ICMP errors out of the other side; __sk_buff.gso_size (5.7) tells a GSO
// super-packet from one that outgrew the MTU. Checked by Load.
const MinKernel = "5.10"

// minKernelCode is MinKernel as a LINUX_VERSION_CODE.
const minKernelCode = 5<<16 | 10<<8

// KernelError is a kernel feature the translator needs and lacks. Its
// message names the feature, the kernel version that has it and, where
// one exists, the OpenWrt package that provides it; callers prefix it.
type KernelError struct {
	Feature string // e.g. "bpf_redirect_neigh helper"
	Since   string // first Linux version with it, "" when it is a module
	Kmod    string // OpenWrt package, "" when none
	Err     error
}

func (e *KernelError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel %s lacks %s", kernelRelease(), e.Feature)
	switch {
	case e.Since != "" && e.Kmod != "":
		fmt.Fprintf(&b, " (Linux %s+, OpenWrt %s)", e.Since, e.Kmod)
	case e.Since != "":
		fmt.Fprintf(&b, " (needs Linux %s+)", e.Since)
	case e.Kmod != "":
		fmt.Fprintf(&b, " (OpenWrt package %s)", e.Kmod)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *KernelError) Unwrap() error { return e.Err }

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

var (
	kernelOnce sync.Once
	kernelErr  error
)

// CheckKernel raises RLIMIT_MEMLOCK (map memory is charged to it before
// Linux 5.11) and probes what the programs need, once per process, so that
// an old or stripped-down kernel fails with the name of what is missing
// rather than a verifier log.
func CheckKernel() error {
	kernelOnce.Do(func() {
		if err := probeKernel(); err != nil {
			kernelErr = fmt.Errorf("dataplane: %w", err)
		}
	})
	return kernelErr
}

func probeKernel() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raise RLIMIT_MEMLOCK (maps are charged to it before Linux 5.11): %w", err)
	}
	if code, err := features.LinuxVersionCode(); err == nil {
		if err := versionAtLeast(code); err != nil {
			return err
		}
	}
	if err := features.HaveProgramType(ebpf.SchedCLS); err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, ebpf.ErrNotSupported) {
			return &KernelError{Feature: "the bpf() syscall or TC programs (CONFIG_BPF_SYSCALL, CONFIG_NET_CLS_BPF)", Kmod: "kmod-sched-bpf", Err: err}
		}
		return fmt.Errorf("probe TC programs: %w", err)
	}
	if err := features.HaveProgramHelper(ebpf.SchedCLS, asm.FnRedirectNeigh); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return &KernelError{Feature: "the bpf_redirect_neigh helper", Since: "5.10", Err: err}
		}
		return fmt.Errorf("probe bpf_redirect_neigh: %w", err)
	}
	return nil
}

// versionAtLeast refuses kernels older than MinKernel.
func versionAtLeast(code uint32) error {
	if code >= minKernelCode {
		return nil
	}
	return &KernelError{
		Feature: fmt.Sprintf("what the translator needs (it runs Linux %d.%d; bpf_redirect_neigh and __sk_buff.gso_size)", code>>16, code>>8&0xff),
		Since:   MinKernel,
	}
}

// moduleError names the kernel module (and OpenWrt package) behind a
// netlink ENOENT, which is how the kernel says that a qdisc, filter or
// nftables expression kind is unknown to it.
func moduleError(err error, feature, kmod string) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
		return &KernelError{Feature: feature, Kmod: kmod, Err: err}
	}
	return err
}
