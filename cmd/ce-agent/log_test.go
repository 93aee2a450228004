package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogger(t *testing.T) {
	var out, errb bytes.Buffer
	log := newLogger(&out, &errb, slog.LevelInfo, false).With("iface", "wan")
	log.Debug("hidden")
	log.Info("bound", "prefix", "2001:db8:ce:11b::/64")
	log.Warn("reply from another server dropped")
	log.Error("apply failed", "err", "boom")
	if got := out.String(); got != "level=INFO msg=bound iface=wan prefix=2001:db8:ce:11b::/64\n" {
		t.Errorf("stdout %q: want the info line only, without a timestamp", got)
	}
	if got := errb.String(); got != "level=WARN msg=\"reply from another server dropped\" iface=wan\nlevel=ERROR msg=\"apply failed\" iface=wan err=boom\n" {
		t.Errorf("stderr %q: want warn and error, without timestamps", got)
	}
	out.Reset()
	newLogger(&out, &errb, slog.LevelDebug, true).Debug("shown")
	if !strings.HasPrefix(out.String(), "time=") || !strings.Contains(out.String(), "level=DEBUG msg=shown") {
		t.Errorf("with timestamps, debug: %q", out.String())
	}
}
