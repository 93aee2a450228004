package kernels

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Kernel is one entry of the matrix: a Debian kernel and how to boot it.
type Kernel struct {
	ID     string // e.g. "mipsel-6.1"
	Arch   string // dpkg architecture
	Meta   string // the meta-package that names the kernel
	Suite  string // pinned suite, or "" for bookworm's candidate (bookworm-security when newer)
	GOARCH string
	GOENV  []string // GOARM, GOMIPS
	Qemu   string   // qemu-system-* binary
	// Machine are qemu's machine and CPU flags.
	Machine []string
	Console string // the kernel's console device
	MemMiB  int
	// Triplet is the multiarch directory of the arch's libraries.
	Triplet string
	// Full kernels run every test of every step (see Steps).
	Full bool
	// Slow is how much slower than amd64 TCG runs the guest (measured):
	// step timeouts are multiplied by it.
	Slow float64
}

// Matrix is every kernel the harness knows, in the order of the report.
// Debian has no big-endian MIPS and no 5.15 or 6.6 kernels: 5.10 and 6.1
// bracket OpenWrt's 5.15, and 6.12 covers TCX (6.6+). s390x is the one
// big-endian target, so the bpfeb objects run somewhere.
//
// x86 runs -cpu max without CX16: qemu 7.2's TCG mis-emulates cmpxchg16b
// on a %gs address (EFLAGS come back as garbage), and 6.12's SLUB uses
// exactly that on every allocation (double fault at boot); without CX16
// the kernel takes its other path.
var Matrix = []Kernel{
	{ID: "amd64-5.10", Arch: "amd64", Meta: "linux-image-cloud-amd64", Suite: "bullseye", GOARCH: "amd64",
		Qemu: "qemu-system-x86_64", Machine: []string{"-M", "q35", "-cpu", "max,-cx16"}, Console: "ttyS0", MemMiB: 512, Triplet: "x86_64-linux-gnu", Slow: 1},
	{ID: "amd64-6.1", Arch: "amd64", Meta: "linux-image-cloud-amd64", GOARCH: "amd64",
		Qemu: "qemu-system-x86_64", Machine: []string{"-M", "q35", "-cpu", "max,-cx16"}, Console: "ttyS0", MemMiB: 512, Triplet: "x86_64-linux-gnu", Slow: 1},
	{ID: "amd64-6.12", Arch: "amd64", Meta: "linux-image-cloud-amd64", Suite: "bookworm-backports", GOARCH: "amd64",
		Qemu: "qemu-system-x86_64", Machine: []string{"-M", "q35", "-cpu", "max,-cx16"}, Console: "ttyS0", MemMiB: 512, Triplet: "x86_64-linux-gnu", Slow: 1.2},
	{ID: "arm64-6.1", Arch: "arm64", Meta: "linux-image-arm64", GOARCH: "arm64",
		Qemu: "qemu-system-aarch64", Machine: []string{"-M", "virt", "-cpu", "cortex-a57"}, Console: "ttyAMA0", MemMiB: 512, Triplet: "aarch64-linux-gnu", Slow: 1.5},
	// armmp is not an LPAE kernel: highmem=off keeps qemu's PCIe windows
	// below 4 GiB, where it can reach them.
	{ID: "armhf-6.1", Arch: "armhf", Meta: "linux-image-armmp", GOARCH: "arm", GOENV: []string{"GOARM=7"},
		Qemu: "qemu-system-arm", Machine: []string{"-M", "virt,highmem=off", "-cpu", "cortex-a15"}, Console: "ttyAMA0", MemMiB: 512, Triplet: "arm-linux-gnueabihf", Slow: 2},
	{ID: "mipsel-6.1", Arch: "mipsel", Meta: "linux-image-4kc-malta", GOARCH: "mipsle", GOENV: []string{"GOMIPS=softfloat"},
		Qemu: "qemu-system-mipsel", Machine: []string{"-M", "malta"}, Console: "ttyS0", MemMiB: 256, Triplet: "mipsel-linux-gnu", Slow: 3},
	{ID: "s390x-6.1", Arch: "s390x", Meta: "linux-image-s390x", GOARCH: "s390x",
		Qemu: "qemu-system-s390x", Machine: []string{"-M", "s390-ccw-virtio"}, Console: "ttysclp0", MemMiB: 512, Triplet: "s390x-linux-gnu", Slow: 2},
}

// Archs returns the distinct dpkg architectures of ks.
func Archs(ks []Kernel) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range ks {
		if !seen[k.Arch] {
			seen[k.Arch] = true
			out = append(out, k.Arch)
		}
	}
	return out
}

