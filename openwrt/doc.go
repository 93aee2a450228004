// Package openwrt holds the OpenWrt feed package for ce-agent (in
// ce-agent/: the package Makefile, the procd init script, the UCI config,
// the uci-defaults script and the netifd hook) and the tests that check it
// without an OpenWrt system: the UCI-to-flags mapping of the init script
// run against stubs of OpenWrt's shell API (testdata/root), shellcheck on
// every script, and the cross builds for router CPUs run under qemu-user.
//
// The agent it runs is the MAP-T CE of RFC 7599 (s5: the CE's NAPT into its
// port set, RFC 7597 s5.1); its DHCPv6 provisioning is RFC 7598.
package openwrt
