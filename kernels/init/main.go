//go:build linux

// Command init is PID 1 of the kernel matrix's VMs (see package kernels):
// a static Go binary, cross-built for the guest's architecture, that sets
// up the little a test run needs (proc, sysfs, devtmpfs, tmpfs, bpffs, the
// kernel modules, the BPF JIT, entropy), runs the plan's test binaries with
// their output on the serial console, reports on that console in lines of
// package proto, and reboots, which ends qemu (-no-reboot).
//
// There is no shell, udev or modprobe in the guest on purpose: what the
// product needs from the kernel must be in the plan's module list, and a
// kernel without xfrm_user (like OpenWrt images without IPsec) is what the
// product meets on routers.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/kernels/proto"
)

func main() {
	// PID 1 must never return: the kernel panics when init exits, and the
	// host would see a panic instead of a result.
	defer func() {
		if r := recover(); r != nil {
			fmt.Printf("%sFAIL: init panicked: %v\n%s\n", proto.ResultPrefix, r, debug.Stack())
		}
		reboot()
	}()
	s := run()
	b, err := json.Marshal(s)
	if err != nil {
		s.Result = "FAIL: init: " + err.Error()
	} else {
		fmt.Printf("%s%s\n", proto.SummaryPrefix, b)
	}
	fmt.Printf("%s%s\n", proto.ResultPrefix, s.Result)
}

func reboot() {
	os.Stdout.Sync()
	unix.Sync()
	// LINUX_REBOOT_CMD_RESTART: with -no-reboot, qemu exits.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		fmt.Printf("init: reboot: %v\n", err)
	}
	select {}
}

func run() *proto.Summary {
	s := &proto.Summary{}
	var reasons []string
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		fmt.Printf("init: %s\n", msg)
		reasons = append(reasons, msg)
	}
	for _, err := range mountAll() {
		fail("mount: %v", err)
	}
	if err := creditSeed(); err != nil {
		fail("entropy: %v", err)
	}
	plan, err := readPlan()
	if err != nil {
		fail("plan: %v", err)
		s.Result = "FAIL: " + strings.Join(reasons, "; ")
		return s
	}
	s.Kernel = plan.Kernel
	var uts unix.Utsname
	unix.Uname(&uts)
	s.Boot.Release = unix.ByteSliceToString(uts.Release[:])
	s.Boot.Machine = unix.ByteSliceToString(uts.Machine[:])
	for _, m := range plan.Modules {
		name := strings.TrimSuffix(filepath.Base(m), ".ko")
		err := loadModule(m)
		if errors.Is(err, unix.ENODEV) {
			// A driver for hardware the VM has not (crc32c-intel, a soft
			// dependency of libcrc32c, on a CPU without SSE4.2): the
			// generic code serves instead.
			s.Boot.Errors = append(s.Boot.Errors, fmt.Sprintf("%s: %v (no such hardware; not needed)", name, err))
			continue
		}
		if err != nil {
			s.Boot.Errors = append(s.Boot.Errors, fmt.Sprintf("%s: %v", name, err))
			fail("module %s: %v", name, err)
			continue
		}
		s.Boot.Modules++
	}
	// The matrix tests the JIT: the interpreter is what the kernel falls
	// back to when it cannot JIT a program, and TestJITReport must see that.
	if err := os.WriteFile("/proc/sys/net/core/bpf_jit_enable", []byte("1"), 0); errors.Is(err, os.ErrNotExist) {
		// Built without a JIT (Debian's s390x): TestJITReport says so.
		fmt.Println("init: this kernel has no BPF JIT")
	} else if err != nil {
		fail("bpf_jit_enable=1: %v", err)
	}
	if b, err := os.ReadFile("/proc/sys/net/core/bpf_jit_enable"); err == nil {
		s.Boot.JITEnable = strings.TrimSpace(string(b))
	} else {
		s.Boot.JITEnable = "absent"
	}
	bb, _ := json.Marshal(s.Boot)
	fmt.Printf("%s%s\n", proto.BootPrefix, bb)

	env := append(os.Environ(), plan.Env...)
	for _, st := range plan.Steps {
		r, col := runStep(st, env)
		s.Steps = append(s.Steps, r)
		s.JIT = append(s.JIT, col.jit...)
		if col.lab != nil {
			s.Lab = col.lab
		}
		if col.tcx != nil {
			s.TCX = col.tcx
		}
		rb, _ := json.Marshal(r)
		fmt.Printf("%s%s\n", proto.StepPrefix, rb)
		switch {
		case len(r.Missing) > 0:
			fail("%s: tests did not run: %s", st.Name, strings.Join(r.Missing, ", "))
		}
		switch {
		case r.TimedOut:
			fail("%s: timed out after %ds", st.Name, st.TimeoutSeconds)
		case r.Exit != 0 && len(r.Failed) > 0:
			fail("%s: %s", st.Name, strings.Join(r.Failed, ", "))
		case r.Exit != 0:
			fail("%s: exit status %d", st.Name, r.Exit)
		}
	}
	if len(reasons) == 0 {
		s.Result = "PASS"
	} else {
		s.Result = "FAIL: " + strings.Join(reasons, "; ")
	}
	return s
}

func mountAll() []error {
	var errs []error
	for _, m := range []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"bpf", "/sys/fs/bpf", "bpf", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0700"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("%s on %s: %w", m.fstype, m.dst, err))
		}
	}
	return errs
}

