// Package version reports the build's version, set at link time with
// -ldflags "-X github.com/mapt-go/mapt/internal/version.Version=v1.2.3",
// or taken from the VCS stamp the Go toolchain embeds.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version; empty in development builds.
var Version string

// String returns "NAME VERSION (GOOS/GOARCH, GOVERSION)".
func String(name string) string {
	return fmt.Sprintf("%s %s (%s/%s, %s)", name, Number(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// Number returns the version alone: Version, or "dev-" and the first 12
// digits of the VCS revision, or "dev".
func Number() string {
	if Version != "" {
		return Version
	}
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "dev-" + s.Value[:12]
			}
		}
	}
	return v
}
