// Command matrix is `make test-kernels`: it boots Debian kernels of five
// architectures under qemu-system (TCG) and runs the dataplane, the lab
// path and the agent and relay tests inside each (see package kernels).
// It prints the result table, writes it to -results, and exits 1 when any
// kernel fails.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mapt-go/mapt/kernels"
)

func main() {
	cacheDef := os.Getenv("MAPT_KERNELS_CACHE")
	if cacheDef == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cacheDef = filepath.Join(d, "mapt-kernels")
		} else {
			cacheDef = "/var/cache/mapt-kernels"
		}
	}
	var (
		cache   = flag.String("cache", cacheDef, "downloads and unpacked packages, kept between runs (env MAPT_KERNELS_CACHE)")
		work    = flag.String("work", "build/kernels", "binaries, initramfs images and console logs of this run")
		results = flag.String("results", "kernels/results", "where latest.md and latest.json go (\"\": nowhere)")
		only    = flag.String("kernels", os.Getenv("KERNELS"), "comma-separated kernels or architectures (default: all; env KERNELS)")
		steps   = flag.String("steps", os.Getenv("STEPS"), "comma-separated steps: jit, lab, dataplane, agent, relay (default: all; env STEPS)")
		jobs    = flag.Int("jobs", 2, "VMs at a time")
		timeout = flag.Duration("timeout", 0, "per VM: the host kills qemu after this (default: the sum of its steps' timeouts and 2m)")
		full    = flag.Bool("full", os.Getenv("FULL") != "", "every test of every step on every kernel (env FULL)")
		scale   = flag.Float64("scale", 1, "multiply the guest's step timeouts by this (slow machines)")
		refresh = flag.Bool("refresh", false, "ask apt again for packages already in the cache")
		verbose = flag.Bool("v", false, "echo the guests' consoles")
	)
	flag.Parse()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "test-kernels: "+format+"\n", args...)
	}
	ks, err := kernels.Select(*only)
	if err != nil {
		logf("%v", err)
		os.Exit(2)
	}
	st, err := kernels.SelectSteps(*steps)
	if err != nil {
		logf("%v", err)
		os.Exit(2)
	}
	repo, err := os.Getwd()
	if err != nil {
		logf("%v", err)
		os.Exit(2)
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		logf("run from the module's root (make test-kernels)")
		os.Exit(2)
	}
	o := kernels.Options{Repo: repo, Cache: *cache, Work: *work, Kernels: ks, Steps: st, Jobs: *jobs,
		Timeout: *timeout, Scale: *scale, Full: *full, Refresh: *refresh, Log: logf}
	if *verbose {
		o.Echo = os.Stdout
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("%v: stopping the VMs", s)
		kernels.KillAll()
		os.Exit(1)
	}()
	rep, err := kernels.RunMatrix(o)
	if err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	rep.Markdown(os.Stdout, st)
	if *results != "" {
		if err := rep.WriteFiles(*results, st); err != nil {
			logf("%v", err)
			os.Exit(1)
		}
	}
	if rep.Failed() {
		os.Exit(1)
	}
}
