//go:build linux

package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/kernels/proto"
)

// TestScan feeds scan the -v output of a test binary: results, subtests,
// the failing test's own log lines (not a passing one's), panics and the
// structured lines.
func TestScan(t *testing.T) {
	out := `=== RUN   TestA
    a_test.go:10: chatter of a passing test
--- PASS: TestA (0.01s)
=== RUN   TestB
=== RUN   TestB/sub
    b_test.go:20: want 1, got 2
    --- FAIL: TestB/sub (0.00s)
--- FAIL: TestB (0.02s)
=== RUN   TestC
    c_test.go:5: MAPT-JIT {"translator":"ce","prog":"ce_egress","jited":0,"xlated":8,"verified":-1,"jit_enable":"1"}
    c_test.go:6: MAPT-TCX {"supported":false,"detail":"no"}
    c_test.go:7: MAPT-LAB {"ce_attach":"clsact","br_attach":"clsact","checked":8}
--- SKIP: TestC (0.00s)
panic: test timed out after 1s
FAIL
`
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = devnull
	var r proto.StepResult
	var c collected
	scan(strings.NewReader(out), &r, &c)
	os.Stdout = stdout
	if r.Passed != 1 || !reflect.DeepEqual(r.Ran, []string{"TestA"}) ||
		!reflect.DeepEqual(r.Failed, []string{"TestB/sub", "TestB"}) || !reflect.DeepEqual(r.Skipped, []string{"TestC"}) {
		t.Errorf("results: %+v", r)
	}
	want := []string{"TestB: b_test.go:20: want 1, got 2", "panic: test timed out after 1s"}
	if !reflect.DeepEqual(r.Lines, want) {
		t.Errorf("lines %q, want %q", r.Lines, want)
	}
	if len(c.jit) != 1 || c.jit[0].Prog != "ce_egress" || c.jit[0].Verified != -1 ||
		c.tcx == nil || c.tcx.Supported || c.lab == nil || c.lab.Checked != 8 {
		t.Errorf("collected %+v %+v %+v", c.jit, c.tcx, c.lab)
	}
}
