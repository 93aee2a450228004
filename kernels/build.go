package kernels

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mapt-go/mapt/kernels/proto"
)

// Step is a test run in the guest, on the binary of Package.
type Step struct {
	Name    string
	Package string   // e.g. "./dataplane"
	Args    []string // -test.run / -test.skip
	// Core, when set, are the only tests of the step on kernels that do
	// not run everything (Kernel.Full false): each must run and pass.
	Core []string
	// On names the kernels the step runs on (nil: all; empty: none),
	// unless everything runs everywhere (-full).
	On []string
	// Timeout and, for the core set, CoreTimeout are seconds on amd64,
	// scaled by Kernel.Slow.
	Timeout, CoreTimeout int
}

// Steps are the test runs in the guest, in order. jit first: the JIT
// report is the one thing every kernel must give even when namespace tests
// fail later.
//
// The matrix has to stay within 8 minutes on a 2-core machine without
// KVM, where every process a namespace test starts costs 70-500 ms under
// TCG and loading a translator up to 6 s (the verifier on MIPS), so by
// default a kernel runs the JIT report, the lab path and the dataplane's
// Core: attach modes, the packet tests of both translators, the rule
// tables at scale and the byte orders, i.e. what differs between kernels
// and CPUs. The agent's tests run on the oldest kernel; the relay's and
// the rest of the dataplane's (e2e traffic in namespaces, ICMP errors,
// fragments, updates) on the host (`make test`, a 6.6+ kernel) and, with
// FULL=1 (-full), on every kernel here too: about 25 minutes.
var Steps = []Step{
	{Name: "jit", Package: "./dataplane", Args: []string{"-test.run", "^TestJITReport$"}, Timeout: 60},
	{Name: "lab", Package: "./lab", Args: []string{"-test.run", "^TestStaticPath$"}, Timeout: 120},
	// TestGenerateReproducible compiles the BPF sources with clang, which
	// the guest has not: it checks the build, not the kernel, and runs in
	// `make test` on the host.
	{Name: "dataplane", Package: "./dataplane", Args: []string{"-test.skip", "^(TestJITReport|TestGenerateReproducible)$"},
		Core: []string{"TestAttachModes", "TestAttachBRDetach", "TestClsactReplacesItsOwn", "TestNetlinkRouteOnly",
			"TestObjectsBothByteOrders", "TestVersionAtLeast", "TestModuleError",
			"TestCE4to6", "TestCE6to4", "TestBR4to6", "TestBR6to4", "TestBRLocal",
			"TestLongestMatchAcrossTables", "TestThousandOneToOneFMRs"},
		Timeout: 900, CoreTimeout: 180},
	{Name: "agent", Package: "./agent", On: []string{"amd64-5.10"}, Timeout: 180},
	// TestAlertRules runs promtool, a host tool: it checks a file, not
	// the kernel.
	{Name: "relay", Package: "./relay", Args: []string{"-test.skip", "^TestAlertRules$"}, On: []string{}, Timeout: 600},
}

// SelectSteps returns the steps named in names (comma-separated; "" for all).
func SelectSteps(names string) ([]Step, error) {
	if names == "" || names == "all" {
		return Steps, nil
	}
	var out []Step
	for _, n := range strings.Split(names, ",") {
		found := false
		for _, s := range Steps {
			if s.Name == n {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("kernels: unknown step %q", n)
		}
	}
	return out, nil
}

// planStep is what k runs of st (nil: nothing), with its arguments and
// the tests that must show up.
func planStep(st Step, k Kernel, full bool) (args, expect []string, timeout time.Duration, ok bool) {
	if !full && st.On != nil && !slices.Contains(st.On, k.ID) {
		return nil, nil, 0, false
	}
	slow := max(k.Slow, 1)
	if full || k.Full || st.Core == nil {
		return st.Args, nil, time.Duration(float64(st.Timeout)*slow) * time.Second, true
	}
	return []string{"-test.run", "^(" + strings.Join(st.Core, "|") + ")$"}, st.Core,
		time.Duration(float64(st.CoreTimeout)*slow) * time.Second, true
}

// goBuild cross-compiles, static (CGO off) and stripped.
func goBuild(repo string, k Kernel, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+k.GOARCH)
	cmd.Env = append(cmd.Env, k.GOENV...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kernels: %s go %s: %w\n%s", k.GOARCH, strings.Join(args, " "), err, out)
	}
	return nil
}

// BuildBinaries cross-builds /init, ce-agent, br and the test binaries for
// k's architecture into dir.
func BuildBinaries(repo, dir string, k Kernel, pkgs []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	flags := []string{"-trimpath", "-ldflags", "-s -w"}
	if err := goBuild(repo, k, append(append([]string{"build"}, flags...), "-o", dir+"/", "./cmd/ce-agent", "./cmd/br", "./kernels/init")...); err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return nil
	}
	return goBuild(repo, k, append(append([]string{"test", "-c"}, flags...), append([]string{"-o", dir + "/"}, pkgs...)...)...)
}

// testBinary is the name `go test -c -o DIR/` gives a package's binary.
func testBinary(pkg string) string { return path.Base(pkg) + ".test" }

