// Command ce-agent is the MAP-T CE (RFC 7599) for home routers: it learns
// its mapping rules and prefix through DHCPv6 (RFC 7598), derives its IPv4
// address and port set, programs NAT and attaches the translator.
package main

import (
	"os"

	"github.com/mapt-go/mapt/internal/mapcli"
)

const usage = `usage: ce-agent COMMAND [flags]

commands:
  run       run the CE: zero-touch DHCPv6 S46 provisioning by default
            ce-agent run [--wan IF] [--state-dir DIR] [--uplink NAME] [--hook SCRIPT]
                         [--status-socket PATH] [--log-level LEVEL] [--release-on-stop]
                         [--leave-in-place] [--no-default-route] [--log-time=false] [--uplink-mtu N]
                         [--lowest-ipv6-mtu N] [--icmp-rate N|off] [--attach-mode tcx|clsact] [--pin-dir DIR]
                         [--traffic-class copy|N] [--tos copy|N]
                         [--client-id HEX] [--iaid N] [--vendor-class HEX] [--user-class S] [--reqopt N]
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
	os.Exit(mapcli.Main("ce-agent", usage, map[string]mapcli.Command{
		"derive": mapcli.Derive,
		"run":    runAgent,
		"status": status,
	}, os.Args[1:], os.Stdout, os.Stderr))
}
