package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPrebuiltBinaries(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "br"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinDirEnv, dir)
	if got := BuildBinary(t, "./cmd/br"); got != filepath.Join(dir, "br") {
		t.Errorf("BuildBinary = %s, want the prebuilt %s/br", got, dir)
	}
	if got := BuildBinaries(t, "./cmd/br"); got != dir {
		t.Errorf("BuildBinaries = %s, want %s", got, dir)
	}
	// A missing binary fails the test instead of building.
	ft := &fatalT{T: t}
	func() {
		defer func() { recover() }()
		prebuilt(ft, "./cmd/ce-agent")
	}()
	if !ft.fatal {
		t.Error("a missing prebuilt ce-agent did not fail")
	}
}

// fatalT records Fatalf instead of ending the test.
type fatalT struct {
	*testing.T
	fatal bool
}

func (f *fatalT) Fatalf(format string, args ...any) { f.fatal = true; panic("fatal") }
