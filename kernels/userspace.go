package kernels

import (
	"debug/elf"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Tools are the commands the namespace tests exec (testenv runs `ip netns
// exec`, the tests tc, ping, sysctl, ethtool, nft; testenv.Capture runs
// tcpdump), with the Debian packages that hold them.
var Tools = map[string]string{
	"ip":      "iproute2",
	"tc":      "iproute2",
	"ping":    "iputils-ping",
	"sysctl":  "procps",
	"ethtool": "ethtool",
	"nft":     "nftables",
	"tcpdump": "tcpdump",
	"busybox": "busybox-static",
}

// Applets are the commands busybox stands in for: a shell and the few
// tools the tests' scripts use (the agent's hook script: sh, env, grep,
// sort; tests exec cat and sleep). OpenWrt's are busybox too.
var Applets = []string{"sh", "cat", "env", "grep", "sort", "sleep"}

// Sysroot is a per-architecture tree of bookworm's userspace packages for
// the tools and the libraries they link, unpacked in the cache.
type Sysroot struct {
	Dir     string
	Triplet string
}

// FetchSysroot downloads and unpacks the tools' packages and their library
// closure for arch into cache/sysroot/ARCH. An unpacked tree is used as it
// is without asking apt (refresh asks again).
func FetchSysroot(a *Archive, cache, arch, triplet string, refresh bool) (*Sysroot, error) {
	s := &Sysroot{Dir: filepath.Join(cache, "sysroot", arch), Triplet: triplet}
	names := slices.Compact(slices.Sorted(maps.Values(Tools)))
	// The tree is reused when it was made for the same packages.
	stamp := filepath.Join(s.Dir, ".roots")
	want := strings.Join(names, "\n") + "\n"
	if b, err := os.ReadFile(stamp); err == nil && string(b) == want && !refresh {
		return s, nil
	}
	pkgs, err := a.Closure(arch, names...)
	if err != nil {
		return nil, err
	}
	debs, err := a.Download(pkgs...)
	if err != nil {
		return nil, err
	}
	if err := extract(s.Dir, debs); err != nil {
		return nil, err
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	return s, nil
}

// resolve follows symlinks inside the sysroot (absolute targets are
// relative to it) and returns the host path of the file p (a path inside
// the guest) and whether it exists.
func (s *Sysroot) resolve(p string) (string, bool) {
	for i := 0; i < 40; i++ {
		host := filepath.Join(s.Dir, p)
		fi, err := os.Lstat(host)
		if err != nil {
			// A usrmerged path (/usr/lib/...) may be unmerged here (/lib/...).
			if alt, ok := strings.CutPrefix(p, "/usr/"); ok {
				p = "/" + alt
				continue
			}
			return "", false
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return host, true
		}
		t, err := os.Readlink(host)
		if err != nil {
			return "", false
		}
		if !path.IsAbs(t) {
			t = path.Join(path.Dir(p), t)
		}
		p = t
	}
	return "", false
}

// libDirs are where the loader of a Debian system looks (its built-in
// multiarch paths, as without an ld.so.cache in the guest).
func (s *Sysroot) libDirs() []string {
	return []string{"/lib/" + s.Triplet, "/usr/lib/" + s.Triplet, "/lib", "/usr/lib"}
}

// AddTool puts the command name (from /sbin, /usr/sbin, /bin or
// /usr/bin) into the initramfs at its path, with its ELF interpreter and
// every library of its DT_NEEDED closure at theirs.
// It returns the command's path in the guest.
func (s *Sysroot) AddTool(a *Initramfs, name string) (string, error) {
	for _, dir := range []string{"/sbin", "/usr/sbin", "/bin", "/usr/bin"} {
		p := dir + "/" + name
		if host, ok := s.resolve(p); ok {
			return p, s.addELF(a, p, host, map[string]bool{})
		}
	}
	return "", fmt.Errorf("kernels: %s: no %s in %s", s.Triplet, name, s.Dir)
}

func (s *Sysroot) addELF(a *Initramfs, guest, host string, done map[string]bool) error {
	if done[guest] {
		return nil
	}
	done[guest] = true
	a.CopyFile(guest, host, 0o755)
	f, err := elf.Open(host)
	if err != nil {
		return fmt.Errorf("kernels: %s: %w", guest, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return fmt.Errorf("kernels: %s: interpreter: %w", guest, err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		ih, ok := s.resolve(interp)
		if !ok {
			return fmt.Errorf("kernels: %s: interpreter %s not in the sysroot", guest, interp)
		}
		if err := s.addELF(a, interp, ih, done); err != nil {
			return err
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("kernels: %s: %w", guest, err)
	}
	dirs := s.libDirs()
	if rp, _ := f.DynString(elf.DT_RUNPATH); len(rp) > 0 {
		dirs = append(strings.Split(rp[0], ":"), dirs...)
	}
	for _, lib := range needed {
		found := false
		for _, d := range dirs {
			p := path.Join(d, lib)
			if host, ok := s.resolve(p); ok {
				if err := s.addELF(a, p, host, done); err != nil {
					return err
				}
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("kernels: %s needs %s, which no package of the sysroot %s has (add its package to the closure)", guest, lib, s.Dir)
		}
	}
	return nil
}
