// Package openwrt holds the OpenWrt package for ce-agent (in ce-agent/: the
// feed Makefile, the netifd protocol handler 'mapt' and its notify script,
// the uci-defaults, sysupgrade fallback and uninstall scripts), the tools
// for releases (release.sh: the pinned source tarball; mkpkg.sh: an .ipk
// and a files tarball from a prebuilt binary), and the tests that check it
// all without an OpenWrt system: the handler and notify script run against
// stubs of netifd's proto_* API that record calls (testdata/root), also
// with the real agent against real Kea in the lab's namespaces; install,
// removal and sysupgrade played on a model of UCI; shellcheck on every
// script; the cross builds for router CPUs run under qemu-user.
//
// The agent it runs is the MAP-T CE of RFC 7599 (s5: the CE's NAPT into its
// port set, RFC 7597 s5.1); its DHCPv6 provisioning is RFC 8415 with RFC
// 7598 (S46 options), RFC 8026 (S46 priority), RFC 3646 and RFC 5908.
package openwrt
