package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// InCI reports whether the tests run under CI (CI=true), where nothing
// privileged may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require checks that the test can run privileged: root, and each named
// command on PATH. Outside CI it skips the test when something is missing;
// under CI it fails it.
func Require(t T, commands ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	need(t, append(missing, missingCommands(commands)...), "privileged tests must run")
}

// RequireCommands is Require for a test that runs tools but needs no
// privilege (a linter, an independent reader of a format our code writes).
func RequireCommands(t T, commands ...string) {
	t.Helper()
	need(t, missingCommands(commands), "it must run")
}

// debianPackage names the Debian package of the commands the tests run
// whose package has another name (make deps installs them all).
var debianPackage = map[string]string{
	"ip": "iproute2", "ss": "iproute2", "tc": "iproute2", "nft": "nftables",
	"ping": "iputils-ping", "sysctl": "procps", "kea-dhcp6": "kea-dhcp6-server",
	"bird": "bird2", "birdc": "bird2", "promtool": "prometheus", "node": "nodejs",
}

// missingCommands lists the commands that are not on PATH, each with its
// Debian package where the names differ.
func missingCommands(commands []string) []string {
	var missing []string
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			if pkg, ok := debianPackage[c]; ok {
				c += " (Debian package " + pkg + ")"
			}
			missing = append(missing, c)
		}
	}
	return missing
}

// need skips t (or, under CI, fails it, saying why it must run) when
// something is missing.
func need(t T, missing []string, why string) {
	t.Helper()
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("testenv: needs %s", strings.Join(missing, ", "))
	if missing[len(missing)-1] != "root" {
		msg += " (make deps installs the packages)"
	}
	if InCI() {
		t.Fatal(msg + " (CI=true: " + why + ")")
	}
	t.Skip(msg)
}

// Lab is a set of namespaces and processes owned by one test.
type Lab struct {
	t   T
	id  string
	dir string

	mu    sync.Mutex
	nss   []*NS
	procs []*Proc
}

// New creates an empty lab; everything it creates is removed by t.Cleanup.
func New(t T) *Lab {
	t.Helper()
	Require(t, "ip")
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	l := &Lab{t: t, id: hex.EncodeToString(b[:]), dir: t.TempDir()}
	t.Cleanup(l.close)
	return l
}

// Dir is a scratch directory removed with the lab.
func (l *Lab) Dir() string { return l.dir }

func (l *Lab) close() {
	l.mu.Lock()
	procs, nss := l.procs, l.nss
	l.procs, l.nss = nil, nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		n := nss[i]
		n.handle.Close()
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			l.t.Errorf("testenv: delete netns %s: %v: %s", n.Name, err, out)
		}
	}
}

// NS is a network namespace of the lab.
type NS struct {
	lab    *Lab
	Name   string // the name under /run/netns, unique to the lab
	Short  string // the name the test gave
	handle netns.NsHandle
}

// NS creates a namespace with loopback up. Its name is unique to the lab,
// so labs of parallel tests never collide.
func (l *Lab) NS(short string) *NS {
	l.t.Helper()
	name := "mt" + l.id + "-" + short
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		l.t.Fatalf("testenv: add netns %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		exec.Command("ip", "netns", "del", name).Run()
		l.t.Fatalf("testenv: open netns %s: %v", name, err)
	}
	n := &NS{lab: l, Name: name, Short: short, handle: h}
	l.mu.Lock()
	l.nss = append(l.nss, n)
	l.mu.Unlock()
	n.MustExec("ip", "link", "set", "lo", "up")
	// No duplicate address detection: lab addresses are unique by
	// construction, and tentative link-local addresses would make DHCPv6
	// servers and clients fail to bind for the first second or two.
	n.Sysctl("net.ipv6.conf.all.accept_dad", "0")
	n.Sysctl("net.ipv6.conf.default.accept_dad", "0")
	return n
}

// Handle returns the namespace's handle, for netlink.NewHandleAt,
// nftables.WithNetNSFd and the like. The lab owns it.
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testenv: %s: %s: %w: %s", n.Short, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (n *NS) MustExec(args ...string) string {
	n.lab.t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		n.lab.t.Fatal(err)
	}
	return out
}

