package dataplane

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/mapt-go/mapt/kernels/proto"
	"github.com/mapt-go/mapt/testenv"
)

// TestJITReport loads the CE and the BR translator and reports, for every
// program, what the kernel made of it: native code size (jited), BPF size
// after the verifier's rewrites (xlated) and the instructions the verifier
// walked, one MAPT-JIT line each (the kernel matrix, kernels/, collects
// them into its table). With the JIT on, a program without native code
// fails the test: the kernel fell back to the interpreter because its JIT
// could not compile the program (the 32-bit JITs refuse BPF-to-BPF calls),
// which costs speed, and a kernel with CONFIG_BPF_JIT_ALWAYS_ON would
// refuse to load it at all.
func TestJITReport(t *testing.T) {
	testenv.Require(t)
	enable := "absent"
	if b, err := os.ReadFile("/proc/sys/net/core/bpf_jit_enable"); err == nil {
		enable = strings.TrimSpace(string(b))
	}
	jitOn := enable == "1" || enable == "2"
	switch {
	case enable == "absent":
		// A kernel built without a JIT (Debian's s390x: its JIT needs
		// z196, the kernel is built for z10): the interpreter is all
		// there is, and the report says so.
		t.Log("this kernel has no BPF JIT (no net.core.bpf_jit_enable): every program runs in the interpreter")
	case !jitOn:
		// The JIT is there but off: CI and the kernel matrix turn it on.
		msg := "bpf_jit_enable is " + enable + ": the JIT is off, nothing to check"
		if testenv.InCI() {
			t.Fatal(msg + " (CI=true)")
		}
		t.Log(msg)
	}
	for _, c := range []struct {
		name  string
		cfg   Config
		progs []string // the programs every translator of the mode has
	}{
		{"ce", ceConfig(), []string{"ce_egress", "ce_ingress"}},
		{"br", brConfig(), []string{"br_ingress4", "br_ingress6", "br_local"}},
	} {
		tr := load(t, c.cfg)
		var names []string
		for n := range tr.coll.Programs {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, want := range c.progs {
			if !slices.Contains(names, want) {
				t.Errorf("%s translator has no program %s (has %v)", c.name, want, names)
			}
		}
		for _, n := range names {
			rec := proto.JIT{Translator: c.name, Prog: n, JITEnable: enable, Verified: -1}
			info, err := tr.coll.Programs[n].Info()
			if err != nil {
				rec.Error = err.Error()
				t.Errorf("%s/%s: info: %v", c.name, n, err)
			} else {
				// JitedSize reports a program without native code as
				// "not supported"; that is the 0 this test is about.
				if rec.Jited, err = info.JitedSize(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
					t.Errorf("%s/%s: jited size: %v", c.name, n, err)
				}
				if rec.Xlated, err = info.TranslatedSize(); err != nil {
					t.Errorf("%s/%s: xlated size: %v", c.name, n, err)
				}
				if v, ok := info.VerifiedInstructions(); ok { // 5.16+
					rec.Verified = int64(v)
				}
			}
			b, _ := json.Marshal(rec)
			t.Logf("%s%s", proto.JITPrefix, b)
			if jitOn && rec.Error == "" && rec.Jited == 0 {
				t.Errorf("%s/%s is not JIT-compiled (jited 0 with bpf_jit_enable=%s): it runs in the interpreter", c.name, n, enable)
			}
		}
	}
}
