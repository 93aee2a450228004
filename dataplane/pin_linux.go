package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Pinning keeps the translator running while its process is away (a
// crash, kill -9, a restart or an upgrade): its maps, programs and TCX
// links are pinned in the BPF filesystem, under a directory of ours per
// translator, and the next start adopts them instead of loading new ones.
//
//	root/<name>/map_<map>    every map of the object
//	root/<name>/prog_<prog>  every program (entry points and tail calls)
//	root/<name>/link_<prog>  the TCX link of each entry point
//
// cls_bpf filters need no pin: the qdisc holds them.

// DefaultPinRoot is where the agent and the BR pin their translators.
const DefaultPinRoot = "/sys/fs/bpf/mapt"

// Adoption says what LoadPinned found in the pin directory.
type Adoption string

const (
	// AdoptNew: nothing was pinned; the translator is new and pinned now.
	AdoptNew Adoption = "new"
	// AdoptKept: the pinned translator is this one (same program tags,
	// maps that fit the configuration): its maps, programs and links stay,
	// so the packets never see a change; only the configuration is
	// rewritten, atomically as Update does.
	AdoptKept Adoption = "kept"
	// AdoptReplaced: the pinned translator differs (another version of
	// the programs, or maps too small for the rules): new programs and
	// maps are loaded and filled, then swapped onto the hooks atomically
	// (BPF_LINK_UPDATE on the pinned TCX links, a cls_bpf filter
	// replace). Counters, the fragment cache and the ICMP rate state
	// start again.
	AdoptReplaced Adoption = "replaced"
)

// pinState is a pinned translator's directory and what LoadPinned found.
type pinState struct {
	dir      string
	adoption Adoption
	why      string // for AdoptReplaced: what differed
}

func (p *pinState) linkPath(prog string) string { return filepath.Join(p.dir, "link_"+prog) }

// CEPinName names the pin directory of a CE's translator: ce-<wan>.
func CEPinName(wan string) string { return pinName("ce-" + wan) }

// BRPinName names the pin directory of a BR's translator: br-<ipv6
// side>-<index of its DMR in the domain file>.
func BRPinName(ipv6Side string, index int) string {
	return pinName("br-" + ipv6Side + "-" + strconv.Itoa(index))
}

// SAVIPinName names the pin of the BR's source check (dataplane/savi)
// on a device: savi-<dev>.
func SAVIPinName(dev string) string { return pinName("savi-" + dev) }

// pinName makes a name fit the BPF filesystem, which refuses dots
// (reserved for its own files) and device names may have them (VLANs:
// eth0.100), and qualifies it with the network namespace outside the
// initial one: the BPF filesystem is shared by every namespace that
// mounts it, device names are not.
func pinName(name string) string {
	name = strings.NewReplacer("%", "%25", ".", "%2e", "/", "%2f").Replace(name)
	if self, initial := namespace("net"); !initial {
		name += "@net" + strconv.FormatUint(self, 10)
	}
	return name
}

// Inode numbers the kernel gives its initial namespaces
// (include/linux/proc_ns.h), for when PID 1's cannot be read.
var initNSInodes = map[string]uint64{"net": 0xeffffff9, "mnt": 0xeffffff8}

// namespace returns the inode of the caller's namespace of kind (net,
// mnt) and whether it is the initial one: PID 1's, or where that cannot
// be read (a sandbox hides it), the kernel's fixed number for it. A
// namespace it cannot tell is taken for another one.
func namespace(kind string) (uint64, bool) {
	// The calling thread's: a Go program may have moved one thread into
	// another namespace (setns), which /proc/self does not show.
	self, err := nsInode("/proc/thread-self/ns/" + kind)
	if err != nil {
		if self, err = nsInode("/proc/self/ns/" + kind); err != nil {
			return 0, true // no /proc: nothing to tell namespaces apart by
		}
	}
	if init, err := nsInode("/proc/1/ns/" + kind); err == nil {
		return self, self == init
	}
	return self, self == initNSInodes[kind]
}

func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// PreparePinRoot makes root a directory on a BPF filesystem and returns
// it: DefaultPinRoot for "", nothing ("") for "-", the setting of
// ce-agent's and br's --pin-dir. When root is under /sys/fs/bpf and
// nothing is mounted there, it mounts one, as tc and bpftool do, but only
// in the initial mount namespace: elsewhere (ip netns exec remounts /sys)
// a mount of ours would end with the namespace and the pins with it,
// which the error says. Callers run unpinned when it fails.
func PreparePinRoot(root string) (string, error) {
	switch root {
	case "-":
		return "", nil
	case "":
		root = DefaultPinRoot
	}
	return root, preparePinRoot(root)
}

func preparePinRoot(root string) error {
	dir := filepath.Clean(root)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if onBPFFS(dir) {
		return mkdirPins(root)
	}
	const std = "/sys/fs/bpf"
	if dir != std || !strings.HasPrefix(filepath.Clean(root)+"/", std+"/") {
		return fmt.Errorf("dataplane: pin directory %s: %s is not on a BPF filesystem", root, dir)
	}
	if _, initial := namespace("mnt"); !initial {
		return fmt.Errorf("dataplane: pin directory %s: no BPF filesystem on %s in this mount namespace, and one mounted here would end with it", root, std)
	}
	if err := unix.Mount("bpf", std, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		return fmt.Errorf("dataplane: mount a BPF filesystem on %s: %w", std, err)
	}
	return mkdirPins(root)
}

func mkdirPins(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dataplane: pin directory: %w", err)
	}
	return nil
}

func onBPFFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && uint32(st.Type) == unix.BPF_FS_MAGIC
}

// LoadPinned is Load for a translator that outlives its process: it is
// pinned under dir (root/CEPinName or root/BRPinName, on a BPF
// filesystem), and what an earlier run pinned there is adopted (see
// Adoption). Attach then keeps, or updates, the pinned links. Close
// removes everything including the pins; LeaveInPlace keeps them.
func LoadPinned(cfg Config, dir string) (*Translator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := CheckKernel(); err != nil {
		return nil, err
	}
	if err := mkdirPins(dir); err != nil {
		return nil, err
	}
	if !onBPFFS(dir) {
		return nil, fmt.Errorf("dataplane: pin directory %s is not on a BPF filesystem", dir)
	}
	spec, names, tails, err := loadSpec(cfg.Mode)
	if err != nil {
		return nil, err
	}
	tables, err := buildTables(cfg.FMRs)
	if err != nil {
		return nil, err
	}
	old := openPins(dir, spec)
	defer old.close()
	capacity := cfg.capacity()
	if n := old.capacity(); cfg.Capacity == 0 && n > 0 && n >= tables.size() {
		// Rules that still fit keep the maps they are in.
		capacity = n
	}
	sizeMaps(spec, capacity)
	if tables.size() > capacity {
		return nil, fmt.Errorf("dataplane: load: %d rules exceed the capacity %d", tables.size(), capacity)
	}
	why := old.mismatch(spec)
	if why == "" {
		t, err := adopt(cfg, old, names, capacity, dir)
		if err != nil {
			return nil, err
		}
		old.maps, old.progs = nil, nil // the translator owns them now
		return t, nil
	}
	coll, err := newCollection(spec, cfg.Mode, tails)
	if err != nil {
		return nil, err
	}
	t := &Translator{mode: cfg.Mode, coll: coll, names: names, cap: capacity, slot: 1, tables: ruleTables{}}
	t.pin = &pinState{dir: dir, adoption: AdoptNew}
	if !old.empty() {
		t.pin.adoption, t.pin.why = AdoptReplaced, why
	}
	if err := t.Update(cfg); err != nil {
		coll.Close()
		return nil, err
	}
	// The new objects take the pins' names (a rename each, so the
	// directory never lacks one); the links keep the old programs on the
	// hooks until Attach swaps them.
	if err := pinAll(dir, coll); err != nil {
		coll.Close()
		return nil, err
	}
	return t, nil
}