// Modules are the kernel modules the tests need (most of Debian's
// netfilter and TC is modular). xfrm_user is deliberately not among them:
// the product must run without it, as on OpenWrt images without IPsec.
var Modules = []string{
	"veth", "tun", "bridge", "sch_ingress", "cls_bpf",
	"nf_tables", "nf_conntrack", "nf_nat", "nft_nat", "nft_chain_nat", "nft_numgen",
	"nft_hash", "nft_ct", "nft_counter", "nf_conntrack_netlink",
	"af_packet", // tcpdump (testenv.Capture)
}

// forbidden modules must not end up in the guest (see Modules).
var forbidden = []string{"xfrm_user"}

// Extracted is a kernel package unpacked in the cache.
type Extracted struct {
	Kernel
	Root    string // the unpacked tree
	Release string // the directory under lib/modules
	Image   string // what qemu boots (boot/vmlinuz-RELEASE)
	Package string // the concrete linux-image package
}

// FetchKernel resolves k's meta-package to its concrete linux-image
// package, downloads and unpacks it into cache/kernels/ID and indexes its
// modules (depmod). A kernel already unpacked is used as it is, without
// asking apt (refresh asks again).
func FetchKernel(a *Archive, cache string, k Kernel, refresh bool) (*Extracted, error) {
	root := filepath.Join(cache, "kernels", k.ID)
	if !refresh {
		if e, indexed, err := inspect(k, root); err == nil && indexed {
			return e, nil
		}
	}
	spec := k.Meta + ":" + k.Arch
	if k.Suite != "" {
		spec += "/" + k.Suite
	}
	metas, err := a.Show(spec)
	if err != nil {
		return nil, err
	}
	var concrete string
	for _, d := range metas[0].Depends {
		if strings.HasPrefix(d, "linux-image-") {
			concrete = d
		}
	}
	if concrete == "" {
		return nil, fmt.Errorf("kernels: %s: %s %s depends on no linux-image package", k.ID, metas[0].Name, metas[0].Version)
	}
	spec = concrete + ":" + k.Arch
	if k.Suite != "" {
		spec += "/" + k.Suite
	}
	pkgs, err := a.Show(spec)
	if err != nil {
		return nil, err
	}
	debs, err := a.Download(pkgs[0])
	if err != nil {
		return nil, err
	}
	if err := extract(root, debs); err != nil {
		return nil, err
	}
	e, _, err := inspect(k, root)
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("depmod", "-b", modulesBase(root), e.Release).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kernels: depmod %s: %w: %s", e.Release, err, out)
	}
	return e, nil
}

// modulesBase is the -b of depmod and modprobe: they look under
// BASE/lib/modules, and trees with usrmerged paths have usr/lib/modules.
func modulesBase(root string) string {
	if _, err := os.Stat(filepath.Join(root, "lib", "modules")); err != nil {
		if _, err := os.Stat(filepath.Join(root, "usr", "lib", "modules")); err == nil {
			return filepath.Join(root, "usr")
		}
	}
	return root
}

// inspect finds the kernel image and release in an unpacked tree, and
// whether depmod has indexed its modules.
func inspect(k Kernel, root string) (*Extracted, bool, error) {
	b, err := os.ReadFile(filepath.Join(root, ".debs"))
	if err != nil {
		return nil, false, err
	}
	rels, _ := filepath.Glob(filepath.Join(modulesBase(root), "lib", "modules", "*"))
	if len(rels) != 1 {
		return nil, false, fmt.Errorf("kernels: %s: want one directory under lib/modules, have %v", root, rels)
	}
	e := &Extracted{Kernel: k, Root: root, Release: filepath.Base(rels[0]), Package: strings.TrimSpace(string(b))}
	// Malta's vmlinuz is an ELF too (it decompresses itself); qemu loads
	// ELF and the other architectures' images alike.
	for _, name := range []string{"vmlinuz-", "vmlinux-"} {
		img := filepath.Join(root, "boot", name+e.Release)
		if _, err := os.Stat(img); err == nil {
			e.Image = img
			break
		}
	}
	if e.Image == "" {
		return nil, false, fmt.Errorf("kernels: %s: no kernel image in %s/boot", k.ID, root)
	}
	_, err = os.Stat(filepath.Join(modulesBase(root), "lib", "modules", e.Release, "modules.dep"))
	return e, err == nil, nil
}

// Module is a module file to load, in order.
type Module struct {
	Name string
	Path string // in the unpacked tree (maybe .ko.xz)
	Rel  string // relative to lib/modules/RELEASE, with .ko (decompressed)
}

