package openwrt_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPackageMakefile cross-checks the feed Makefile with the files it
// ships and with the packages feed's Go conventions (golang-package.mk):
// every ./files/ source exists and every file there is installed where the
// scripts look for it, the kernel modules the agent needs are in DEPENDS,
// the source is pinned by version and hash, and nothing overrides what the
// feed does itself (linking, stripping). No buildroot here, so this is
// what can be checked.
func TestPackageMakefile(t *testing.T) {
	mk := readFile(t, "ce-agent/Makefile")
	installs := regexp.MustCompile(`\$\(INSTALL_(?:BIN|CONF|DATA)\) \./files/(\S+) \$\(1\)(\S+)`).FindAllStringSubmatch(mk, -1)
	got := map[string]string{}
	for _, m := range installs {
		got[m[1]] = m[2]
	}
	want := map[string]string{
		"mapt.sh":               "/lib/netifd/proto/mapt.sh",
		"mapt.script":           "/lib/netifd/mapt.script",
		"ce-agent.uci-defaults": "/etc/uci-defaults/90-ce-agent",
		"ce-agent.fallback":     "/etc/uci-defaults/99-ce-agent-fallback",
		"ce-agent.keep":         "/lib/upgrade/keep.d/ce-agent",
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

	// The paths the scripts use are the installed ones.
	for file, paths := range map[string][]string{
		"ce-agent/files/mapt.sh":            {want["mapt.script"], "/usr/bin/ce-agent"},
		"ce-agent/files/ce-agent.uninstall": {want["ce-agent.fallback"]},
		"ce-agent/files/ce-agent.fallback":  {want["mapt.sh"], "/lib/upgrade/keep.d/ce-agent"},
		"ce-agent/files/ce-agent.keep":      {want["ce-agent.fallback"]},
		"ce-agent/Makefile":                 {want["ce-agent.uninstall"], "sh " + want["ce-agent.uci-defaults"]},
	} {
		for _, p := range paths {
			if !strings.Contains(readFile(t, file), p) {
				t.Errorf("%s does not refer to %s", file, p)
			}
		}
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
	if slices.Contains(fields, "+odhcp6c") {
		t.Error("DEPENDS pulls in odhcp6c: the agent is the DHCPv6 client")
	}
	for _, line := range []string{
		"PKG_SOURCE:=mapt-$(PKG_VERSION).tar.gz",
		"PKG_SOURCE_URL:=https://github.com/mapt-go/mapt/releases/download/v$(PKG_VERSION)/",
		"PKG_BUILD_DIR:=$(BUILD_DIR)/mapt-$(PKG_VERSION)",
		"PKG_LICENSE:=Apache-2.0",
		"PKG_LICENSE_FILES:=LICENSE",
		"PKG_BUILD_DEPENDS:=golang/host",
		"GO_PKG:=github.com/mapt-go/mapt",
		"GO_PKG_BUILD_PKG:=github.com/mapt-go/mapt/cmd/ce-agent",
		"GO_PKG_LDFLAGS_X:=github.com/mapt-go/mapt/internal/version.Version=v$(PKG_VERSION)",
		"include $(TOPDIR)/feeds/packages/lang/golang/golang-package.mk",
		"$(eval $(call GoBinPackage,ce-agent))",
		"$(eval $(call BuildPackage,ce-agent))",
	} {
		if !strings.Contains(mk, line+"\n") {
			t.Errorf("Makefile lacks the line %q", line)
		}
	}
	if !regexp.MustCompile(`(?m)^PKG_VERSION:=\d+\.\d+\.\d+$`).MatchString(mk) || !regexp.MustCompile(`(?m)^PKG_HASH:=[0-9a-f]{64}$`).MatchString(mk) {
		t.Error("the source is not pinned by a version and a sha256")
	}
	// The feed links, strips and sets CGO itself.
	for _, bad := range []string{"-s -w", "PKG_MIRROR_HASH:=skip", "PKG_SOURCE_VERSION:=main", "GO_PKG_TARGET_VARS:=", "GO_PKG_DEFAULT_LDFLAGS:=", "../../lang/golang"} {
		if strings.Contains(mk, bad) {
			t.Errorf("Makefile has %q", bad)
		}
	}
}
