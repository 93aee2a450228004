package kernels

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/mapt-go/mapt/kernels/proto"
)

// Outcome of one VM.
const (
	Pass     = "PASS"
	Fail     = "FAIL"     // the guest reported failures
	Timeout  = "TIMEOUT"  // the host killed the VM
	NoResult = "NORESULT" // qemu ended without a result line (panic, init died)
	Error    = "ERROR"    // the VM could not be prepared or started
)

// Run is one kernel's VM run.
type Run struct {
	Kernel  Kernel
	Package string // the concrete linux-image package's .deb
	Outcome string
	Result  string // the guest's result line, after the prefix
	Summary *proto.Summary
	// Kernel messages that mean trouble (panic, oops, BUG, WARNING).
	KernelLines []string
	Seconds     float64
	Console     string // the console log file
	Err         string
}

// QemuArgs is the qemu command line booting e with initrd.
func QemuArgs(e *Extracted, initrd string) []string {
	args := []string{e.Qemu, "-nographic", "-no-reboot", "-nic", "none", "-m", fmt.Sprint(e.MemMiB), "-smp", "1"}
	args = append(args, e.Machine...)
	// loglevel=5 keeps module and link chatter off the console but not
	// warnings; an oops or panic raises the level by itself.
	args = append(args, "-kernel", e.Image, "-initrd", initrd,
		"-append", "console="+e.Console+" panic=-1 loglevel=5 rdinit=/init")
	return args
}

// kernelTrouble matches console lines of a kernel in trouble.
var kernelTrouble = []string{"Kernel panic", "Oops", "BUG:", "WARNING: CPU:", "Unable to handle kernel", "Call Trace:", "general protection fault", "Internal error:", "kernel BUG", "watchdog: BUG"}

// Boot runs qemu until the guest reboots or timeout passes (then it kills
// that qemu, by its PID), copying the console to the log file console
// and, when echo is not nil, to echo. It returns the run's outcome.
func Boot(e *Extracted, initrd, console string, timeout time.Duration, echo io.Writer) *Run {
	r := &Run{Kernel: e.Kernel, Package: e.Package, Console: console}
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	log, err := os.Create(console)
	if err != nil {
		r.Outcome, r.Err = Error, err.Error()
		return r
	}
	defer log.Close()
	args := QemuArgs(e, initrd)
	fmt.Fprintf(log, "# %s\n", strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		r.Outcome, r.Err = Error, fmt.Sprintf("kernels: %s: %v", args[0], err)
		return r
	}
	running.add(cmd.Process)
	defer running.remove(cmd.Process)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(log, line)
			if echo != nil {
				fmt.Fprintf(echo, "[%s] %s\n", e.ID, line)
			}
			r.scanLine(line)
		}
		io.Copy(io.Discard, pr)
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	timedOut := false
	select {
	case werr = <-done:
	case <-time.After(timeout):
		timedOut = true
		cmd.Process.Kill() // only the qemu started here
		werr = <-done
	}
	pw.Close()
	<-scanned
	switch {
	case r.Result == "PASS":
		r.Outcome = Pass
	case r.Result != "":
		r.Outcome = Fail
	case timedOut:
		r.Outcome = Timeout
		r.Err = fmt.Sprintf("no result after %s: VM killed", timeout)
	default:
		r.Outcome = NoResult
		r.Err = fmt.Sprintf("qemu ended without a result line (%v)", werr)
	}
	if len(r.KernelLines) > 0 && r.Outcome == Pass {
		// A kernel that warned or oopsed did not pass, whatever the tests say.
		r.Outcome = Fail
		r.Result = "FAIL: kernel: " + r.KernelLines[0]
	}
	return r
}

// running are the qemu processes this program started, for KillAll.
var running = &procSet{m: map[*os.Process]bool{}}

type procSet struct {
	mu sync.Mutex
	m  map[*os.Process]bool
}

func (p *procSet) add(pr *os.Process)    { p.mu.Lock(); p.m[pr] = true; p.mu.Unlock() }
func (p *procSet) remove(pr *os.Process) { p.mu.Lock(); delete(p.m, pr); p.mu.Unlock() }

// KillAll kills the VMs that are still running (the command's SIGINT and
// SIGTERM handler: qemu must not outlive the matrix). Only the qemu
// processes started here, by PID.
func KillAll() {
	running.mu.Lock()
	defer running.mu.Unlock()
	for pr := range running.m {
		pr.Kill()
	}
}

func (r *Run) scanLine(line string) {
	if i := strings.Index(line, proto.ResultPrefix); i >= 0 {
		r.Result = strings.TrimSpace(line[i+len(proto.ResultPrefix):])
		return
	}
	if i := strings.Index(line, proto.SummaryPrefix); i >= 0 {
		var s proto.Summary
		if err := json.Unmarshal([]byte(line[i+len(proto.SummaryPrefix):]), &s); err == nil {
			r.Summary = &s
		}
		return
	}
	if strings.Contains(line, "MAPT-") {
		return
	}
	for _, t := range kernelTrouble {
		if strings.Contains(line, t) && len(r.KernelLines) < 30 {
			r.KernelLines = append(r.KernelLines, strings.TrimSpace(line))
			return
		}
	}
}

// qemuVersion is qemu-system-x86_64's version, for the report.
func qemuVersion() string {
	out, err := exec.Command("qemu-system-x86_64", "--version").Output()
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "version" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return "?"
}
