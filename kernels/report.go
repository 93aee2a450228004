package kernels

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mapt-go/mapt/kernels/proto"
)

// step returns a run's result of the named step, or nil.
func (r *Run) step(name string) *proto.StepResult {
	if r.Summary == nil {
		return nil
	}
	for i := range r.Summary.Steps {
		if r.Summary.Steps[i].Name == name {
			return &r.Summary.Steps[i]
		}
	}
	return nil
}

// Attach is the attach mode the lab's CE and BR used, or the dataplane
// tests' TCX probe when the lab did not get that far.
func (r *Run) Attach() string {
	if r.Summary == nil {
		return "?"
	}
	if l := r.Summary.Lab; l != nil && l.CEAttach != "" {
		if l.BRAttach != "" && l.BRAttach != l.CEAttach {
			return fmt.Sprintf("CE %s, BR %s", l.CEAttach, l.BRAttach)
		}
		return l.CEAttach
	}
	if x := r.Summary.TCX; x != nil {
		if x.Supported {
			return "tcx (probe)"
		}
		return "clsact (probe)"
	}
	return "?"
}

// JIT summarises the programs' JIT state: "jit" when every program has
// native code, "interp: a, b" naming those that run in the interpreter.
func (r *Run) JIT() string {
	if r.Summary == nil || len(r.Summary.JIT) == 0 {
		return "?"
	}
	if r.Summary.JIT[0].JITEnable == "absent" {
		return "interp (kernel without JIT)"
	}
	var interp []string
	for _, j := range r.Summary.JIT {
		if j.Jited == 0 {
			interp = append(interp, j.Prog)
		}
	}
	if len(interp) == 0 {
		return fmt.Sprintf("jit (%d/%d)", len(r.Summary.JIT), len(r.Summary.JIT))
	}
	return fmt.Sprintf("interp: %s (%d/%d jit)", strings.Join(interp, ", "), len(r.Summary.JIT)-len(interp), len(r.Summary.JIT))
}

// StepCell is a step's cell in the table.
func (r *Run) StepCell(name string) string {
	s := r.step(name)
	if s == nil {
		if r.Outcome == Pass || r.Outcome == Fail {
			return "-"
		}
		return "not run"
	}
	var failed []string
	for _, f := range s.Failed {
		if !strings.Contains(f, "/") || len(s.Failed) < 4 {
			failed = append(failed, f)
		}
	}
	switch {
	case s.TimedOut:
		return fmt.Sprintf("TIMEOUT (%d passed; %s)", s.Passed, strings.Join(failed, ", "))
	case s.Exit == 0:
		c := fmt.Sprintf("pass (%d)", s.Passed)
		if s.Core {
			c = fmt.Sprintf("pass (core, %d)", s.Passed)
		}
		if len(s.Skipped) > 0 {
			c += fmt.Sprintf(", %d skipped", len(s.Skipped))
		}
		return c
	case len(failed) > 0:
		return fmt.Sprintf("FAIL: %s (%d passed)", strings.Join(failed, ", "), s.Passed)
	}
	return fmt.Sprintf("FAIL: exit %d (%d passed)", s.Exit, s.Passed)
}

// Release is the booted kernel's uname -r, or the package's.
func (r *Run) Release() string {
	if r.Summary != nil && r.Summary.Boot.Release != "" {
		return r.Summary.Boot.Release
	}
	return strings.TrimSuffix(r.Package, ".deb")
}

