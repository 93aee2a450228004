package dataplane

import (
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestGenerateReproducible reruns every bpf2go line of gen.go into a
// temporary directory and compares the output with the committed files
// byte for byte (make check-generate runs it).
func TestGenerateReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the BPF sources")
	}
	testenv.CheckGenerated(t, "dataplane")
}
