package main

import (
	"context"
	"io"
	"log/slog"
)

// splitHandler sends records below warn to one handler (stdout) and the
// rest to another (stderr). procd and netifd log a service's stdout and
// stderr lines apart (procd at LOG_INFO and LOG_ERR), so an OpenWrt
// operator's `logread -l 3` shows the agent's warnings and errors only.
type splitHandler struct {
	out, err slog.Handler
}

// newLogger returns the agent's logger: text records at level and above,
// info and debug to stdout, warn and error to stderr. Without timestamps
// the lines carry none: syslog (logd under procd or netifd) adds its own,
// and two on one line are noise.
func newLogger(stdout, stderr io.Writer, level slog.Leveler, timestamps bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if !timestamps {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(splitHandler{out: slog.NewTextHandler(stdout, opts), err: slog.NewTextHandler(stderr, opts)})
}

func (h splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.out.Enabled(ctx, l) || h.err.Enabled(ctx, l)
}

func (h splitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		return h.err.Handle(ctx, r)
	}
	return h.out.Handle(ctx, r)
}

func (h splitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return splitHandler{out: h.out.WithAttrs(attrs), err: h.err.WithAttrs(attrs)}
}

func (h splitHandler) WithGroup(name string) slog.Handler {
	return splitHandler{out: h.out.WithGroup(name), err: h.err.WithGroup(name)}
}
