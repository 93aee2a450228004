package testenv

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinDirEnv names a directory of prebuilt binaries (ce-agent, br, ...).
// When it is set, BuildBinary and BuildBinaries take the binaries from
// there instead of running go build, so the tests run where there is no Go
// toolchain (the kernel matrix's VMs, see kernels/).
const BinDirEnv = "MAPT_BIN_DIR"

// prebuilt returns the directory of BinDirEnv after checking that it holds
// every command of pkgs, or "" when the variable is not set.
func prebuilt(t T, pkgs ...string) string {
	t.Helper()
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		return ""
	}
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, filepath.Base(pkg))
		if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("testenv: %s=%s: no executable %s", BinDirEnv, dir, filepath.Base(pkg))
		}
	}
	return dir
}

// BuildBinary builds the command pkg (a package path such as
// "./cmd/br", relative to the module root) into a temporary directory and
// returns its path. Tests of the binaries use it. With BinDirEnv set, it
// returns the prebuilt binary instead.
func BuildBinary(t T, pkg string) string {
	t.Helper()
	if dir := prebuilt(t, pkg); dir != "" {
		return filepath.Join(dir, filepath.Base(pkg))
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = moduleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// BuildAgentAndBR builds ce-agent and br into one directory
// (BuildBinaries), the pair most tests run.
func BuildAgentAndBR(t T) string {
	t.Helper()
	return BuildBinaries(t, "./cmd/ce-agent", "./cmd/br")
}

// BuildBinaries builds the commands pkgs (e.g. "./cmd/ce-agent",
// "./cmd/br") into one temporary directory and returns it (with
// BinDirEnv set: the prebuilt directory).
func BuildBinaries(t T, pkgs ...string) string {
	t.Helper()
	if dir := prebuilt(t, pkgs...); dir != "" {
		return dir
	}
	dir := t.TempDir()
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, b)
	}
	return dir
}

// RunBinary runs a binary and returns stdout, stderr and the exit code.
func RunBinary(t T, bin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	return stdout.String(), stderr.String(), code
}

// RunUsageError runs bin with args and fails t unless it refuses them the
// way every command of ours must refuse bad input: exit status 2, nothing
// on stdout, and one line on stderr that contains want (the field or
// value at fault) and no Go panic trace.
func RunUsageError(t T, bin, want string, args ...string) {
	t.Helper()
	stdout, stderr, code := RunBinary(t, bin, args...)
	if code != 2 || stdout != "" {
		t.Errorf("%v: exit %d, stdout %q; want 2 and nothing", args, code, stdout)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "goroutine") {
		t.Errorf("%v: stderr %q, want one line containing %q", args, stderr, want)
	}
}

func moduleRoot(t T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.mod not found")
		}
		dir = parent
	}
}
