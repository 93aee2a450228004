// Package testenv builds network-namespace labs for integration tests: the
// namespaces, veth links, bridges, processes and packet captures a test
// needs, all removed again when the test ends, on failure too.
//
// Every integration test of the project uses this package; none sets up
// namespaces by hand. Tests that need root, namespaces or BPF call Require:
// outside CI they skip when the machine cannot run them; with CI=true they
// fail instead, so a CI run never passes by skipping.
package testenv
