// Command br is the MAP-T Border Relay (RFC 7599 s8.3, s8.4).
package main

import (
	"io"
	"os"

	"github.com/mapt-go/mapt/internal/mapcli"
)

const usage = `usage: br COMMAND [flags]

commands:
  run         run the border relay: attach the translator, follow the file, serve
              /metrics and /healthz, and with br.anycast announce itself while healthy
              br run --config FILE [--log-level LEVEL] [--attach-mode tcx|clsact]
                     [--pin-dir DIR] [--leave-in-place]
              SIGTERM removes what it set up (--leave-in-place: keeps it for a
              restart, which adopts it); SIGUSR2 always keeps it; SIGHUP reloads
  lookup      map one address to the other side of the domain
              br lookup (--rule RULE ... | --config FILE) [--json] ADDRESS
              ADDRESS is IPv4:port, IPv4 (no sharing) or a CE's MAP IPv6 address
  check       validate a domain file without touching the kernel
              br check --config FILE
  kea-config  print the Kea 2.2 DHCPv6 configuration for a domain
              br kea-config --config FILE [--domain NAME] [--fragment]
                            [--interface IF] [--lease-file PATH] [--exclude-psid-zero]
  version     print the version

RULE is IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr], e.g.
  2001:db8:ce::/51,192.0.2.0/24,13,a=0
`

func main() {
	os.Exit(mapcli.Main("br", usage, map[string]mapcli.Command{
		"run": runRelay,
		"lookup": func(args []string, stdout, stderr io.Writer) error {
			return mapcli.Lookup(args, stdout, stderr, lookupConfig)
		},
		"check":      check,
		"kea-config": keaConfig,
	}, os.Args[1:], os.Stdout, os.Stderr))
}
