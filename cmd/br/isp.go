package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/internal/mapcli"
	"github.com/mapt-go/mapt/kea"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/relay"
)

// loadConfig reads --config, turning file errors into usage errors: the
// operator gave a bad file.
func loadConfig(path string) (*domainfile.File, error) {
	if path == "" {
		return nil, mapcli.UsageError{Err: errors.New("--config FILE is required")}
	}
	f, err := domainfile.Load(path)
	if err != nil {
		return nil, mapcli.UsageError{Err: err}
	}
	return f, nil
}

// check validates a domain file without touching the kernel.
func check(args []string, stdout, stderr io.Writer) error {
	fs := mapcli.NewFlags("check", stderr)
	path := fs.String("config", "", "domain file")
	if err := fs.ParseNone(args); err != nil {
		return err
	}
	f, err := loadConfig(*path)
	if err != nil {
		return err
	}
	for _, d := range f.Domains {
		fmt.Fprintf(stdout, "domain %s: dmr %s, %d rules\n", d.Name, d.DMR, len(d.Rules))
		if n := len(d.Kea.Reservations); n > 0 {
			fmt.Fprintf(stdout, "domain %s: %d kea reservations\n", d.Name, n)
		}
	}
	if a := f.BR.Anycast; a.Table != 0 {
		fmt.Fprintf(stdout, "anycast: table %d, drain %s, checked every %s", a.Table, a.Drain, a.CheckInterval)
		if len(a.RequireRoutes) > 0 {
			fmt.Fprintf(stdout, ", healthy only with routes to %v", a.RequireRoutes)
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "%s: ok\n", f.Path)
	return nil
}

// keaConfig prints the Kea DHCPv6 configuration for a domain.
func keaConfig(args []string, stdout, stderr io.Writer) error {
	fs := mapcli.NewFlags("kea-config", stderr)
	path := fs.String("config", "", "domain file")
	domain := fs.String("domain", "", "domain name (needed when the file has several)")
	ifname := fs.String("interface", "", "interface Kea listens on (default: the domain's kea.interface, else br.ipv6-interface)")
	leases := fs.String("lease-file", kea.DefaultLeaseFile, "Kea memfile lease database")
	fragment := fs.Bool("fragment", false, "print only the subnet-level pd-pools and option-data, to merge into an existing configuration")
	noZero := fs.Bool("exclude-psid-zero", false, "leave the prefixes whose PSID 0 would own the system ports out of the pool (psid-offset 0)")
	if err := fs.ParseNone(args); err != nil {
		return err
	}
	f, err := loadConfig(*path)
	if err != nil {
		return err
	}
	d, err := f.Domain(*domain)
	if err != nil {
		return mapcli.UsageError{Err: err}
	}
	opts := kea.Options{Interface: *ifname, LeaseFile: *leases, ExcludePSIDZero: *noZero}
	var out any
	var warnings []string
	if *fragment {
		out, warnings, err = kea.GenerateFragment(d, opts)
	} else {
		out, warnings, err = kea.Generate(f, d, opts)
	}
	if err != nil {
		return mapcli.UsageError{Err: err}
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "br: warning: %s\n", w)
	}
	_, err = stdout.Write(kea.JSON(out))
	return err
}

// lookupConfig adds --config to br lookup: the file's rules join --rule.
func lookupConfig(fs *flag.FlagSet) func() ([]mapt.Rule, error) {
	path := fs.String("config", "", "domain file whose rules to use")
	return func() ([]mapt.Rule, error) {
		if *path == "" {
			return nil, nil
		}
		f, err := loadConfig(*path)
		if err != nil {
			return nil, err
		}
		return f.Rules(), nil
	}
}

// runRelay is `br run`.
func runRelay(args []string, _, stderr io.Writer) error {
	fs := mapcli.NewFlags("run", stderr)
	path := fs.String("config", "", "domain file")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	attachMode := fs.String("attach-mode", "", "translator hooks: tcx or clsact (default: tcx where the kernel has it)")
	pinDir := fs.String("pin-dir", dataplane.DefaultPinRoot, "directory on a BPF filesystem where the translators are pinned, so that they keep forwarding while br is away and a restart adopts them (- for none)")
	leave := fs.Bool("leave-in-place", false, "on SIGTERM, leave the translators, local devices, routes and anycast announcements for a restart (SIGUSR2 does it whatever this says)")
	if err := fs.ParseNone(args); err != nil {
		return err
	}
	level, err := mapcli.ParseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	if _, err := loadConfig(*path); err != nil {
		return err
	}
	switch *attachMode {
	case "", "tcx", "clsact":
	default:
		return mapcli.UsageError{Err: fmt.Errorf("run: --attach-mode %q: want tcx or clsact", *attachMode)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return relay.Run(ctx, relay.Options{
		ConfigPath:   *path,
		Logger:       slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		AttachMode:   dataplane.AttachMode(*attachMode),
		PinRoot:      *pinDir,
		LeaveInPlace: *leave,
	})
}
