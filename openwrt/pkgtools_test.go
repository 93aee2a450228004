package openwrt_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// untar reads a tar.gz: name -> (mode, contents).
func untar(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

// member returns one file of a tar.gz.
func member(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the archive: %v", name, err)
		}
		if h.Name == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// TestMkpkg builds the .ipk and the files tarball of the path for
// releases whose SDK cannot build the package, and checks them against
// what the feed Makefile installs: the same files at the same places and
// modes, its dependencies, its postinst and prerm.
func TestMkpkg(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ce-agent")
	os.WriteFile(bin, []byte("\x7fELF fake"), 0o755)
	out := t.TempDir()
	if b, err := exec.Command("sh", "mkpkg.sh", bin, "mipsel_24kc", out).CombinedOutput(); err != nil {
		t.Fatalf("mkpkg.sh: %v\n%s", err, b)
	}
	ipks, _ := filepath.Glob(filepath.Join(out, "ce-agent_*_mipsel_24kc.ipk"))
	if len(ipks) != 1 {
		t.Fatalf("ipk: %q", ipks)
	}
	ipk, err := os.ReadFile(ipks[0])
	if err != nil {
		t.Fatal(err)
	}
	outer := untar(t, ipk)
	for _, m := range []string{"./debian-binary", "./control.tar.gz", "./data.tar.gz"} {
		if outer[m] == nil {
			t.Errorf("ipk lacks %s", m)
		}
	}
	control := string(member(t, member(t, ipk, "./control.tar.gz"), "./control"))
	for _, want := range []string{"Package: ce-agent\n", "Architecture: mipsel_24kc\n",
		"Depends: libc, kmod-sched-core, kmod-sched-bpf, kmod-tun, kmod-nft-nat, kmod-nf-conntrack-netlink\n"} {
		if !strings.Contains(control, want) {
			t.Errorf("control lacks %q:\n%s", want, control)
		}
	}
	if !regexp.MustCompile(`(?m)^Version: \d+\.\d+\.\d+-\d+$`).MatchString(control) {
		t.Errorf("control version:\n%s", control)
	}
	prerm := string(member(t, member(t, ipk, "./control.tar.gz"), "./prerm"))
	if !strings.HasPrefix(prerm, "#!/bin/sh\n") || !strings.Contains(prerm, "/usr/libexec/ce-agent/uninstall\n") || strings.Contains(prerm, "$$") {
		t.Errorf("prerm:\n%s", prerm)
	}
	data := member(t, ipk, "./data.tar.gz")
	files := untar(t, data)
	for path, mode := range map[string]int64{
		"./usr/bin/ce-agent": 0o755, "./lib/netifd/proto/mapt.sh": 0o755, "./lib/netifd/mapt.script": 0o755,
		"./etc/uci-defaults/90-ce-agent": 0o755, "./etc/uci-defaults/99-ce-agent-fallback": 0o755,
		"./lib/upgrade/keep.d/ce-agent": 0o644, "./usr/libexec/ce-agent/uninstall": 0o755,
	} {
		h := files[path]
		if h == nil || h.Mode&0o777 != mode || h.Uid != 0 {
			t.Errorf("%s: %+v, want mode %o owned by root", path, h, mode)
		}
	}
	if got := string(member(t, data, "./lib/netifd/proto/mapt.sh")); got != readFile(t, "ce-agent/files/mapt.sh") {
		t.Error("the packaged handler differs from files/mapt.sh")
	}
	// The same data as a plain tarball, for apk-based releases.
	tarballs, _ := filepath.Glob(filepath.Join(out, "ce-agent-*-files.tar.gz"))
	if len(tarballs) != 1 {
		t.Fatalf("files tarball: %q", tarballs)
	}
	if tb, _ := os.ReadFile(tarballs[0]); !bytes.Equal(tb, data) {
		t.Error("the files tarball differs from the ipk's data")
	}
	// Reproducible: the same inputs give the same bytes.
	out2 := t.TempDir()
	if b, err := exec.Command("sh", "mkpkg.sh", bin, "mipsel_24kc", out2).CombinedOutput(); err != nil {
		t.Fatalf("mkpkg.sh: %v\n%s", err, b)
	}
	if again, _ := os.ReadFile(filepath.Join(out2, filepath.Base(ipks[0]))); !bytes.Equal(again, ipk) {
		t.Error("mkpkg.sh is not reproducible")
	}
}

// TestReleasePin: the Makefile's PKG_HASH is the hash of the tarball
// release.sh makes from the commit its provenance comment names, so that
// the pin can be checked and the release asset rebuilt by anyone.
func TestReleasePin(t *testing.T) {
	mk := readFile(t, "ce-agent/Makefile")
	m := regexp.MustCompile(`(?m)^# PKG_HASH: openwrt/release\.sh (\S+) ([0-9a-f]{40})\nPKG_HASH:=([0-9a-f]{64})$`).FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("no release.sh provenance above PKG_HASH")
	}
	if !strings.Contains(mk, "PKG_VERSION:="+m[1]+"\n") {
		t.Errorf("PKG_VERSION is not the released %s", m[1])
	}
	if err := exec.Command("git", "cat-file", "-e", m[2]+"^{commit}").Run(); err != nil {
		if testenv.InCI() {
			t.Fatalf("commit %s not in this clone: %v", m[2], err)
		}
		t.Skipf("commit %s not in this clone (shallow?): %v", m[2], err)
	}
	cmd := exec.Command("sh", "release.sh", m[1], m[2])
	cmd.Env = append(os.Environ(), "DRY_RUN=1", "OUT_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out))[0]; got != m[3] {
		t.Errorf("release.sh %s %s gives %s, the Makefile pins %s", m[1], m[2], got, m[3])
	}
}
