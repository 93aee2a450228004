// Package importrules holds the tests that keep the repository's own
// descriptions of itself true. It has no code of its own.
//
//   - ARCHITECTURE.md's package map: what each package of the module may
//     depend on, checked with go list -deps (TestOnly and the others in
//     rules_test.go).
//   - README.md's Layout table: every package of the module lies under a
//     path it names, and every path it names is in the tree (TestLayout).
//   - The documents' references: relative Markdown links resolve, and
//     nothing cites the brief the project started from, which is not in
//     the repository (TestDocReferences).
package importrules
