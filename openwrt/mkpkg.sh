#!/bin/sh
# Packages a prebuilt ce-agent (from `make cross`) with the OpenWrt files,
# for routers whose OpenWrt release cannot build it in its SDK (its Go is
# older than go.mod wants; see README.md):
#
#	openwrt/mkpkg.sh BINARY OPKG_ARCH OUT_DIR
#
# writes OUT_DIR/ce-agent_VERSION_OPKG_ARCH.ipk (opkg, OpenWrt 23.05 and
# 24.10: `opkg install ce-agent_*.ipk`) and OUT_DIR/ce-agent-VERSION-files.tar.gz
# (any release, apk-based 25.x included: `tar -C / -xzf ...`, then
# `sh /etc/uci-defaults/90-ce-agent`). OPKG_ARCH is the router's package
# architecture (`opkg print-architecture`, e.g. mipsel_24kc, aarch64_cortex-a53).
set -eu

[ $# -eq 3 ] || {
	echo "usage: $0 BINARY OPKG_ARCH OUT_DIR" >&2
	exit 2
}
bin=$1 arch=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
files=$here/ce-agent/files
mk=$here/ce-agent/Makefile
version=$(sed -n 's/^PKG_VERSION:=//p' "$mk")-$(sed -n 's/^PKG_RELEASE:=//p' "$mk")
# shellcheck disable=SC2016 # a literal $(GO_ARCH_DEPENDS) in the Makefile
deps=$(sed -n '/^  DEPENDS:=/,/[^\\]$/p' "$mk" | tr -d '\\\n' | sed -e 's/.*DEPENDS:=//' -e 's/$(GO_ARCH_DEPENDS)//' -e 's/+//g' |
	tr -s ' \t' '\n' | sed '/^$/d' | paste -sd, - | sed 's/,/, /g')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data
install -D -m 0755 "$bin" "$data/usr/bin/ce-agent"
install -D -m 0755 "$files/mapt.sh" "$data/lib/netifd/proto/mapt.sh"
install -D -m 0755 "$files/mapt.script" "$data/lib/netifd/mapt.script"
install -D -m 0755 "$files/ce-agent.uci-defaults" "$data/etc/uci-defaults/90-ce-agent"
install -D -m 0755 "$files/ce-agent.fallback" "$data/etc/uci-defaults/99-ce-agent-fallback"
install -D -m 0644 "$files/ce-agent.keep" "$data/lib/upgrade/keep.d/ce-agent"
install -D -m 0755 "$files/ce-agent.uninstall" "$data/usr/libexec/ce-agent/uninstall"

ctl=$work/control
mkdir -p "$ctl"
size=$(du -sk "$data" | cut -f1)
cat >"$ctl/control" <<EOT
Package: ce-agent
Version: $version
Depends: libc, $deps
Source: openwrt/ce-agent
License: Apache-2.0
Section: net
Architecture: $arch
Installed-Size: $size
Description: MAP-T CE as netifd protocol 'mapt' (DHCPv6 S46, nftables SNAT, TC-eBPF)
EOT
# The Makefile's postinst and prerm, without make's $$ escapes.
for s in postinst prerm; do
	sed -n "/^define Package\/ce-agent\/$s$/,/^endef$/p" "$mk" | sed -e '1d' -e '$d' -e 's/\$\$/$/g' >"$ctl/$s"
	chmod 0755 "$ctl/$s"
done
echo 2.0 >"$work/debian-binary"

tarc() { # dir out: a reproducible tar.gz of dir's contents
	tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$1" -cf - . | gzip -9n >"$2"
}
mkdir -p "$out"
tarc "$data" "$work/data.tar.gz"
tarc "$ctl" "$work/control.tar.gz"
ipk=$out/ce-agent_${version}_$arch.ipk
tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work" -cf - ./debian-binary ./control.tar.gz ./data.tar.gz | gzip -9n >"$ipk"
cp "$work/data.tar.gz" "$out/ce-agent-$version-files.tar.gz"
echo "$ipk"
echo "$out/ce-agent-$version-files.tar.gz"