// Markdown writes the report: the matrix table, the per-program table and
// every failure with its lines.
func (rep *Report) Markdown(w io.Writer, steps []Step) {
	fmt.Fprintf(w, "# Kernel matrix (`make test-kernels`)\n\n")
	fmt.Fprintf(w, "Run %s, %s, %d VM(s) at a time under TCG (qemu %s): %.0f s in all; downloads, cross builds and initramfs images done after %.0f s, VMs from then on overlapping, %.0f s from the first boot to the last result. Host load average at the end: %s.\n\n",
		rep.Started.UTC().Format("2006-01-02 15:04 UTC"), rep.GoVersion, rep.Jobs, rep.Qemu, rep.TotalSeconds, rep.PrepSeconds, rep.VMSeconds, rep.Load)
	hdr := []string{"kernel", "arch", "release", "attach", "JIT"}
	for _, s := range steps {
		if s.Name != "jit" {
			hdr = append(hdr, s.Name)
		}
	}
	hdr = append(hdr, "result", "time")
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(hdr, " | "), strings.Repeat("---|", len(hdr)))
	for _, r := range rep.Runs {
		row := []string{r.Kernel.ID, r.Kernel.Arch, r.Release(), r.Attach(), r.JIT()}
		for _, s := range steps {
			if s.Name != "jit" {
				row = append(row, r.StepCell(s.Name))
			}
		}
		row = append(row, r.Outcome, fmt.Sprintf("%.0f s", r.Seconds))
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}

	// Programs: jited bytes / verified instructions per kernel.
	progs := map[string]bool{}
	for _, r := range rep.Runs {
		if r.Summary != nil {
			for _, j := range r.Summary.JIT {
				progs[j.Translator+"/"+j.Prog] = true
			}
		}
	}
	if len(progs) > 0 {
		var names []string
		for p := range progs {
			names = append(names, p)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "\nPrograms: jited bytes / xlated bytes / verified instructions (\"interp\": jited 0 with bpf_jit_enable=1; \"-\": the kernel does not count, < 5.16).\n\n")
		fmt.Fprintf(w, "| program |")
		for _, r := range rep.Runs {
			fmt.Fprintf(w, " %s |", r.Kernel.ID)
		}
		fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(rep.Runs)))
		for _, p := range names {
			fmt.Fprintf(w, "| %s |", p)
			for _, r := range rep.Runs {
				cell := "?"
				if r.Summary != nil {
					for _, j := range r.Summary.JIT {
						if j.Translator+"/"+j.Prog == p {
							cell = jitCell(j)
						}
					}
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			fmt.Fprintln(w)
		}
	}

	var bad []*Run
	for _, r := range rep.Runs {
		if r.Outcome != Pass {
			bad = append(bad, r)
		}
	}
	if len(bad) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Failures\n")
	for _, r := range bad {
		fmt.Fprintf(w, "\n### %s: %s\n\n", r.Kernel.ID, r.Outcome)
		if r.Result != "" {
			fmt.Fprintf(w, "Result: `%s`\n\n", r.Result)
		}
		if r.Err != "" {
			fmt.Fprintf(w, "Error: `%s`\n\n", r.Err)
		}
		var lines []string
		lines = append(lines, r.KernelLines...)
		if r.Summary != nil {
			lines = append(lines, r.Summary.Boot.Errors...)
			for _, s := range r.Summary.Steps {
				if s.Exit != 0 || s.TimedOut {
					for _, l := range s.Lines {
						lines = append(lines, s.Name+": "+l)
					}
				}
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(w, "```\n%s\n```\n", strings.Join(lines, "\n"))
		}
		if r.Console != "" {
			fmt.Fprintf(w, "Console: `%s`\n", r.Console)
		}
	}
}

func jitCell(j proto.JIT) string {
	if j.Error != "" {
		return "error"
	}
	v := "-"
	if j.Verified >= 0 {
		v = fmt.Sprint(j.Verified)
	}
	if j.Jited == 0 {
		return fmt.Sprintf("interp / %d / %s", j.Xlated, v)
	}
	return fmt.Sprintf("%d / %d / %s", j.Jited, j.Xlated, v)
}

// WriteFiles writes latest.md and latest.json into dir.
func (rep *Report) WriteFiles(dir string, steps []Step) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	var md strings.Builder
	rep.Markdown(&md, steps)
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.json"), b, 0o644)
}