// ResolveModules lists the .ko files to load for want, dependencies first
// (modprobe --show-depends over the unpacked tree, with no modprobe.d
// configuration of the host's). Built-in modules need nothing; a module
// that is neither built in nor present is an error naming it.
func (e *Extracted) ResolveModules(want []string) ([]Module, error) {
	base := modulesBase(e.Root)
	modDir := filepath.Join(base, "lib", "modules", e.Release)
	empty := filepath.Join(filepath.Dir(e.Root), ".empty-modprobe.d")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	seen := map[string]bool{}
	var mods []Module
	var missing []string
	showDepends := func(name string) ([]byte, error) {
		return exec.Command("modprobe", "-C", empty, "-d", base, "-S", e.Release, "--show-depends", name).CombinedOutput()
	}
	for _, w := range want {
		out, err := showDepends(w)
		if err != nil && strings.HasPrefix(w, "nft_") {
			// Newer kernels build some expressions (counter since 5.13)
			// into nf_tables.ko itself: then it is what to load.
			if nft, nerr := showDepends("nf_tables"); nerr == nil && e.moduleHas(nft, w+"_") {
				out, err = nft, nil
			}
		}
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", w, strings.TrimSpace(string(out))))
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "insmod" {
				continue // "builtin NAME"
			}
			p := f[1]
			if seen[p] {
				continue
			}
			seen[p] = true
			rel, err := filepath.Rel(modDir, p)
			if err != nil || strings.HasPrefix(rel, "..") {
				return nil, fmt.Errorf("kernels: %s: module %s outside %s", e.ID, p, modDir)
			}
			rel = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(rel, ".xz"), ".zst"), ".gz")
			name := strings.TrimSuffix(filepath.Base(rel), ".ko")
			mods = append(mods, Module{Name: name, Path: p, Rel: rel})
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kernels: %s: modules neither built in nor present: %s", e.ID, strings.Join(missing, "; "))
	}
	for _, m := range mods {
		for _, f := range forbidden {
			if strings.ReplaceAll(m.Name, "-", "_") == f {
				return nil, fmt.Errorf("kernels: %s: %s would be loaded (a dependency of the modules wanted), but the product must run without it", e.ID, f)
			}
		}
	}
	return mods, nil
}

// moduleHas reports whether the last module of a --show-depends listing
// (the one asked for) defines a symbol starting with prefix.
func (e *Extracted) moduleHas(showDepends []byte, prefix string) bool {
	var last string
	for _, line := range strings.Split(string(showDepends), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "insmod" {
			last = f[1]
		}
	}
	if last == "" {
		return false
	}
	tmp, err := os.MkdirTemp("", "kernels-ko-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(tmp)
	ko := filepath.Join(tmp, "m.ko")
	if decompressModule(last, ko) != nil {
		return false
	}
	f, err := elf.Open(ko)
	if err != nil {
		return false
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, s := range syms {
		if strings.HasPrefix(s.Name, prefix) {
			return true
		}
	}
	return false
}

// decompressModule writes a module's plain .ko to dst: the guest has no
// decompressor, and not every kernel here can load compressed modules.
func decompressModule(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	var tool string
	switch filepath.Ext(src) {
	case ".ko":
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("kernels: %w", err)
		}
		return os.WriteFile(dst, b, 0o644)
	case ".xz":
		tool = "xz"
	case ".zst":
		tool = "zstd"
	case ".gz":
		tool = "gzip"
	default:
		return fmt.Errorf("kernels: %s: unknown module compression", src)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	cmd := exec.Command(tool, "-dc", src)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("kernels: %s -dc %s: %w: %s", tool, src, err, stderr.String())
	}
	return nil
}

// builtinXfrm reports whether xfrm_user is built into the kernel, in which
// case the VM cannot show that the product runs without it.
func (e *Extracted) builtinXfrm() bool {
	b, err := os.ReadFile(filepath.Join(modulesBase(e.Root), "lib", "modules", e.Release, "modules.builtin"))
	return err == nil && bytes.Contains(b, []byte("/xfrm_user.ko"))
}

// Select returns the kernels named by ids (comma-separated IDs, or
// prefixes such as "amd64"; "" for all).
func Select(ids string) ([]Kernel, error) {
	if ids == "" || ids == "all" {
		return Matrix, nil
	}
	var out []Kernel
	for _, id := range strings.Split(ids, ",") {
		n := 0
		for _, k := range Matrix {
			if k.ID == id || strings.HasPrefix(k.ID, id+"-") {
				out = append(out, k)
				n++
			}
		}
		if n == 0 {
			var all []string
			for _, k := range Matrix {
				all = append(all, k.ID)
			}
			sort.Strings(all)
			return nil, fmt.Errorf("kernels: unknown kernel %q (have %s)", id, strings.Join(all, ", "))
		}
	}
	return out, nil
}
