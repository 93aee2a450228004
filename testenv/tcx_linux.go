package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/mapt-go/mapt/kernels/proto"
)

var tcxProbe struct {
	once   sync.Once
	ok     bool
	detail string
	err    error
}

// HaveTCX reports whether the kernel has TCX hooks (6.6+): the tests then
// check TCX, and where it is absent they check that asking for it fails as
// not supported and that auto mode picks clsact. It attaches a do-nothing
// program to the TCX ingress hook of loopback in a namespace of its own and
// sees what the kernel does, rather than trusting a version string
// (distributions backport). Any answer but success or "not supported"
// fails the test. The kernel matrix (kernels/) reads the line it logs.
func HaveTCX(t testing.TB) bool {
	t.Helper()
	Require(t, "ip")
	tcxProbe.once.Do(func() {
		// Stays the answer if the lab below fails the test half-way.
		tcxProbe.err = errors.New("tcx probe: did not finish")
		ns := New(t).NS("tcxprobe")
		tcxProbe.err = ns.Do(func() error {
			// Before 5.11 BPF memory is charged to RLIMIT_MEMLOCK.
			if err := rlimit.RemoveMemlock(); err != nil {
				return fmt.Errorf("tcx probe: %w", err)
			}
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
				Type:         ebpf.SchedCLS,
				Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()}, // TCX_NEXT
				License:      "GPL",
			})
			if err != nil {
				return fmt.Errorf("tcx probe: load: %w", err)
			}
			defer prog.Close()
			lo, err := net.InterfaceByName("lo")
			if err != nil {
				return err
			}
			l, err := link.AttachTCX(link.TCXOptions{Interface: lo.Index, Program: prog, Attach: ebpf.AttachTCXIngress})
			switch {
			case err == nil:
				tcxProbe.ok, tcxProbe.detail = true, "attached to lo"
				return l.Close()
			case errors.Is(err, ebpf.ErrNotSupported):
				tcxProbe.detail = err.Error()
				return nil
			}
			return fmt.Errorf("tcx probe: attach: %w", err)
		})
	})
	if tcxProbe.err != nil {
		t.Fatal(tcxProbe.err)
	}
	b, _ := json.Marshal(proto.TCX{Supported: tcxProbe.ok, Detail: tcxProbe.detail})
	t.Logf("%s%s", proto.TCXPrefix, b)
	return tcxProbe.ok
}
