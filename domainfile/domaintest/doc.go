// Package domaintest holds the domain-file fixtures that the tests of
// domainfile, kea, relay and lab share, as YAML text: the seed domain of
// Jool's MAP-T tutorial (the rule 2001:db8:ce::/51 -> 192.0.2.0/24, EA
// length 13, DMR 64:ff9b::/96) and the two 1:1 rules the lab serves
// instead (198.51.100.18/32 with PSID 0x34 at 2001:db8:12:3400::/56 and
// PSID 0x35 at 2001:db8:12:3500::/56). One source keeps the tests from
// drifting apart on the numbers they all check against.
//
// It builds strings and imports nothing of the module, so that
// domainfile's own tests can use it. It is for tests only (the module's
// import rules keep it out of production code).
package domaintest
