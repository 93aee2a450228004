package dataplane

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// reasonNames reads the counter names from enum reason in the object's
// BTF (bpf/maps.h), in index order: R_CE_4TO6 is "ce_4to6". C is the one
// source of the reasons; R_MAX ends the list and sizes the counter maps.
func reasonNames(spec *ebpf.CollectionSpec) ([]string, error) {
	return EnumNames(spec, "reason", "R_")
}

// tailNames are the programs of the tail-call array, by index (enum tail:
// T_XLAT_ERR4TO6 is program xlat_err4to6).
func tailNames(spec *ebpf.CollectionSpec) ([]string, error) {
	return EnumNames(spec, "tail", "T_")
}

// EnumNames reads a C enum of consecutive values from 0, ended by
// <prefix>MAX, from an object's BTF, and returns the names in lower case
// without the prefix: the counter names of a per-CPU counter array
// indexed by the enum, with C as their one source.
func EnumNames(spec *ebpf.CollectionSpec, name, prefix string) ([]string, error) {
	var e *btf.Enum
	if err := spec.Types.TypeByName(name, &e); err != nil {
		return nil, fmt.Errorf("dataplane: enum %s in the object's BTF: %w", name, err)
	}
	var names []string
	for i, v := range e.Values {
		if v.Value != uint64(i) {
			return nil, fmt.Errorf("dataplane: enum %s: %s = %d at position %d: want consecutive values", name, v.Name, v.Value, i)
		}
		if v.Name == prefix+"MAX" {
			return names, nil
		}
		names = append(names, strings.ToLower(strings.TrimPrefix(v.Name, prefix)))
	}
	return nil, fmt.Errorf("dataplane: enum %s has no %sMAX", name, prefix)
}

// SumPerCPU reads a per-CPU array of counters indexed like names and
// returns each counter summed over CPUs.
func SumPerCPU(m *ebpf.Map, names []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(names))
	for i, name := range names {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}