// adopt builds the translator from the pinned objects of an earlier run
// of the same programs.
func adopt(cfg Config, old *pins, names []string, capacity int, dir string) (*Translator, error) {
	coll := &ebpf.Collection{Maps: old.maps, Programs: old.progs}
	t := &Translator{mode: cfg.Mode, coll: coll, names: names, cap: capacity, awaitAttach: true}
	t.pin = &pinState{dir: dir, adoption: AdoptKept}
	if err := coll.Maps["active"].Lookup(uint32(0), &t.slot); err != nil {
		return nil, fmt.Errorf("dataplane: adopt %s: active slot: %w", dir, err)
	}
	var err error
	m := coll.Maps
	if t.tables.v4, err = readAll[ceLpmV4Key, ceRule](m["rules_v4"]); err == nil {
		if t.tables.v6, err = readAll[ceLpmV6Key, ceRule](m["rules_v6"]); err == nil {
			if t.tables.psid, err = readAll[cePsidKey, ceRule](m["rules_psid"]); err == nil {
				if t.tables.v4x, err = readAll[uint32, ceRule](m["rules_v4x"]); err == nil {
					t.tables.v6x, err = readAll[ceV6ExactKey, ceRule](m["rules_v6x"])
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dataplane: adopt %s: read the rules: %w", dir, err)
	}
	if err := t.Update(cfg); err != nil {
		return nil, err
	}
	return t, nil
}

// readAll reads a map whole: an adopted translator's rules, for Update
// to delete the stale ones.
func readAll[K comparable, V any](m *ebpf.Map) (map[K]V, error) {
	out := map[K]V{}
	var (
		k K
		v V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	return out, it.Err()
}

// Adoption reports what LoadPinned found ("" for a translator from
// Load) and, for AdoptReplaced, what differed.
func (t *Translator) Adoption() (Adoption, string) {
	if t.pin == nil {
		return "", ""
	}
	return t.pin.adoption, t.pin.why
}

// PinDir is where the translator is pinned ("" when it is not).
func (t *Translator) PinDir() string {
	if t.pin == nil {
		return ""
	}
	return t.pin.dir
}

// pins are the objects an earlier run pinned in a directory.
type pins struct {
	maps  map[string]*ebpf.Map
	progs map[string]*ebpf.Program
	links map[string]bool // entry points with a pinned link
	dir   string
}

// openPins opens what dir holds for the names of spec; a missing or
// unreadable pin is left out (mismatch says so).
func openPins(dir string, spec *ebpf.CollectionSpec) *pins {
	p := &pins{maps: map[string]*ebpf.Map{}, progs: map[string]*ebpf.Program{}, links: map[string]bool{}, dir: dir}
	for name := range spec.Maps {
		if m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+name), nil); err == nil {
			p.maps[name] = m
		}
	}
	for name := range spec.Programs {
		if pr, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog_"+name), nil); err == nil {
			p.progs[name] = pr
		}
		if _, err := os.Stat(filepath.Join(dir, "link_"+name)); err == nil {
			p.links[name] = true
		}
	}
	return p
}

func (p *pins) empty() bool { return len(p.maps) == 0 && len(p.progs) == 0 && len(p.links) == 0 }

// capacity is the size of the pinned rule maps (0 when there are none).
func (p *pins) capacity() int {
	if m := p.maps[ruleMaps[0]]; m != nil {
		return int(m.MaxEntries())
	}
	return 0
}

// mismatch says why the pinned objects cannot serve spec ("" when they
// can): one missing, a map of another shape, a program whose tag is not
// the one spec's instructions give (another version), or a pinned link
// running another program than the pinned one (a replacement that was
// interrupted).
func (p *pins) mismatch(spec *ebpf.CollectionSpec) string {
	if p.empty() {
		return "nothing pinned"
	}
	for name, ms := range spec.Maps {
		m := p.maps[name]
		if m == nil {
			return "map " + name + " not pinned"
		}
		if err := ms.Compatible(m); err != nil {
			return fmt.Sprintf("map %s: %v", name, err)
		}
	}
	for name, ps := range spec.Programs {
		pr := p.progs[name]
		if pr == nil {
			return "program " + name + " not pinned"
		}
		info, err := pr.Info()
		if err != nil {
			return fmt.Sprintf("program %s: %v", name, err)
		}
		if err := ps.Compatible(info); err != nil {
			return fmt.Sprintf("program %s: another version (tag %s)", name, info.Tag)
		}
		if p.links[name] {
			id, _ := info.ID()
			if lid, ok := pinnedLinkProg(filepath.Join(p.dir, "link_"+name)); ok && lid != id {
				return fmt.Sprintf("program %s: its link runs program %d, not the pinned %d", name, lid, id)
			}
		}
	}
	return ""
}

func (p *pins) close() {
	for _, m := range p.maps {
		m.Close()
	}
	for _, pr := range p.progs {
		pr.Close()
	}
}

// pinnedLinkProg is the program a pinned link runs.
func pinnedLinkProg(path string) (ebpf.ProgramID, bool) {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return 0, false
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return 0, false
	}
	return info.Program, true
}

