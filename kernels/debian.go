package kernels

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Archive is a private apt configuration under the cache directory: its own
// sources, lists, package cache and architectures, so downloading arm64 or
// s390x packages never touches the host's apt state or dpkg's foreign
// architectures. Every apt command runs with APT_CONFIG pointing at it.
type Archive struct {
	Dir   string   // the configuration's root (CACHE/apt)
	Debs  string   // where downloaded .deb files are kept (CACHE/debs)
	Archs []string // dpkg architectures to index
	Log   func(format string, args ...any)

	updated bool
}

// Suites the matrix takes packages from. Userspace comes from bookworm
// (and its security updates); bullseye is only for the 5.10 kernel and
// bookworm-backports only for 6.12, so both are pinned below bookworm.
const sourcesList = `# Written by kernels (make test-kernels); not the host's apt sources.
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
`

const preferences = `Package: *
Pin: release n=bullseye
Pin-Priority: 90
`

func (a *Archive) conf() string { return filepath.Join(a.Dir, "apt.conf") }

// setup writes the configuration (cheap, so always).
func (a *Archive) setup() error {
	for _, d := range []string{"lists/partial", "cache/archives/partial", "preferences.d", "sources.list.d", "apt.conf.d", a.Debs} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(a.Dir, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("kernels: %w", err)
		}
	}
	var archs strings.Builder
	for _, arch := range a.Archs {
		fmt.Fprintf(&archs, "%q; ", arch)
	}
	d := a.Dir
	conf := fmt.Sprintf(`// Written by kernels (make test-kernels): a private apt configuration.
// The host's apt.conf.d is not read (Dir::Etc::Parts), so its settings
// (no package cache, appstream indexes) do not apply here.
Dir::Etc::Parts %[1]q;
Dir::Etc::SourceList %[2]q;
Dir::Etc::SourceParts %[3]q;
Dir::Etc::Preferences %[4]q;
Dir::Etc::PreferencesParts %[5]q;
Dir::State::Lists %[6]q;
Dir::State::status %[7]q;
Dir::Cache %[8]q;
Dir::Cache::pkgcache "pkgcache.bin";
Dir::Cache::srcpkgcache "srcpkgcache.bin";
APT::Architectures { %[9]s};
Acquire::Languages "none";
// Files are written as root into our own directories.
APT::Sandbox::User "root";
// As the host's configuration has it: this machine's archive may be a
// dated snapshot. Signatures are still checked (signed-by).
Acquire::Check-Valid-Until "false";
`, filepath.Join(d, "apt.conf.d"), filepath.Join(d, "sources.list"), filepath.Join(d, "sources.list.d"),
		filepath.Join(d, "preferences"), filepath.Join(d, "preferences.d"), filepath.Join(d, "lists"),
		filepath.Join(d, "status"), filepath.Join(d, "cache"), archs.String())
	for name, body := range map[string]string{"apt.conf": conf, "sources.list": sourcesList, "preferences": preferences} {
		if err := writeIfChanged(filepath.Join(d, name), []byte(body)); err != nil {
			return err
		}
	}
	st := filepath.Join(d, "status")
	if _, err := os.Stat(st); os.IsNotExist(err) {
		if err := os.WriteFile(st, nil, 0o644); err != nil {
			return fmt.Errorf("kernels: %w", err)
		}
	}
	return nil
}

func writeIfChanged(file string, b []byte) error {
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	return nil
}

