package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/internal/mapcli"
	"github.com/mapt-go/mapt/mapt"
)

// runAgent is `ce-agent run`: zero-touch by default.
func runAgent(args []string, _, stderr io.Writer) error {
	fs := mapcli.NewFlags("run", stderr)
	var cfg agent.Config
	fs.StringVar(&cfg.WAN, "wan", "", "WAN interface (default: the one holding the IPv6 default route, or the only one with carrier)")
	fs.StringVar(&cfg.StateDir, "state-dir", agent.DefaultStateDir, "where the lease and the DHCPv6 identity are kept")
	fs.StringVar(&cfg.Uplink, "uplink", agent.DefaultUplink, "name of the IPv4 uplink device the agent creates")
	fs.StringVar(&cfg.Hook, "hook", "", "script run on every change, with the binding in MAPT_* environment variables")
	fs.StringVar(&cfg.StatusSocket, "status-socket", agent.DefaultStatusSocket, "unix socket for ce-agent status (- for none)")
	fs.BoolVar(&cfg.ReleaseOnStop, "release-on-stop", false, "send DHCPv6 Release when stopped")
	fs.BoolVar(&cfg.LeaveInPlace, "leave-in-place", false, "keep the kernel state when stopped, for a restart")
	fs.BoolVar(&cfg.NoDefaultRoute, "no-default-route", false, "do not install the IPv4 default route through the uplink")
	fs.StringVar(&cfg.AttachMode, "attach-mode", "", "translator hooks: tcx or clsact (default: tcx where the kernel has it)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	domainFile := fs.String("domain", "", "static mode: domain file (the format br reads) instead of DHCPv6 S46 options")
	domainName := fs.String("domain-name", "", "static mode: which domain of --domain (when it has several)")
	var rules mapcli.RuleFlags
	fs.Var(&rules, "rule", "static mode: mapping rule IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr] (repeatable; needs --dmr)")
	dmrFlag := fs.String("dmr", "", "static mode: the DMR (RFC 6052 prefix) for --rule")
	prefixFlag := fs.String("prefix", "", "static mode: end-user prefix (default: the prefix delegated by DHCPv6)")
	if err := fs.ParseNone(args); err != nil {
		return err
	}
	level, err := mapcli.ParseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	prefix, err := mapcli.ParsePrefix6("--prefix", *prefixFlag)
	if err != nil {
		return err
	}
	switch {
	case *domainFile != "" && len(rules) > 0:
		return mapcli.UsageError{Err: errors.New("run: give --domain or --rule, not both")}
	case *domainFile != "":
		f, err := domainfile.Load(*domainFile)
		if err != nil {
			return mapcli.UsageError{Err: err}
		}
		d, err := f.Domain(*domainName)
		if err != nil {
			return mapcli.UsageError{Err: err}
		}
		cfg.Static = &agent.Static{Domain: d.Domain, Prefix: prefix}
	case len(rules) > 0:
		dmr, err := mapcli.ParsePrefix6("--dmr", *dmrFlag)
		if err != nil {
			return err
		}
		d := mapt.Domain{Name: "static", Rules: rules, DMR: dmr}
		if err := d.Validate(); err != nil {
			return mapcli.UsageError{Err: err}
		}
		cfg.Static = &agent.Static{Domain: d, Prefix: prefix}
	case prefix.IsValid() || *dmrFlag != "":
		return mapcli.UsageError{Err: errors.New("run: --prefix and --dmr need --domain or --rule")}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return agent.Run(ctx, cfg)
}

// status is `ce-agent status`.
func status(args []string, stdout, stderr io.Writer) error {
	fs := mapcli.NewFlags("status", stderr)
	socket := fs.String("status-socket", agent.DefaultStatusSocket, "the agent's status socket")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.ParseNone(args); err != nil {
		return err
	}
	s, err := agent.ReadStatus(*socket)
	if err != nil {
		return err
	}
	if *asJSON {
		return mapcli.WriteJSON(stdout, s)
	}
	s.WriteText(stdout)
	return nil
}