// creditSeed adds the host's random bytes to the entropy pool and credits
// them (RNDADDENTROPY), as systemd-random-seed does with a trusted seed.
func creditSeed() error {
	seed, err := os.ReadFile(proto.SeedPath)
	if err != nil {
		return err
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	buf := make([]byte, 8+len(seed))
	*(*int32)(unsafe.Pointer(&buf[0])) = int32(8 * len(seed))
	*(*int32)(unsafe.Pointer(&buf[4])) = int32(len(seed))
	copy(buf[8:], seed)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("RNDADDENTROPY: %w", e)
	}
	return nil
}

func readPlan() (*proto.Plan, error) {
	b, err := os.ReadFile(proto.PlanPath)
	if err != nil {
		return nil, err
	}
	var p proto.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.ENOSYS) {
		// finit_module is 3.8+; init_module takes the image.
		var b []byte
		if b, err = io.ReadAll(f); err == nil {
			err = unix.InitModule(b, "")
		}
	}
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// collected is what the guest picks out of a step's output.
type collected struct {
	jit []proto.JIT
	lab *proto.Lab
	tcx *proto.TCX
}

var (
	// Test results of `go test -v` output ("--- FAIL: TestX (0.1s)",
	// indented for subtests).
	resultRE = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)
	// Lines worth quoting in the report when their test fails: what the
	// test logged (t.Errorf, t.Fatalf: "    file_test.go:12: ...").
	logRE = regexp.MustCompile(`^\s+\S+_test\.go:\d+: `)
	// Lines worth quoting whatever test they belong to: panics, timeouts.
	panicRE = regexp.MustCompile(`^panic: |^fatal error: |test timed out`)
	// A top-level test starting: "=== RUN   TestX".
	runRE = regexp.MustCompile(`^=== RUN\s+([^/\s]+)$`)
)

func runStep(st proto.Step, env []string) (proto.StepResult, collected) {
	r := proto.StepResult{Name: st.Name, Core: len(st.Expect) > 0}
	var col collected
	fmt.Printf("init: step %s: %s\n", st.Name, strings.Join(st.Argv, " "))
	timeout := time.Duration(st.TimeoutSeconds) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.Command(st.Argv[0], st.Argv[1:]...)
	cmd.Dir = st.Dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.Exit = 127
		r.Lines = []string{err.Error()}
		return r, col
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		scan(pr, &r, &col)
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		r.TimedOut = true
		// SIGQUIT makes a Go test binary print every goroutine's stack:
		// the report then says where it hung.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGQUIT)
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-done
		}
	}
	// Whatever the test left behind in its process group goes too.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	pw.Close()
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	ran := map[string]bool{}
	for _, n := range append(append(append([]string(nil), r.Ran...), r.Failed...), r.Skipped...) {
		ran[n] = true
	}
	for _, n := range st.Expect {
		if !ran[n] {
			r.Missing = append(r.Missing, n)
		}
	}
	r.Ran = nil
	var ee *exec.ExitError
	switch {
	case r.TimedOut:
		r.Exit = -1
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	case err != nil:
		r.Exit = 126
		r.Lines = append(r.Lines, err.Error())
	}
	return r, col
}

// scan copies a step's output to the console and collects results.
func scan(rd io.Reader, r *proto.StepResult, col *collected) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	// The current top-level test's log lines, quoted if it fails.
	var logged []string
	quote := func(l string) {
		if len(r.Lines) < 40 {
			r.Lines = append(r.Lines, l)
		}
	}
	for sc.Scan() {
		line := sc.Bytes()
		os.Stdout.Write(append(line, '\n'))
		s := string(line)
		if runRE.MatchString(s) {
			logged = nil
		}
		switch m := resultRE.FindStringSubmatch(s); {
		case m != nil:
			switch m[1] {
			case "PASS":
				if !strings.Contains(m[2], "/") {
					r.Passed++
					r.Ran = append(r.Ran, m[2])
				}
			case "FAIL":
				r.Failed = append(r.Failed, m[2])
				if !strings.Contains(m[2], "/") {
					for _, l := range logged {
						quote(m[2] + ": " + l)
					}
					logged = nil
				}
			case "SKIP":
				r.Skipped = append(r.Skipped, m[2])
			}
		case bytes.Contains(line, []byte("MAPT-")):
			// Our structured lines, collected below.
		case panicRE.MatchString(s):
			quote(strings.TrimSpace(s))
		case logRE.MatchString(s) && len(logged) < 20:
			logged = append(logged, strings.TrimSpace(s))
		}
		if i := strings.Index(s, proto.JITPrefix); i >= 0 {
			var j proto.JIT
			if json.Unmarshal([]byte(s[i+len(proto.JITPrefix):]), &j) == nil {
				col.jit = append(col.jit, j)
			}
		}
		if i := strings.Index(s, proto.LabPrefix); i >= 0 {
			var l proto.Lab
			if json.Unmarshal([]byte(s[i+len(proto.LabPrefix):]), &l) == nil {
				col.lab = &l
			}
		}
		if i := strings.Index(s, proto.TCXPrefix); i >= 0 {
			var x proto.TCX
			if json.Unmarshal([]byte(s[i+len(proto.TCXPrefix):]), &x) == nil {
				col.tcx = &x
			}
		}
	}
	// A line longer than the buffer: keep reading so the test never blocks.
	io.Copy(os.Stdout, rd)
}