// apt runs an apt command with the private configuration.
func (a *Archive) apt(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "APT_CONFIG="+a.conf(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &AptError{fmt.Errorf("kernels: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))}
	}
	return out, nil
}

// AptError is a failed apt command: the one kind of error that fresh
// package lists may cure.
type AptError struct{ Err error }

func (e *AptError) Error() string { return e.Err.Error() }
func (e *AptError) Unwrap() error { return e.Err }

// Update runs apt-get update (once per run at most).
func (a *Archive) Update() error {
	if a.updated {
		return nil
	}
	a.Log("apt-get update (private lists under %s)", a.Dir)
	if _, err := a.apt(a.Dir, "apt-get", "update", "-qq"); err != nil {
		return err
	}
	a.updated = true
	return nil
}

// ensureLists updates when there are no package lists yet.
func (a *Archive) ensureLists() error {
	if err := a.setup(); err != nil {
		return err
	}
	m, _ := filepath.Glob(filepath.Join(a.Dir, "lists", "*_Packages*"))
	if len(m) < len(a.Archs) {
		return a.Update()
	}
	return nil
}

// Pkg is one binary package version.
type Pkg struct {
	Name, Version, Arch, SHA256 string
	MultiArch                   string
	Depends                     []string // first alternatives, without versions
}

// ID is name:arch=version, what apt-get download takes.
func (p Pkg) ID() string { return p.Name + ":" + p.Arch + "=" + p.Version }

// DebName is the file apt-get download writes.
func (p Pkg) DebName() string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// Show returns the candidate versions of packages given as name:arch or
// name:arch/suite.
func (a *Archive) Show(specs ...string) ([]Pkg, error) {
	if err := a.ensureLists(); err != nil {
		return nil, err
	}
	out, err := a.apt(a.Dir, append([]string{"apt-cache", "show", "--no-all-versions"}, specs...)...)
	if err != nil {
		return nil, err
	}
	return parseStanzas(out), nil
}

func parseStanzas(b []byte) []Pkg {
	var pkgs []Pkg
	var cur *Pkg
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			cur = nil
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(line, " ") {
			continue
		}
		if k == "Package" {
			pkgs = append(pkgs, Pkg{Name: v})
			cur = &pkgs[len(pkgs)-1]
			continue
		}
		if cur == nil {
			continue
		}
		switch k {
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Arch = v
		case "SHA256":
			cur.SHA256 = v
		case "Multi-Arch":
			cur.MultiArch = v
		case "Depends", "Pre-Depends":
			for _, alt := range strings.Split(v, ",") {
				first, _, _ := strings.Cut(alt, "|")
				name, _, _ := strings.Cut(strings.TrimSpace(first), " ")
				cur.Depends = append(cur.Depends, name)
			}
		}
	}
	return pkgs
}

// Download makes sure each package's .deb is in Debs, checked against the
// archive's SHA256, and returns their paths. Present files are not
// downloaded again.
func (a *Archive) Download(pkgs ...Pkg) ([]string, error) {
	var need []string
	paths := make([]string, len(pkgs))
	for i, p := range pkgs {
		paths[i] = filepath.Join(a.Debs, p.DebName())
		if ok, _ := checkSHA256(paths[i], p.SHA256); !ok {
			need = append(need, p.ID())
		}
	}
	if len(need) > 0 {
		a.Log("apt-get download %s", strings.Join(need, " "))
		if _, err := a.apt(a.Debs, append([]string{"apt-get", "download", "-qq"}, need...)...); err != nil {
			return nil, err
		}
	}
	for i, p := range pkgs {
		if ok, err := checkSHA256(paths[i], p.SHA256); !ok {
			return nil, &AptError{fmt.Errorf("kernels: %s: downloaded file does not match the archive's SHA256 (%v)", paths[i], err)}
		}
	}
	return paths, nil
}

func checkSHA256(file, want string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return want == "" || hex.EncodeToString(h.Sum(nil)) == want, nil
}

// Closure resolves roots (name:arch) and the shared libraries they
// depend on, recursively: the dependencies Debian marks Multi-Arch: same
// (libraries are co-installable across architectures, tools are not).
// Other dependencies (debconf, adduser, perl) are for installing a
// package, not for running its binaries; a library still missing shows up
// when the initramfs is assembled (ELF DT_NEEDED).
func (a *Archive) Closure(arch string, roots ...string) ([]Pkg, error) {
	seen := map[string]bool{}
	isRoot := map[string]bool{}
	for _, r := range roots {
		isRoot[r] = true
	}
	var all []Pkg
	next := roots
	for len(next) > 0 {
		var specs []string
		for _, n := range next {
			if !seen[n] {
				seen[n] = true
				specs = append(specs, n+":"+arch)
			}
		}
		if len(specs) == 0 {
			break
		}
		// Purely virtual names print nothing (and are skipped).
		pkgs, err := a.Show(specs...)
		if err != nil {
			return nil, err
		}
		next = nil
		for _, p := range pkgs {
			if !isRoot[p.Name] && (p.MultiArch != "same" || p.Arch != arch) {
				continue
			}
			all = append(all, p)
			for _, d := range p.Depends {
				d, _, _ = strings.Cut(d, ":") // libfoo:any
				if !seen[d] {
					next = append(next, d)
				}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

// extract unpacks debs into dir (created fresh) with dpkg-deb -x; the
// stamp file records what dir holds, so a later run with the same
// packages uses it as it is.
func extract(dir string, debs []string) error {
	stamp := strings.Join(baseNames(debs), "\n") + "\n"
	if b, err := os.ReadFile(filepath.Join(dir, ".debs")); err == nil && string(b) == stamp {
		return nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	for _, d := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", d, tmp).CombinedOutput(); err != nil {
			return fmt.Errorf("kernels: dpkg-deb -x %s: %w: %s", d, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".debs"), []byte(stamp), 0o644); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	return nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}
