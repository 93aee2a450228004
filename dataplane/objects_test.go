package dataplane

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

// TestObjectsBothByteOrders parses the committed objects of both byte
// orders (OpenWrt targets include big-endian MIPS) and checks that they
// hold the same programs and maps, of the same shapes, so that the Go
// side's map encoding fits either.
func TestObjectsBothByteOrders(t *testing.T) {
	for _, stem := range []string{"ce", "br"} {
		var specs [2]*ebpf.CollectionSpec
		for i, order := range []string{"bpfel", "bpfeb"} {
			obj, err := os.ReadFile(stem + "_" + order + ".o")
			if err != nil {
				t.Fatal(err)
			}
			spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
			if err != nil {
				t.Fatalf("%s_%s.o: %v", stem, order, err)
			}
			want := []binary.ByteOrder{binary.LittleEndian, binary.BigEndian}[i]
			if spec.ByteOrder != want {
				t.Errorf("%s_%s.o: byte order %v", stem, order, spec.ByteOrder)
			}
			specs[i] = spec
		}
		el, eb := specs[0], specs[1]
		if len(el.Programs) != len(eb.Programs) || len(el.Maps) != len(eb.Maps) {
			t.Fatalf("%s: %d/%d programs, %d/%d maps", stem, len(el.Programs), len(eb.Programs), len(el.Maps), len(eb.Maps))
		}
		for name, p := range el.Programs {
			q, ok := eb.Programs[name]
			// Instruction counts differ: byte swaps vanish on big endian.
			if !ok || p.Type != q.Type || p.SectionName != q.SectionName || len(q.Instructions) == 0 {
				t.Errorf("%s: program %s differs between byte orders", stem, name)
			}
		}
		for name, m := range el.Maps {
			n, ok := eb.Maps[name]
			if !ok || m.Type != n.Type || m.KeySize != n.KeySize || m.ValueSize != n.ValueSize || m.MaxEntries != n.MaxEntries {
				t.Errorf("%s: map %s differs between byte orders: %+v vs %+v", stem, name, m, n)
			}
		}
	}
}
