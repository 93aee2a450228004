// Package relay runs the MAP-T Border Relay (RFC 7599 s8.3, s8.4): it loads
// the domain file into the BR translator, follows the file live (fsnotify
// on its directory, since editors replace files by rename, and SIGHUP), and
// serves Prometheus metrics.
//
// A reload is all or nothing: a file that does not parse or validate, or
// that the translator refuses, leaves the running configuration in place
// and is logged with the file, line and field at fault. A valid file is
// swapped in through dataplane.Translator.Update, which inserts new rules
// before it removes stale ones, so traffic for unchanged rules never stops.
//
// Each DMR of the file gets its own translator (and local device for the
// BR's own ICMP errors); on TCX they chain on the same hooks, each passing
// what is not its own. A reload may change rules, not the set of DMRs.
package relay
