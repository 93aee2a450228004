package testenv

// T is the part of testing.TB a lab needs. Tests pass their *testing.T;
// the lab demo (`make demo`), which runs outside `go test`, passes its
// own implementation.
type T interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	Logf(format string, args ...any)
	Skip(args ...any)
	TempDir() string
}
