// Command ce-agent is the MAP-T CE (RFC 7599) for home routers: it learns
// its mapping rules and prefix through DHCPv6 (RFC 7598), derives its IPv4
// address and port set, programs NAT and attaches the translator.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mapt-go/mapt/internal/mapcli"
	"github.com/mapt-go/mapt/internal/version"
)

const usage = `usage: ce-agent COMMAND [flags]

commands:
  run       run the CE: zero-touch DHCPv6 S46 provisioning by default
            ce-agent run [--wan IF] [--state-dir DIR] [--uplink NAME] [--hook SCRIPT]
                         [--status-socket PATH] [--log-level LEVEL] [--release-on-stop]
                         [--leave-in-place] [--no-default-route]
                         [--domain FILE [--domain-name NAME] | --rule RULE ... --dmr PREFIX]
                         [--prefix PREFIX]
  status    show the running agent's lease, binding, counters and events
            ce-agent status [--json] [--status-socket PATH]
  derive    select the BMR for an end-user prefix and print the binding
            ce-agent derive --rule RULE [--rule RULE ...] --prefix PREFIX [--dmr PREFIX] [--json]
  version   print the version

RULE is IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr], e.g.
  2001:db8:ce::/51,192.0.2.0/24,13,a=0
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "derive":
		err = mapcli.Derive(args[1:], stdout, stderr)
	case "run":
		err = runAgent(args[1:], stderr)
	case "status":
		err = status(args[1:], stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, version.String("ce-agent"))
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = mapcli.UsageError{Err: fmt.Errorf("unknown command %q (try ce-agent help)", args[0])}
	}
	return exitCode(stderr, err)
}

func exitCode(stderr io.Writer, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "ce-agent: %v\n", err)
	if errors.As(err, new(mapcli.UsageError)) {
		return 2
	}
	return 1
}
