package testenv

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CheckGenerated reruns every `go run` go:generate line of gen.go in the
// current directory (the package goPackage) into a temporary directory and
// compares the output with the committed files byte for byte: committed
// BPF objects must be what `make generate` makes.
func CheckGenerated(t T, goPackage string) {
	t.Helper()
	Require(t, "clang", "llvm-strip", "llvm-objcopy", "go")
	f, err := os.Open("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := t.TempDir()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "//go:generate ")
		if !ok {
			continue
		}
		args := strings.Fields(line)
		if len(args) > 1 && args[0] == "llvm-objcopy" {
			// A post-processing step on an object just generated.
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = out
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("testenv: %s: %v\n%s", line, err, b)
			}
			continue
		}
		if len(args) < 3 || args[0] != "go" || args[1] != "run" {
			t.Fatalf("testenv: unexpected generate line %q", line)
		}
		// -output-dir goes before the positional arguments.
		cmdArgs := append([]string{args[1], args[2], "-output-dir", out}, args[3:]...)
		cmd := exec.Command("go", cmdArgs...)
		cmd.Env = append(os.Environ(), "GOPACKAGE="+goPackage)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("testenv: %s: %v\n%s", line, err, b)
		}
		n++
	}
	if n == 0 {
		t.Fatal("testenv: gen.go has no go:generate lines")
	}
	files, err := filepath.Glob(filepath.Join(out, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4*n {
		t.Errorf("testenv: generated %d files, want %d", len(files), 4*n)
	}
	for _, g := range files {
		name := filepath.Base(g)
		want, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s is generated but not committed: %v", name, err)
			continue
		}
		got, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh `make generate` (%d vs %d bytes): run make generate and commit", name, len(got), len(want))
		}
	}
}
