package dataplane

// The objects are committed so that building needs no clang; `make
// generate` rebuilds them and `make check-generate` proves they match.
// bpf2go maps the source directory to a relative path in the debug info, so
// the output does not depend on where the tree lives.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -target bpfel,bpfeb -type xlat_config -type cfg_flag -type reason -type rule_flag -type rule -type lpm_v4_key -type lpm_v6_key -type psid_key -type v6_exact_key ce bpf/ce.c -- -O2 -g -Wall -Werror -Ibpf/include
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -target bpfel,bpfeb br bpf/br.c -- -O2 -g -Wall -Werror -Ibpf/include

// Line info (.BTF.ext) is left out: it only annotates verifier logs with
// source lines, and it was over a third of each object, which ce-agent
// embeds and a router keeps in flash (see openwrt's size budget). For a
// verifier log with lines, build without these steps.
//go:generate llvm-objcopy --remove-section=.BTF.ext --remove-section=.rel.BTF.ext ce_bpfel.o
//go:generate llvm-objcopy --remove-section=.BTF.ext --remove-section=.rel.BTF.ext ce_bpfeb.o
//go:generate llvm-objcopy --remove-section=.BTF.ext --remove-section=.rel.BTF.ext br_bpfel.o
//go:generate llvm-objcopy --remove-section=.BTF.ext --remove-section=.rel.BTF.ext br_bpfeb.o
