package importrules

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mapt-go/mapt"

// deps lists the packages pkg depends on, itself excluded, as go list
// -deps gives them (transitively, without tests).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./%s: %v\n%s", pkg, err, out)
	}
	var ds []string
	for _, d := range strings.Fields(string(out)) {
		if d != module+"/"+pkg {
			ds = append(ds, d)
		}
	}
	return ds
}

// ours strips the module path from the module's own packages, and drops
// the others.
func ours(ds []string) []string {
	var out []string
	for _, d := range ds {
		if rest, ok := strings.CutPrefix(d, module+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestOnly: the codecs, parsers and the dataplane depend on no more of
// the module than ARCHITECTURE.md says.
func TestOnly(t *testing.T) {
	for pkg, allowed := range map[string][]string{
		"mapt":           nil,
		"s46":            {"mapt"},
		"domainfile":     {"mapt"},
		"kea":            {"mapt", "domainfile", "s46"},
		"provision":      {"mapt", "s46"},
		"dataplane":      {"mapt", "internal/serve"},
		"dataplane/savi": {"mapt", "dataplane", "internal/serve"},
		"nat":            {"mapt"},
	} {
		t.Run(pkg, func(t *testing.T) {
			for _, d := range ours(deps(t, pkg)) {
				if !slices.Contains(allowed, d) {
					t.Errorf("%s depends on %s; it may depend on %v only", pkg, d, allowed)
				}
			}
		})
	}
}

// TestNever: the composers do not reach into each other or the command
// line, production code does not link test infrastructure, and ce-agent,
// which runs from a router's flash, links none of the big libraries br
// uses.
func TestNever(t *testing.T) {
	testOnly := []string{module + "/testenv", module + "/lab", module + "/bench", module + "/kernels", module + "/s46/s46test", module + "/domainfile/domaintest"}
	for pkg, banned := range map[string][]string{
		"agent":        append([]string{module + "/relay", module + "/internal/mapcli"}, testOnly...),
		"relay":        append([]string{module + "/agent", module + "/provision", module + "/nat", module + "/internal/mapcli"}, testOnly...),
		"cmd/ce-agent": append([]string{"github.com/prometheus/client_golang", "github.com/fsnotify/fsnotify", "gopkg.in/yaml", module + "/relay", module + "/kea"}, testOnly...),
		"cmd/br":       append([]string{module + "/agent", module + "/provision"}, testOnly...),
	} {
		t.Run(pkg, func(t *testing.T) {
			for _, d := range deps(t, pkg) {
				for _, b := range banned {
					if d == b || strings.HasPrefix(d, b+"/") {
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
			}
		})
	}
}
