package mapcli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"

	"github.com/mapt-go/mapt/internal/version"
)

// Command is one subcommand of a binary.
type Command func(args []string, stdout, stderr io.Writer) error

// Main runs the subcommand args[0] of the binary name and returns the
// exit status: 0, 1 when the command failed, 2 for bad input (a
// UsageError). Errors are one line on stderr, prefixed with the name.
// Besides cmds, every binary has help and version.
func Main(name, usage string, cmds map[string]Command, args []string, stdout, stderr io.Writer) int {
	// The caller's map is left as it is; its own version wins.
	all := map[string]Command{"version": func(_ []string, stdout, _ io.Writer) error {
		_, err := fmt.Fprintln(stdout, version.String(name))
		return err
	}}
	maps.Copy(all, cmds)
	cmds = all
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, ok := cmds[args[0]]; {
	case ok:
		err = cmd(args[1:], stdout, stderr)
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(stdout, usage)
	default:
		names := make([]string, 0, len(cmds))
		for n := range cmds {
			names = append(names, n)
		}
		sort.Strings(names)
		err = usagef("unknown command %q (commands: %s; try %s help)", args[0], strings.Join(names, ", "), name)
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if errors.As(err, new(UsageError)) {
		return 2
	}
	return 1
}
