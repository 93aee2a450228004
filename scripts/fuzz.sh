#!/usr/bin/env bash
# make fuzz: every fuzz target of the module, one after the other, each for
# FUZZTIME (default 60s; Go's duration syntax, or Nx for N execs). The
# targets run as root where they need BPF (dataplane). New findings land in
# the package's testdata/fuzz/<Target>/ as regression inputs; the run stops
# at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
for pkg in $($GO list ./...); do
	for target in $($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($FUZZTIME)"
		$GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
