package savi

import (
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestGenerateReproducible: the committed objects are what `make
// generate` makes.
func TestGenerateReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the BPF sources")
	}
	testenv.CheckGenerated(t, "savi")
}
