package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestInitramfsWithCpio writes an archive and has GNU cpio, an independent
// reader of the format, list and unpack it: file contents, modes,
// symlinks, device nodes and the implicit parent directories must come
// out as written.
func TestInitramfsWithCpio(t *testing.T) {
	testenv.RequireCommands(t, "cpio")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := NewInitramfs()
	a.CopyFile("/usr/bin/tool", src, 0o755)
	a.Bytes("/etc/odd", []byte("abc"), 0o644) // 3 bytes: data padding
	a.Bytes("/empty", nil, 0o644)
	a.Symlink("/var/run", "../run")
	a.CharDev("/dev/console", 0o600, 5, 1)
	a.Dir("/tmp", 0o1777)
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive is %d bytes, not 4-byte aligned", buf.Len())
	}

	list := exec.Command("cpio", "-t", "-v", "--quiet")
	list.Stdin = bytes.NewReader(buf.Bytes())
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	names := map[string]string{}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		name := f[len(f)-1]
		if strings.Contains(line, " -> ") {
			name = f[len(f)-3]
		}
		names[name] = f[0]
		order = append(order, name)
	}
	for name, mode := range map[string]string{
		"usr": "drwxr-xr-x", "usr/bin": "drwxr-xr-x", "usr/bin/tool": "-rwxr-xr-x",
		"etc/odd": "-rw-r--r--", "empty": "-rw-r--r--", "var/run": "lrwxrwxrwx",
		"dev/console": "crw-------", "tmp": "drwxrwxrwt",
	} {
		if names[name] != mode {
			t.Errorf("%s: mode %q, want %q (listing:\n%s)", name, names[name], mode, out)
		}
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	if pos["usr"] > pos["usr/bin"] || pos["usr/bin"] > pos["usr/bin/tool"] {
		t.Errorf("a directory after its contents: %v", order)
	}

	// Unpack, through WriteFile's gzip (no device node: cpio would
	// need to create one here).
	a2 := NewInitramfs()
	a2.CopyFile("/usr/bin/tool", src, 0o755)
	a2.Bytes("/etc/odd", []byte("abc"), 0o644)
	a2.Symlink("/var/run", "../run")
	gzFile := filepath.Join(dir, "b.gz")
	if err := a2.WriteFile(gzFile); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	unpack := exec.Command("sh", "-c", "gzip -dc "+gzFile+" | cpio -i -d --quiet")
	unpack.Dir = root
	if out, err := unpack.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"usr/bin/tool": "from the host\n", "etc/odd": "abc"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "var/run")); err != nil || l != "../run" {
		t.Errorf("var/run -> %q %v", l, err)
	}
}

func TestParseStanzas(t *testing.T) {
	in := `Package: iproute2
Version: 6.1.0-3
Architecture: s390x
Multi-Arch: foreign
Depends: debconf (>= 0.5) | debconf-2.0, libbpf1 (>= 1:0.6.0), libc6:any (>= 2.34)
Description: networking tools
 continued line: not a field
SHA256: c3e8

Package: libc6
Version: 2.36-9+deb12u14
Architecture: s390x
Multi-Arch: same
`
	p := parseStanzas([]byte(in))
	if len(p) != 2 || p[0].Name != "iproute2" || p[0].Version != "6.1.0-3" || p[0].SHA256 != "c3e8" ||
		strings.Join(p[0].Depends, ",") != "debconf,libbpf1,libc6:any" || p[1].MultiArch != "same" {
		t.Fatalf("%+v", p)
	}
	if p[0].ID() != "iproute2:s390x=6.1.0-3" || (Pkg{Name: "a", Version: "1:2.0", Arch: "all"}).DebName() != "a_1%3a2.0_all.deb" {
		t.Fatalf("%s %s", p[0].ID(), p[0].DebName())
	}
}