// Do runs fn on an OS thread switched into the namespace. fn must not
// start goroutines that expect to stay in it.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			errc <- fmt.Errorf("testenv: enter %s: %w", n.Short, err)
			runtime.UnlockOSThread()
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime then ends it rather
			// than reuse it in the wrong namespace.
			errc <- fmt.Errorf("testenv: leave %s: %w", n.Short, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Veth links namespace a (device aDev) with namespace b (device bDev),
// both up.
func (l *Lab) Veth(a *NS, aDev string, b *NS, bDev string) {
	l.t.Helper()
	tmp := "v" + l.id + fmt.Sprint(time.Now().UnixNano()%100000)
	a.MustExec("ip", "link", "add", tmp, "type", "veth", "peer", "name", bDev, "netns", b.Name)
	a.MustExec("ip", "link", "set", "dev", tmp, "name", aDev)
	a.MustExec("ip", "link", "set", "dev", aDev, "up")
	b.MustExec("ip", "link", "set", "dev", bDev, "up")
}

// Bridge creates an up bridge device in n.
func (n *NS) Bridge(dev string) {
	n.lab.t.Helper()
	n.MustExec("ip", "link", "add", dev, "type", "bridge")
	n.MustExec("ip", "link", "set", "dev", dev, "up")
}

// Addr adds an address (CIDR) to a device, with IPv6 DAD off so the
// address is usable at once.
func (n *NS) Addr(dev, cidr string) {
	n.lab.t.Helper()
	args := []string{"ip", "addr", "add", cidr, "dev", dev}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	n.MustExec(args...)
}

// Route adds a route, e.g. Route("default", "via", "192.168.0.1").
func (n *NS) Route(args ...string) {
	n.lab.t.Helper()
	ip := "-4"
	for _, a := range args {
		if strings.Contains(a, ":") {
			ip = "-6"
		}
	}
	n.MustExec(append([]string{"ip", ip, "route", "add"}, args...)...)
}

// Sysctl sets a sysctl inside the namespace.
func (n *NS) Sysctl(key, val string) {
	n.lab.t.Helper()
	n.MustExec("sysctl", "-q", "-w", key+"="+val)
}

// Forwarding turns the namespace into an IPv4 and IPv6 router.
func (n *NS) Forwarding() {
	n.lab.t.Helper()
	n.Sysctl("net.ipv4.conf.all.forwarding", "1")
	n.Sysctl("net.ipv6.conf.all.forwarding", "1")
}

// Proc is a process the lab started; it is stopped with the lab.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Start runs a command in the background inside the namespace. Its
// output is kept (Output) and logged when the test fails.
func (n *NS) Start(args ...string) *Proc {
	n.lab.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	buf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	// Its own process group: Stop can then end whatever it forked too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.lab.t.Fatalf("testenv: %s: start %s: %v", n.Short, strings.Join(args, " "), err)
	}
	p := &Proc{Cmd: cmd, Name: n.Short + ":" + filepath.Base(args[0]), out: buf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.lab.mu.Lock()
	n.lab.procs = append(n.lab.procs, p)
	n.lab.mu.Unlock()
	t := n.lab.t
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: output of %s:\n%s", p.Name, p.Output())
		}
	})
	return p
}

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (by PID).
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to end and returns its error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("testenv: %s still running after %s", p.Name, timeout)
	}
}

// Refused waits up to timeout for a process that must not run (a second
// instance, a bad configuration) to exit non-zero, and returns its output;
// it fails t, stopping the process, when it exits 0 or keeps running.
func (p *Proc) Refused(t T, timeout time.Duration) string {
	t.Helper()
	err := p.Wait(timeout)
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		p.Stop()
		t.Fatalf("%s: %v, want a non-zero exit:\n%s", p.Name, err, p.Output())
	}
	out := p.Output()
	t.Logf("%s: %s", p.Name, strings.TrimSpace(out))
	return out
}

// SignalWait sends sig and waits up to timeout for the process to end,
// returning how long that took. A SIGKILL's exit status is what was asked
// for, not an error.
func (p *Proc) SignalWait(sig syscall.Signal, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	p.Signal(sig)
	err := p.Wait(timeout)
	took := time.Since(start)
	var ee *exec.ExitError
	if sig == syscall.SIGKILL && errors.As(err, &ee) {
		err = nil
	}
	return took, err
}

// Stop ends the process group the lab started: SIGTERM, then SIGKILL
// after two seconds. It is safe to call twice.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	pgid := p.Cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// WaitFor polls cond every 20 ms until it returns true or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
