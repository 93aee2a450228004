package kernels

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a matrix run.
type Options struct {
	Repo    string // the module's root
	Cache   string // downloads and unpacked packages, kept between runs
	Work    string // per-run files: binaries, initramfs, console logs
	Kernels []Kernel
	Steps   []Step
	Jobs    int           // VMs at a time
	Timeout time.Duration // per VM, from qemu's start (0: the plan's step timeouts and two minutes)
	Scale   float64       // step timeouts are multiplied by this
	Full    bool          // every test of every step on every kernel
	Refresh bool          // ask apt again even for unpacked packages
	Echo    io.Writer     // the guests' consoles, live (nil: only the log files)
	Log     func(format string, args ...any)
}

// Report is a matrix run's outcome.
type Report struct {
	Runs         []*Run
	Started      time.Time
	PrepSeconds  float64 // downloads, cross builds, initramfs
	VMSeconds    float64 // wall time of all VMs
	TotalSeconds float64
	GoVersion    string
	Qemu         string // qemu's version
	Load         string // /proc/loadavg at the end: the machine may be shared
	Jobs         int
}

// Failed reports whether any kernel did not pass.
func (r *Report) Failed() bool {
	for _, run := range r.Runs {
		if run.Outcome != Pass {
			return true
		}
	}
	return len(r.Runs) == 0
}

// RunMatrix prepares every kernel of o and boots them, o.Jobs at a time.
func RunMatrix(o Options) (*Report, error) {
	rep := &Report{Started: time.Now(), GoVersion: goVersion(), Jobs: o.Jobs}
	arch := &Archive{Dir: filepath.Join(o.Cache, "apt"), Debs: filepath.Join(o.Cache, "debs"), Archs: Archs(Matrix), Log: o.Log}
	if err := arch.setup(); err != nil {
		return nil, err
	}
	// The test packages each architecture's kernels run (the others are
	// not built for it).
	pkgs := map[string][]string{}
	for _, k := range o.Kernels {
		for _, st := range o.Steps {
			if _, _, _, ok := planStep(st, k, o.Full); ok && !slices.Contains(pkgs[k.Arch], st.Package) {
				pkgs[k.Arch] = append(pkgs[k.Arch], st.Package)
			}
		}
	}

	// Slowest first: the slowest VM boots while the others are prepared,
	// and the two slots finish close together.
	order := append([]Kernel(nil), o.Kernels...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Slow > order[j].Slow })

	type prepared struct {
		e      *Extracted
		initrd string
	}
	var mu sync.Mutex
	runs := map[string]*Run{}
	setRun := func(id string, r *Run) { mu.Lock(); runs[id] = r; mu.Unlock() }
	// While kernels are being prepared (cross builds use both cores), the
	// preparation holds one of the slots.
	jobs := max(o.Jobs, 1)
	sem := make(chan struct{}, jobs)
	if jobs > 1 {
		sem <- struct{}{}
	}
	ready := make(chan *prepared, len(order)) // preparing never waits for a slot
	go func() {
		defer func() {
			rep.PrepSeconds = time.Since(rep.Started).Seconds()
			if jobs > 1 {
				<-sem
			}
			close(ready)
		}()
		sysroots := map[string]*Sysroot{}
		bins := map[string]string{}
		archErr := map[string]error{}
		for _, k := range order {
			fail := func(err error) {
				o.Log("%s: %v", k.ID, err)
				setRun(k.ID, &Run{Kernel: k, Outcome: Error, Err: err.Error()})
			}
			if _, done := bins[k.Arch]; !done && archErr[k.Arch] == nil {
				o.Log("%s: userspace and cross-built binaries", k.Arch)
				s, err := withRetry(arch, func() (*Sysroot, error) { return FetchSysroot(arch, o.Cache, k.Arch, k.Triplet, o.Refresh) })
				if err == nil {
					sysroots[k.Arch] = s
					bin := filepath.Join(o.Work, "bin", k.Arch)
					if err = BuildBinaries(o.Repo, bin, k, pkgs[k.Arch]); err == nil {
						bins[k.Arch] = bin
					}
				}
				archErr[k.Arch] = err
			}
			if err := archErr[k.Arch]; err != nil {
				fail(err)
				continue
			}
			o.Log("%s: kernel", k.ID)
			e, err := withRetry(arch, func() (*Extracted, error) { return FetchKernel(arch, o.Cache, k, o.Refresh) })
			if err != nil {
				fail(err)
				continue
			}
			dir := filepath.Join(o.Work, k.ID)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fail(err)
				continue
			}
			initrd := filepath.Join(dir, "initramfs.gz")
			if err := Assemble(initrd, o.Repo, bins[k.Arch], e, sysroots[k.Arch], o.Steps, o.Full, max(o.Scale, 1)); err != nil {
				fail(err)
				continue
			}
			if e.builtinXfrm() {
				o.Log("%s: note: xfrm_user is built in: this kernel cannot show that the product runs without it", k.ID)
			}
			ready <- &prepared{e: e, initrd: initrd}
		}
	}()

	var vmStart time.Time
	var wg sync.WaitGroup
	for p := range ready {
		k := p.e.Kernel
		sem <- struct{}{}
		if vmStart.IsZero() {
			vmStart = time.Now()
		}
		wg.Add(1)
		o.Log("%s: booting %s", k.ID, filepath.Base(p.e.Image))
		go func() {
			defer func() { <-sem; wg.Done() }()
			timeout := o.Timeout
			if timeout == 0 {
				timeout = 2 * time.Minute
				for _, st := range o.Steps {
					if _, _, t, ok := planStep(st, k, o.Full); ok {
						timeout += time.Duration(float64(t) * max(o.Scale, 1))
					}
				}
			}
			r := Boot(p.e, p.initrd, filepath.Join(o.Work, k.ID, "console.log"), timeout, o.Echo)
			o.Log("%s: %s in %.0fs: %s%s", k.ID, r.Outcome, r.Seconds, r.Result, r.Err)
			setRun(k.ID, r)
		}()
	}
	wg.Wait()
	if vmStart.IsZero() {
		vmStart = time.Now()
	}
	rep.VMSeconds = time.Since(vmStart).Seconds()
	rep.TotalSeconds = time.Since(rep.Started).Seconds()
	rep.Qemu = qemuVersion()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	for _, k := range o.Kernels {
		rep.Runs = append(rep.Runs, runs[k.ID])
	}
	return rep, nil
}

// withRetry runs fetch, and when it fails, updates the package lists and
// runs it once more: a cached list may name a version the archive has
// since replaced.
func withRetry[T any](a *Archive, fetch func() (T, error)) (T, error) {
	v, err := fetch()
	var aerr *AptError
	if err == nil || a.updated || !errors.As(err, &aerr) {
		return v, err
	}
	a.Log("%v; updating the package lists and trying again", err)
	if uerr := a.Update(); uerr != nil {
		return v, fmt.Errorf("%w (and %v)", err, uerr)
	}
	return fetch()
}
