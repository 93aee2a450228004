// Package importrules holds the test that keeps the package map of
// ARCHITECTURE.md ("Package map") true: what each package of the module
// may depend on, checked with go list -deps. It has no code of its own.
package importrules
