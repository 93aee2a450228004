// Package importrules holds the test that keeps the package map of
// ARCHITECTURE.md ("Package map") true: what each package of the module
// may depend on, checked with go list -deps; and README.md's Layout table
// true: every package of the module under a path it names, and every path
// it names in the tree; and the documents' references true: relative
// Markdown links resolve, and nothing cites the brief the project started
// from, which is not in the repository. It has no code of its own.
package importrules
