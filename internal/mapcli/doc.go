// Package mapcli implements the operator-facing mapping commands shared by
// ce-agent and br: `ce-agent derive` (RFC 7597 s5.2: BMR selection and CE
// binding) and `br lookup` (RFC 7599 s8.3/s8.4: the BR's view of one
// address). Their text and JSON output is a stable interface for scripts.
package mapcli
