// Package proto is what the kernel matrix's host command (kernels/cmd/matrix)
// and its guest /init (kernels/init) agree on: the plan the host puts into
// the initramfs, and the lines the guest prints on the serial console. The
// console is the only channel out of the VM (qemu runs with -nic none and
// no disk), so every result is one prefixed line of JSON that survives
// interleaved kernel messages.
package proto

// PlanPath is where the host puts the plan inside the initramfs.
const PlanPath = "/mapt/plan.json"

// SeedPath holds random bytes from the host that the guest credits to the
// kernel's entropy pool before anything runs: under TCG with no hardware
// RNG, a 5.10 kernel can otherwise block getrandom(2) (crypto/rand, used by
// testenv for namespace names) for minutes.
const SeedPath = "/mapt/seed"

// Line prefixes on the serial console.
const (
	// Prefix starts every line of the guest's own report.
	Prefix = "MAPT-KERNELS "
	// ResultPrefix starts the one final line: "PASS" or "FAIL: reasons".
	ResultPrefix = Prefix + "RESULT: "
	// BootPrefix, StepPrefix and SummaryPrefix are followed by JSON
	// (Boot, StepResult, Summary).
	BootPrefix    = Prefix + "BOOT "
	StepPrefix    = Prefix + "STEP "
	SummaryPrefix = Prefix + "JSON "
	// JITPrefix is logged by dataplane's TestJITReport, one line per
	// program (JIT), and LabPrefix by lab's TestStaticPath (Lab); the
	// guest collects them from the tests' output. TCXPrefix is logged by
	// dataplane's TCX probe (TCX).
	JITPrefix = "MAPT-JIT "
	LabPrefix = "MAPT-LAB "
	TCXPrefix = "MAPT-TCX "
)

// Plan is what the guest runs.
type Plan struct {
	// Kernel is the matrix's name for the kernel (e.g. "mipsel-6.1").
	Kernel string `json:"kernel"`
	// Modules are the kernel modules to load, in load order (dependencies
	// first), as paths inside the initramfs.
	Modules []string `json:"modules"`
	// Env is added to the environment of every step.
	Env []string `json:"env"`
	// Steps run one after the other.
	Steps []Step `json:"steps"`
}

// Step is one test binary run.
type Step struct {
	Name string   `json:"name"`
	Dir  string   `json:"dir"` // working directory (the package's source directory)
	Argv []string `json:"argv"`
	// TimeoutSeconds ends the step (SIGQUIT for a goroutine dump, then
	// SIGKILL); the test binary gets a slightly shorter -test.timeout.
	TimeoutSeconds int `json:"timeout_seconds"`
	// Expect are tests that must report a result: a test renamed away
	// must not pass a step by not running.
	Expect []string `json:"expect,omitempty"`
}

// Boot is what the guest found before running anything.
type Boot struct {
	Release   string   `json:"release"` // uname -r
	Machine   string   `json:"machine"` // uname -m
	JITEnable string   `json:"jit_enable"`
	Modules   int      `json:"modules_loaded"`
	Errors    []string `json:"errors,omitempty"`
}

// StepResult is one step's outcome.
type StepResult struct {
	Name     string   `json:"name"`
	Exit     int      `json:"exit"` // -1: killed by the step timeout
	Seconds  float64  `json:"seconds"`
	TimedOut bool     `json:"timed_out,omitempty"`
	Passed   int      `json:"passed"` // top-level tests
	Failed   []string `json:"failed,omitempty"`
	Skipped  []string `json:"skipped,omitempty"`
	Missing  []string `json:"missing,omitempty"` // of Step.Expect
	Core     bool     `json:"core,omitempty"`    // only the Expect tests ran
	Ran      []string `json:"-"`                 // passed top-level tests, for Missing
	// Lines are the first failure lines of the output (test errors,
	// panics), for the report.
	Lines []string `json:"lines,omitempty"`
}

// JIT is one loaded program as the kernel reports it.
type JIT struct {
	Translator string `json:"translator"` // ce or br
	Prog       string `json:"prog"`
	Jited      uint32 `json:"jited"`      // bytes of native code; 0: interpreter
	Xlated     int    `json:"xlated"`     // bytes of BPF after the verifier's rewrites
	Verified   int64  `json:"verified"`   // verified instructions; -1: kernel does not tell (< 5.16)
	JITEnable  string `json:"jit_enable"` // /proc/sys/net/core/bpf_jit_enable
	Error      string `json:"error,omitempty"`
}

// Lab is what lab's TestStaticPath saw.
type Lab struct {
	CEAttach string `json:"ce_attach"`
	BRAttach string `json:"br_attach"`
	Checked  int    `json:"checked"` // flows whose source address and port were checked at the server
}

// TCX is the dataplane tests' probe result.
type TCX struct {
	Supported bool   `json:"supported"`
	Detail    string `json:"detail"`
}

// Summary is everything, printed once before the result line.
type Summary struct {
	Kernel string       `json:"kernel"`
	Boot   Boot         `json:"boot"`
	Steps  []StepResult `json:"steps"`
	JIT    []JIT        `json:"jit,omitempty"`
	Lab    *Lab         `json:"lab,omitempty"`
	TCX    *TCX         `json:"tcx,omitempty"`
	Result string       `json:"result"`
}
