package nat

import (
	"strings"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestMissingFeatureProbe: on a kernel with every module, each probe
// transaction commits (and removes its table again), so nothing is
// reported missing and no probe table is left behind. The kernel matrix
// runs it on kernels where the modules are loaded one by one.
func TestMissingFeatureProbe(t *testing.T) {
	testenv.Require(t, "nft")
	l := testenv.New(t)
	ns := l.NS("ce")
	n := openIn(t, ns)
	if err := n.missingFeature(); err != nil {
		t.Fatalf("missingFeature on a complete kernel: %v", err)
	}
	if out := ns.MustExec("nft", "list", "tables"); strings.Contains(out, probeTable) {
		t.Errorf("probe table left behind:\n%s", out)
	}
}
