package savi

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -target bpfel,bpfeb savi bpf/savi.c -- -O2 -g -Wall -Werror -I../bpf/include
