package openwrt_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPackageMakefile cross-checks the feed Makefile with the files it
// ships: every ./files/ source exists and every file there is installed,
// under the paths the scripts refer to, and the kernel modules the agent
// needs are in DEPENDS. No buildroot here, so this is what can be checked.
func TestPackageMakefile(t *testing.T) {
	mk := readFile(t, "ce-agent/Makefile")
	installs := regexp.MustCompile(`\$\(INSTALL_(?:BIN|CONF|DATA)\) \./files/(\S+) \$\(1\)(\S+)`).FindAllStringSubmatch(mk, -1)
	got := map[string]string{}
	for _, m := range installs {
		got[m[1]] = m[2]
	}
	want := map[string]string{
		"ce-agent.init":         "/etc/init.d/ce-agent",
		"ce-agent.config":       "/etc/config/ce-agent",
		"ce-agent.uci-defaults": "/etc/uci-defaults/90-ce-agent",
		"ce-agent.hook":         "/usr/libexec/ce-agent/netifd-hook",
		"ce-agent.uninstall":    "/usr/libexec/ce-agent/uninstall",
	}
	for src, dst := range want {
		if got[src] != dst {
			t.Errorf("./files/%s installed as %q, want %q", src, got[src], dst)
		}
	}
	entries, err := os.ReadDir("ce-agent/files")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := got[e.Name()]; !ok {
			t.Errorf("files/%s is not installed by the Makefile", e.Name())
		}
	}
	for src := range got {
		if _, err := os.Stat("ce-agent/files/" + src); err != nil {
			t.Errorf("Makefile installs a missing file: %v", err)
		}
	}

	// The paths the scripts use must be the installed ones.
	for file, path := range map[string]string{
		"ce-agent/files/ce-agent.config": want["ce-agent.hook"],
		"ce-agent/Makefile":              want["ce-agent.uninstall"],
	} {
		if !strings.Contains(readFile(t, file), path) {
			t.Errorf("%s does not refer to %s", file, path)
		}
	}
	if !strings.Contains(mk, "sh "+want["ce-agent.uci-defaults"]) {
		t.Errorf("postinst does not apply %s", want["ce-agent.uci-defaults"])
	}

	deps := regexp.MustCompile(`(?m)^\s*DEPENDS:=((?:.*\\\n)*.*)$`).FindStringSubmatch(mk)
	if deps == nil {
		t.Fatal("no DEPENDS")
	}
	fields := strings.Fields(strings.ReplaceAll(deps[1], "\\", " "))
	for _, k := range []string{"$(GO_ARCH_DEPENDS)", "+kmod-sched-core", "+kmod-sched-bpf", "+kmod-tun", "+kmod-nft-nat", "+kmod-nf-conntrack-netlink"} {
		if !slices.Contains(fields, k) {
			t.Errorf("DEPENDS %q lacks %s", fields, k)
		}
	}
	for _, line := range []string{
		"GO_PKG:=github.com/mapt-go/mapt",
		"GO_PKG_BUILD_PKG:=github.com/mapt-go/mapt/cmd/ce-agent",
		"GO_PKG_LDFLAGS:=-s -w",
		"GO_PKG_TARGET_VARS:=$(filter-out CGO_ENABLED=%,$(GO_PKG_TARGET_VARS)) CGO_ENABLED=0",
		"include ../../lang/golang/golang-package.mk",
		"$(eval $(call GoBinPackage,ce-agent))",
		"$(eval $(call BuildPackage,ce-agent))",
	} {
		if !strings.Contains(mk, line+"\n") {
			t.Errorf("Makefile lacks the line %q", line)
		}
	}
}
