package dataplane

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/mapt-go/mapt/internal/serve"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// One translator per hook: a second agent or BR on the same devices
// would attach a second translator next to the first and, when either
// stops, remove state the other relies on. Two checks refuse it before
// anything is touched: Claim, a name in the network namespace that only
// one live process can hold, and CheckHooks, which finds our programs on
// a device's hooks and whether a live process holds them. Programs that
// no live process holds (pinned by a run that was killed, cls_bpf filters
// left behind) are not in the way: the next run adopts them.

// InUseError says what is in use and by which process.
type InUseError struct {
	What    string // "wan's ingress hook", "state directory /var/lib/ce-agent", ...
	PID     int
	Command string // its command line, as /proc shows it
}

func (e *InUseError) Error() string {
	if e.PID <= 0 {
		return e.What + " is in use by another process"
	}
	cmd := e.Command
	if cmd == "" {
		cmd = "?"
	}
	return fmt.Sprintf("%s is in use by pid %d (%s)", e.What, e.PID, cmd)
}

// InUse returns an *InUseError for what, held by pid.
func InUse(what string, pid int) error {
	return &InUseError{What: what, PID: pid, Command: commandLine(pid)}
}

// commandLine is a process's command line, shortened.
func commandLine(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// Claim takes name (CE: "ce-<wan>", BR: "br-<device>") for this process
// in its network namespace, the scope of device names: an abstract unix
// socket, which the kernel frees when the process ends however it ends.
// When another live process holds it, the error is an *InUseError naming
// that process. release gives it up.
func Claim(name string) (release func(), err error) {
	addr := "@mapt/" + name
	l, err := net.Listen("unix", addr)
	if err == nil {
		// Accept and drop: a second claimant only wants our PID, which
		// it reads from the connection (SO_PEERCRED).
		return serve.Accept(l, func(c net.Conn) { c.Close() }), nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("dataplane: claim %s: %w", name, err)
	}
	pid, perr := PeerPID("unix", addr)
	if perr != nil {
		return nil, fmt.Errorf("dataplane: %s is held by another process (%v)", name, perr)
	}
	return nil, fmt.Errorf("dataplane: %w", InUse(name, pid))
}

// PeerPID connects to a unix socket and returns the PID of the process
// listening on it (SO_PEERCRED).
func PeerPID(network, addr string) (int, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return int(cred.Pid), nil
}

// ourPrograms are the names of the programs of our objects (CE, BR, and
// the BR's source check, dataplane/savi).
var ourPrograms = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{"savi_ingress": true}
	for _, load := range []func() (*ebpf.CollectionSpec, error){loadCe, loadBr} {
		if spec, err := load(); err == nil {
			for n := range spec.Programs {
				names[n] = true
			}
		}
	}
	return names
})

// CheckHooks returns an *InUseError (wrapped) when one of our programs is
// on a hook of dev (TCX or cls_bpf, ingress or egress) and a live process
// other than this one holds it: another agent or BR runs there. It is
// called before anything is attached.
func CheckHooks(dev string) error {
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return nil // not there yet: nothing on it
	}
	ours := map[ebpf.ProgramID]string{}
	for _, h := range []struct {
		name    string
		at      ebpf.AttachType
		ingress bool
	}{{"ingress", ebpf.AttachTCXIngress, true}, {"egress", ebpf.AttachTCXEgress, false}} {
		if q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: h.at}); err == nil {
			for _, p := range q.Programs {
				if name := progName(p.ID); ourPrograms()[name] {
					ours[p.ID] = fmt.Sprintf("%s's %s hook (%s, TCX)", dev, h.name, name)
				}
			}
		}
		for id, name := range clsactPrograms(ifc.Index, h.ingress) {
			if ourPrograms()[strings.TrimPrefix(name, "mapt-")] {
				ours[id] = fmt.Sprintf("%s's %s hook (%s, cls_bpf)", dev, h.name, strings.TrimPrefix(name, "mapt-"))
			}
		}
	}
	if len(ours) == 0 {
		return nil
	}
	holders, err := progHolders()
	if err != nil {
		return fmt.Errorf("dataplane: check %s's hooks: %w", dev, err)
	}
	for id, what := range ours {
		if pid, ok := holders[id]; ok {
			return fmt.Errorf("dataplane: %w", InUse(what, pid))
		}
	}
	return nil
}

func progName(id ebpf.ProgramID) string {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return ""
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return ""
	}
	return info.Name
}

// clsactPrograms are the cls_bpf filters on a hook, by program ID.
func clsactPrograms(ifindex int, ingress bool) map[ebpf.ProgramID]string {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil
	}
	defer h.Close()
	parent := uint32(netlink.HANDLE_MIN_EGRESS)
	if ingress {
		parent = netlink.HANDLE_MIN_INGRESS
	}
	fs, err := h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, parent)
	if err != nil {
		return nil
	}
	out := map[ebpf.ProgramID]string{}
	for _, f := range fs {
		if bf, ok := f.(*netlink.BpfFilter); ok {
			out[ebpf.ProgramID(bf.Id)] = bf.Name
		}
	}
	return out
}

// progHolders maps the IDs of the BPF programs that live processes other
// than this one hold (a program or link file descriptor; a link's fdinfo
// names its program) to one such process, from /proc as bpftool does.
func progHolders() (map[ebpf.ProgramID]int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	out := map[ebpf.ProgramID]int{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || (target != "anon_inode:bpf-prog" && target != "anon_inode:bpf-link") {
				continue
			}
			if id, ok := fdinfoProgID(filepath.Join("/proc", p.Name(), "fdinfo", fd.Name())); ok {
				out[id] = pid
			}
		}
	}
	return out, nil
}

func fdinfoProgID(path string) (ebpf.ProgramID, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "prog_id:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return ebpf.ProgramID(n), err == nil
		}
	}
	return 0, false
}
