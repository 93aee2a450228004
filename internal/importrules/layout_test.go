package importrules

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// layoutPaths are the paths README.md's Layout table names (each
// `backquoted` word of its rows that starts like a directory of the
// tree), by row.
func layoutPaths(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no Layout section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	word := regexp.MustCompile("`([a-z0-9][a-z0-9_./-]*)`")
	var paths []string
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, m := range word.FindAllStringSubmatch(line, -1) {
			p := strings.TrimSuffix(m[1], "/")
			if strings.Contains(p, "/") || strings.HasSuffix(m[1], "/") || fileExists(p) {
				paths = append(paths, p)
			}
		}
	}
	if len(paths) == 0 {
		t.Fatal("README.md's Layout table names no paths")
	}
	return paths
}

func fileExists(p string) bool {
	_, err := os.Stat("../../" + p)
	return err == nil
}

// TestLayout: README.md's Layout table names every package of the module
// (itself or a directory above it) and nothing that is not in the tree.
func TestLayout(t *testing.T) {
	paths := layoutPaths(t)
	for _, p := range paths {
		if !fileExists(p) {
			t.Errorf("README.md's Layout names %s, which is not in the tree", p)
		}
	}
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, out)
	}
	for _, pkg := range ours(strings.Fields(string(out))) {
		covered := false
		for _, p := range paths {
			if pkg == p || strings.HasPrefix(pkg, p+"/") {
				covered = true
				break
			}
		}
		if !covered {
			t.Errorf("README.md's Layout does not name package %s (or a directory above it)", pkg)
		}
	}
}

// TestDocReferences: the documents point only at what the repository
// has. Every relative Markdown link resolves, and no comment or document
// cites the design brief the project started from (DESIGN.md, "design
// brief sN"), which is not in the repository: ARCHITECTURE.md is.
func TestDocReferences(t *testing.T) {
	cmd := exec.Command("git", "ls-files", "*.md", "*.go", "*.c", "*.h", "*.sh", "Makefile")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git ls-files (the test reads the tracked files): %v: %s", err, out)
	}
	link := regexp.MustCompile(`\]\(([^)#:\s]+)(#[^)]*)?\)`)
	brief := regexp.MustCompile(`(?i)design brief|DESIGN\.md|DESIGN s[0-9]`)
	files := strings.Fields(string(out))
	if len(files) < 10 {
		t.Fatalf("git ls-files found %d files", len(files))
	}
	for _, f := range files {
		if f == "internal/importrules/layout_test.go" {
			continue // the patterns above
		}
		b, err := os.ReadFile("../../" + f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if m := brief.FindString(text); m != "" && f != "ARCHITECTURE.md" {
			t.Errorf("%s cites %q, which is not in the repository (see ARCHITECTURE.md)", f, m)
		}
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		dir := f[:strings.LastIndex(f, "/")+1]
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			if _, err := os.Stat("../../" + dir + m[1]); err != nil {
				t.Errorf("%s links to %s, which is not in the tree", f, m[1])
			}
		}
	}
}
