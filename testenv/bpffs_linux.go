package testenv

import (
	"os"

	"golang.org/x/sys/unix"
)

// BPFFS mounts a BPF filesystem of the test's own on a new temporary
// directory and returns the directory; the test's end unmounts it, which
// releases every pin in it (and the translators they kept running).
// Processes the test starts in namespaces see it: ip netns exec replaces
// /sys, so /sys/fs/bpf is no BPF filesystem for them, and one they would
// mount themselves would end with their mount namespace.
func BPFFS(t T) string {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		t.Fatalf("testenv: mount a BPF filesystem on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("testenv: unmount %s: %v", dir, err)
		}
	})
	return dir
}

// PinnedDirs lists the directories in a pin root: one per translator
// pinned there (dataplane.CEPinName, BRPinName, SAVIPinName).
func PinnedDirs(root string) []string {
	entries, _ := os.ReadDir(root)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}
