// Package lab brings up the whole system the way a user first meets it:
// the network of Jool's MAP-T tutorial (shared/seed/run-mapt.md) in network
// namespaces, with Kea as the ISP's DHCPv6 server (configured by
// `br kea-config`, with its run_script hook routing each delegated prefix
// to its CE), our `br`, two `ce-agent`s with no MAP configuration at all,
// and a web server. `make demo` and the end-to-end tests use it.
package lab
