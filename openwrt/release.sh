#!/bin/sh
# Makes the source tarball the OpenWrt package builds from and pins it in
# ce-agent/Makefile:
#
#	openwrt/release.sh VERSION [COMMIT]    # COMMIT defaults to HEAD
#
# writes build/release/mapt-VERSION.tar.gz (git archive of COMMIT under
# mapt-VERSION/, gzip -n: the same bytes for the same commit, on any
# machine with git and gzip), and sets PKG_VERSION, PKG_HASH and the
# provenance comment in the Makefile. Upload the tarball as the release
# asset of tag vVERSION (PKG_SOURCE_URL). With DRY_RUN=1 it only prints
# the hash.
set -eu

[ $# -ge 1 ] || {
	echo "usage: $0 VERSION [COMMIT]" >&2
	exit 2
}
version=$1
commit=$(git rev-parse --verify "${2:-HEAD}^{commit}")
case $version in
*[!0-9.]* | "" | .* | *.)
	echo "$0: version $version: want digits and dots, e.g. 0.2.0" >&2
	exit 2
	;;
esac
top=$(git rev-parse --show-toplevel)
out=${OUT_DIR:-$top/build/release}
mkdir -p "$out"
tarball=$out/mapt-$version.tar.gz
git -C "$top" archive --format=tar --prefix="mapt-$version/" "$commit" | gzip -9n >"$tarball"
hash=$(sha256sum "$tarball" | cut -d' ' -f1)
echo "$hash  $tarball"
[ "${DRY_RUN:-0}" = 1 ] && exit 0
mk=$top/openwrt/ce-agent/Makefile
sed -i -e "s/^PKG_VERSION:=.*/PKG_VERSION:=$version/" \
	-e "s/^PKG_HASH:=.*/PKG_HASH:=$hash/" \
	-e "s|^# PKG_HASH: .*|# PKG_HASH: openwrt/release.sh $version $commit|" "$mk"