// pinAll pins every map and program of coll in dir, each under its final
// name through a rename, and removes the pins of names coll does not have
// (links excepted: Attach deals with them).
func pinAll(dir string, coll *ebpf.Collection) error {
	keep := map[string]bool{}
	pin := func(file string, obj interface{ Pin(string) error }) error {
		keep[file] = true
		final := filepath.Join(dir, file)
		tmp := final + "_new"
		os.Remove(tmp)
		if err := obj.Pin(tmp); err != nil {
			return fmt.Errorf("dataplane: pin %s: %w", final, err)
		}
		if err := os.Rename(tmp, final); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("dataplane: pin %s: %w", final, err)
		}
		return nil
	}
	for name, m := range coll.Maps {
		if err := pin("map_"+name, m); err != nil {
			return err
		}
	}
	for name, p := range coll.Programs {
		if err := pin("prog_"+name, p); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("dataplane: pins: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); !keep[n] && (strings.HasPrefix(n, "map_") || strings.HasPrefix(n, "prog_")) {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

// removePins removes our pins from dir, then dir itself.
func removePins(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dataplane: remove pins: %w", err)
	}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "map_") || strings.HasPrefix(n, "prog_") || strings.HasPrefix(n, "link_") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dataplane: remove pins: %w", err)
	}
	// The pin root too once the last translator's directory is gone
	// (PreparePinRoot made it): a removal leaves nothing behind. It
	// stays while it holds anything (ENOTEMPTY) and when it is the
	// filesystem's root (EBUSY).
	os.Remove(filepath.Dir(dir))
	return nil
}

// RemovePinned removes a translator an earlier run left in dir (with
// LeaveInPlace, or killed): its links go, and with them its programs
// from the hooks; cls_bpf filters stay (Close of a translator attached
// in clsact mode removes those).
func RemovePinned(dir string) error { return removePins(dir) }

// programVariant, when set at link time (-ldflags "-X
// github.com/mapt-go/mapt/dataplane.programVariant=x"), puts one more
// instruction (r0 = 0) at the start of every program: a build that does
// the same with other program tags, which is what an upgrade looks like to
// LoadPinned. The upgrade tests build such a binary; releases leave it
// empty.
var programVariant string

func variantOf(insns asm.Instructions) asm.Instructions {
	if len(insns) == 0 {
		return insns
	}
	first := insns[0]
	nop := asm.Mov.Imm(asm.R0, 0).WithSymbol(first.Symbol()).WithSource(first.Source())
	if fn := btf.FuncMetadata(&first); fn != nil {
		nop = btf.WithFuncMetadata(nop, fn)
		first = btf.WithFuncMetadata(first, nil)
	}
	first = first.WithSymbol("").WithSource(nil)
	out := make(asm.Instructions, 0, len(insns)+1)
	return append(append(out, nop, first), insns[1:]...)
}
