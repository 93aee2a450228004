#!/bin/sh
# cross.sh builds static, stripped ce-agent and br for the CPUs home routers
# use (issue 8) and prints a size table. CGO is off so the binaries run on
# musl (OpenWrt) and glibc alike; -trimpath keeps build paths out of them.
#
# Environment:
#   OUT     output directory (default build/cross); binaries go to OUT/ARCH/BIN
#   ARCHS   architectures (default "mips mipsle arm arm64 amd64")
#   BINS    binaries (default "ce-agent br")
#   BUDGET  size budget in bytes for ce-agent on mipsle, the smallest common
#           OpenWrt target; the build fails when it is exceeded
#   VERSION stamped into internal/version when set
#   GO      go command (default go)
set -eu

OUT=${OUT:-build/cross}
ARCHS=${ARCHS:-"mips mipsle arm arm64 amd64"}
BINS=${BINS:-"ce-agent br"}
# 8 MiB: OpenWrt devices with 16 MiB of flash must still fit the agent.
BUDGET=${BUDGET:-8388608}
GO=${GO:-go}

die() {
	echo "cross: $*" >&2
	exit 1
}

ldflags="-s -w"
if [ -n "${VERSION:-}" ]; then
	ldflags="$ldflags -X github.com/mapt-go/mapt/internal/version.Version=$VERSION"
fi

for arch in $ARCHS; do
	# Routers without an FPU (most MIPS SoCs) need softfloat; ARMv7 is the
	# floor for OpenWrt's arm targets that matter here.
	case $arch in
	mips | mipsle) extra="GOMIPS=softfloat" ;;
	arm) extra="GOARM=7" ;;
	arm64 | amd64) extra="" ;;
	*) die "unsupported architecture $arch (want mips, mipsle, arm, arm64 or amd64)" ;;
	esac
	mkdir -p "$OUT/$arch"
	for bin in $BINS; do
		[ -d "cmd/$bin" ] || die "no command cmd/$bin (run from the module root)"
		# shellcheck disable=SC2086 # $extra is one optional VAR=value word
		env CGO_ENABLED=0 GOOS=linux GOARCH="$arch" $extra \
			"$GO" build -trimpath -ldflags "$ldflags" -o "$OUT/$arch/$bin" "./cmd/$bin" ||
			die "build $bin for linux/$arch failed"
	done
done

printf '%-8s %-10s %10s %8s\n' ARCH BINARY BYTES MIB
over=""
for arch in $ARCHS; do
	for bin in $BINS; do
		size=$(wc -c <"$OUT/$arch/$bin")
		size=$((size + 0))
		printf '%-8s %-10s %10d %8s\n' "$arch" "$bin" "$size" \
			"$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }')"
		if [ "$arch" = mipsle ] && [ "$bin" = ce-agent ] && [ "$size" -gt "$BUDGET" ]; then
			over="ce-agent for linux/mipsle is $size bytes, over the budget of $BUDGET bytes"
		fi
	done
done
[ -z "$over" ] || die "$over"
