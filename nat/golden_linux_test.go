package nat

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden applies the bindings in a namespace and compares the kernel's
// view (`nft list table`) with testdata/*.nft. Run with -update after an
// intended change of the rule set, and review the diff.
func TestGolden(t *testing.T) {
	testenv.Require(t, "nft")
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"rfc7597-ex1", ex1(t)},
		{"seed-ce11b", withWAN(seed11b(t, "2001:db8:ce:11b::/64"), "wan0")},
		{"prefix-30", bindingConfig(t, "2001:db8::/40,192.0.2.0/24,6", "2001:db8:50::/46", "tun-map", 1500)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testenv.New(t)
			ns := l.NS("ce")
			if _, err := openIn(t, ns).Apply(tc.cfg); err != nil {
				t.Fatal(err)
			}
			got := ns.MustExec("nft", "list", "table", "ip", TableName)
			file := filepath.Join("testdata", tc.name+".nft")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("nft list table differs from %s:\n%s", file, got)
			}
		})
	}
}
