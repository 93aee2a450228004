# MAP-T CE agent and BR. `make test` and `make demo` install what they
# need on Debian (as root) when it is missing.

GO      ?= go
GOFLAGS ?=
BIN     := bin
PKGS    := ./...

# Debian packages the tests and the lab use.
APT_PKGS := clang llvm libbpf-dev kea-dhcp6-server nftables iproute2 iperf3 \
	tcpdump iputils-ping conntrack ethtool wget curl procps tayga python3 shellcheck qemu-user-static bird2 prometheus \
	qemu-system-x86 qemu-system-arm qemu-system-mips qemu-system-misc \
	debian-archive-keyring kmod xz-utils cpio nodejs

.PHONY: all build test test-kernels unit deps generate check-generate vet staticcheck bench demo soak cross clean

all: build

deps:
	@missing=""; for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build:
	mkdir -p $(BIN)
	$(GO) build $(GOFLAGS) -o $(BIN)/ ./cmd/...

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

# The whole suite: unit, BPF (BPF_PROG_TEST_RUN) and namespace tests, then
# the kernel matrix.
test: deps build vet
	$(GO) test $(GOFLAGS) -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory test-kernels

# Debian kernels of five architectures under qemu-system (TCG), each
# running the JIT report, the lab path and the dataplane tests, the amd64
# ones the agent's and relay's too (kernels/). Downloads are cached in
# $$MAPT_KERNELS_CACHE (default ~/.cache/mapt-kernels); KERNELS=mipsel-6.1,amd64
# or STEPS=jit,lab run a part, FULL=1 every test on every kernel; the table
# goes to kernels/results/latest.md. qemu-system-s390x is in qemu-system-misc.
test-kernels: deps
	$(GO) run ./kernels/cmd/matrix $(KERNELS_FLAGS)

unit:
	$(GO) test -short $(PKGS)

# The main job: the seed's lab in namespaces, zero-touch (see lab/).
# KEEP=1 leaves it up.
demo: deps build
	$(GO) run ./lab/demo -bin $(BIN)

# The soak (not part of `make test`): the lab with both CEs for $(SOAK)
# under mixed TCP/UDP/ICMP traffic, Kea renewals every 10 s, a BR reload
# every minute, a rule change every 2 minutes, one agent and one BR
# restart; prints the loss per event and every process's RSS and open
# files at the start and the end, and fails on any loss or leak (lab/soak).
SOAK ?= 10m
soak: deps build
	$(GO) run ./lab/soak -bin $(BIN) -duration $(SOAK)

generate:
	$(GO) generate ./dataplane/...

# Regenerates the BPF objects into a temporary directory and compares them
# with the committed ones byte for byte.
check-generate:
	$(GO) test -count=1 -run '^TestGenerateReproducible$$' ./dataplane/...

# Per-packet micro-benchmarks, the agent's provisioning cost (lease to
# translator ready, DHCPv6 bind against Kea, nat apply), then the headline run (bench/): TCP and
# 64-byte UDP across the seed's topology through plain IPv4 routing, MAP-T
# and tayga, written to bench/results/latest.{md,png} and README.md's
# Performance table. About 4 minutes.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./mapt/ ./dataplane/
	$(GO) test -run '^$$' -bench . -benchtime 20x ./agent/ ./provision/ ./nat/
	$(GO) run ./bench/cmd/headline -bin $(BIN) -out bench/results -readme README.md

# Every fuzz target for FUZZTIME each (default 60s): make fuzz FUZZTIME=10m.
# Not part of make test (the seed corpora run there as plain tests).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Static, stripped ce-agent and br for router CPUs (mips, mipsle, arm,
# arm64, amd64) into build/cross/ARCH/, with a size table; fails when
# ce-agent for mipsle exceeds its size budget (scripts/cross.sh).
cross:
	GO=$(GO) scripts/cross.sh

clean:
	rm -rf $(BIN)