// Assemble builds the initramfs of one kernel: binaries from bin, modules
// of e, tools from s, the testdata of the repository, and the plan of
// steps (all of each everywhere when full). Step timeouts are multiplied
// by the kernel's Slow and by scale.
func Assemble(out, repo, bin string, e *Extracted, s *Sysroot, steps []Step, full bool, scale float64) error {
	a := NewInitramfs()
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/etc", "/var/tmp"} {
		a.Dir(d, 0o755)
	}
	a.Dir("/tmp", 0o1777)
	a.CharDev("/dev/console", 0o600, 5, 1)
	a.CharDev("/dev/null", 0o666, 1, 3)
	a.Symlink("/var/run", "../run")
	a.Bytes("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\ntcpdump:x:102:105::/nonexistent:/usr/sbin/nologin\n"), 0o644)
	a.Bytes("/etc/group", []byte("root:x:0:\ntcpdump:x:105:\n"), 0o644)
	a.Bytes("/etc/hosts", []byte("127.0.0.1 localhost\n::1 localhost\n"), 0o644)

	a.CopyFile("/init", filepath.Join(bin, "init"), 0o755)
	for _, b := range []string{"ce-agent", "br"} {
		a.CopyFile("/mapt/bin/"+b, filepath.Join(bin, b), 0o755)
	}
	plan := proto.Plan{
		Kernel: e.ID,
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CI=true",
			"MAPT_BIN_DIR=/mapt/bin", "HOME=/root", "TMPDIR=/tmp", "GOTRACEBACK=all"},
	}
	added := map[string]bool{}
	for _, st := range steps {
		args, expect, stepTimeout, ok := planStep(st, e.Kernel, full)
		if !ok {
			continue
		}
		tb := testBinary(st.Package)
		if !added[tb] {
			a.CopyFile("/mapt/tests/"+tb, filepath.Join(bin, tb), 0o755)
			added[tb] = true
		}
		// go test runs a package's tests in its source directory; some
		// read testdata there (or a sibling's, as ../domainfile/testdata).
		dir := path.Join("/mapt/src", path.Clean(st.Package))
		a.Dir(dir, 0o755)
		if err := addPackageFiles(a, filepath.Join(repo, st.Package), dir); err != nil {
			return err
		}
		timeout := int(stepTimeout.Seconds() * scale)
		argv := append([]string{"/mapt/tests/" + tb, "-test.v", "-test.count=1",
			fmt.Sprintf("-test.timeout=%ds", max(timeout-15, 10))}, args...)
		plan.Steps = append(plan.Steps, proto.Step{Name: st.Name, Dir: dir, Argv: argv, TimeoutSeconds: timeout, Expect: expect})
	}
	if err := addTestdata(a, repo); err != nil {
		return err
	}

	mods, err := e.ResolveModules(Modules)
	if err != nil {
		return err
	}
	modCache := filepath.Join(filepath.Dir(out), "modules")
	for _, m := range mods {
		host := filepath.Join(modCache, m.Rel)
		if err := decompressModule(m.Path, host); err != nil {
			return err
		}
		guest := path.Join("/lib/modules", e.Release, filepath.ToSlash(m.Rel))
		a.CopyFile(guest, host, 0o644)
		plan.Modules = append(plan.Modules, guest)
	}

	var busybox string
	for _, t := range slices.Sorted(maps.Keys(Tools)) {
		p, err := s.AddTool(a, t)
		if err != nil {
			return err
		}
		if t == "busybox" {
			busybox = p
		}
	}
	for _, ap := range Applets {
		if p := "/bin/" + ap; !a.Has(p) {
			a.Symlink(p, busybox)
		}
	}
	// iproute2's tables (route protocol names and the like).
	for _, d := range []string{"/etc/iproute2", "/usr/share/iproute2", "/usr/lib/iproute2"} {
		if err := addTree(a, filepath.Join(s.Dir, d), d); err != nil {
			return err
		}
	}

	pb, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return err
	}
	a.Bytes(proto.PlanPath, pb, 0o644)
	seed := make([]byte, 512)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	a.Bytes(proto.SeedPath, seed, 0o600)
	return a.WriteFile(out)
}

// addTestdata copies every testdata directory of the repository to
// /mapt/src/<dir>/testdata.
func addTestdata(a *Initramfs, repo string) error {
	return filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != repo && (strings.HasPrefix(name, ".") || name == "build" || name == "bin") {
			return filepath.SkipDir
		}
		if name != "testdata" {
			return nil
		}
		rel, _ := filepath.Rel(repo, p)
		if err := addTree(a, p, path.Join("/mapt/src", filepath.ToSlash(rel))); err != nil {
			return err
		}
		return filepath.SkipDir
	})
}

// addPackageFiles copies the files of a package directory that are not Go
// source (dataplane's tests read its generated .o objects there).
func addPackageFiles(a *Initramfs, host, guest string) error {
	ents, err := os.ReadDir(host)
	if err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	for _, d := range ents {
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), ".go") {
			continue
		}
		a.CopyFile(path.Join(guest, d.Name()), filepath.Join(host, d.Name()), 0o644)
	}
	return nil
}

// addTree copies a host directory (if it exists) into the archive at
// guest: regular files, directories and symlinks as they are.
func addTree(a *Initramfs, host, guest string) error {
	if _, err := os.Lstat(host); err != nil {
		return nil
	}
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		g := path.Join(guest, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			a.Dir(g, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			a.Symlink(g, t)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			a.CopyFile(g, p, uint32(fi.Mode().Perm()))
		}
		return nil
	})
}

// goVersion is printed in the report: the toolchain that built the guest.
func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "?"
	}
	return string(bytes.TrimSpace(out))
}
