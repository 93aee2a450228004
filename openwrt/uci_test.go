package openwrt_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A small model of UCI for the harness: enough of the file format
// (config / option / list lines, named and anonymous sections) and of the
// uci command's set / add_list / delete to apply what a script asked of
// the uci stub, so that a test can check the configuration it leaves and
// hand it to the next script, as on a router.

type uciSection struct {
	Name, Type string
	Options    map[string][]string // a single value for an option, several for a list
	Lists      map[string]bool
}

type uciFile struct{ Sections []*uciSection }

// uciState is /etc/config: file name -> file.
type uciState map[string]*uciFile

func parseUCI(t *testing.T, text string) *uciFile {
	t.Helper()
	f := &uciFile{}
	var cur *uciSection
	anon := 0
	for _, line := range strings.Split(text, "\n") {
		fields := uciFields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "config":
			name := ""
			if len(fields) > 2 {
				name = fields[2]
			} else {
				anon++
				name = fmt.Sprintf("cfg%d", anon)
			}
			cur = &uciSection{Name: name, Type: fields[1], Options: map[string][]string{}, Lists: map[string]bool{}}
			f.Sections = append(f.Sections, cur)
		case "option", "list":
			if cur == nil || len(fields) < 3 {
				t.Fatalf("uci: bad line %q", line)
			}
			if fields[0] == "list" {
				cur.Lists[fields[1]] = true
				cur.Options[fields[1]] = append(cur.Options[fields[1]], fields[2])
			} else {
				cur.Options[fields[1]] = []string{fields[2]}
			}
		default:
			t.Fatalf("uci: bad line %q", line)
		}
	}
	return f
}

// uciFields splits a UCI line, removing single or double quotes.
func uciFields(line string) []string {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return nil
	}
	var out []string
	for line != "" {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			break
		}
		if q := line[0]; q == '\'' || q == '"' {
			end := strings.IndexByte(line[1:], q)
			if end < 0 {
				out = append(out, line[1:])
				break
			}
			out = append(out, line[1:end+1])
			line = line[end+2:]
			continue
		}
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			out = append(out, line)
			break
		}
		out = append(out, line[:end])
		line = line[end:]
	}
	return out
}

func (f *uciFile) String() string {
	var b strings.Builder
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, "cfg") {
			fmt.Fprintf(&b, "\nconfig %s\n", s.Type)
		} else {
			fmt.Fprintf(&b, "\nconfig %s '%s'\n", s.Type, s.Name)
		}
		keys := make([]string, 0, len(s.Options))
		for k := range s.Options {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			for _, v := range s.Options[k] {
				kind := "option"
				if s.Lists[k] {
					kind = "list"
				}
				fmt.Fprintf(&b, "\t%s %s '%s'\n", kind, k, v)
			}
		}
	}
	return b.String()
}

func (f *uciFile) section(name string) *uciSection {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// get returns an option ("" when absent).
func (st uciState) get(file, section, option string) string {
	if f := st[file]; f != nil {
		if s := f.section(section); s != nil && len(s.Options[option]) > 0 {
			return strings.Join(s.Options[option], " ")
		}
	}
	return ""
}

// texts returns the state as file contents, for runShell.
func (st uciState) texts() map[string]string {
	out := map[string]string{}
	for name, f := range st {
		out[name] = f.String()
	}
	return out
}

func newUCI(t *testing.T, files map[string]string) uciState {
	t.Helper()
	st := uciState{}
	for name, text := range files {
		st[name] = parseUCI(t, text)
	}
	return st
}

// apply carries out the uci invocations a script made (the uci and
// uci-batch lines of the stub's log, in order).
func (st uciState) apply(t *testing.T, r shellRun) {
	t.Helper()
	for _, c := range r.calls {
		var args []string
		switch c.name {
		case "uci":
			args = c.args
		case "uci-batch":
			args = uciFields(strings.Join(c.args, "\t"))
		default:
			continue
		}
		args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "-q" })
		if len(args) == 0 || args[0] == "batch" || args[0] == "commit" {
			continue
		}
		if len(args) < 2 {
			t.Fatalf("uci %q", args)
		}
		st.do(t, args[0], args[1])
	}
}

func (st uciState) do(t *testing.T, op, arg string) {
	t.Helper()
	path, value, hasValue := strings.Cut(arg, "=")
	value = strings.Trim(value, `'"`)
	parts := strings.SplitN(path, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("uci %s %s: bad path", op, arg)
	}
	f := st[parts[0]]
	if f == nil {
		f = &uciFile{}
		st[parts[0]] = f
	}
	s := f.section(parts[1])
	switch {
	case op == "set" && len(parts) == 2 && hasValue:
		if s == nil {
			f.Sections = append(f.Sections, &uciSection{Name: parts[1], Type: value, Options: map[string][]string{}, Lists: map[string]bool{}})
		} else {
			s.Type = value
		}
	case op == "set" && len(parts) == 3 && hasValue:
		if s == nil {
			t.Fatalf("uci set %s: no section %s", arg, parts[1])
		}
		s.Options[parts[2]] = []string{value}
		delete(s.Lists, parts[2])
	case op == "add_list" && len(parts) == 3 && hasValue:
		if s == nil {
			t.Fatalf("uci add_list %s: no section %s", arg, parts[1])
		}
		s.Options[parts[2]] = append(s.Options[parts[2]], value)
		s.Lists[parts[2]] = true
	case op == "delete" && len(parts) == 3:
		if s != nil {
			delete(s.Options, parts[2])
			delete(s.Lists, parts[2])
		}
	case op == "delete" && len(parts) == 2:
		f.Sections = slices.DeleteFunc(f.Sections, func(x *uciSection) bool { return x.Name == parts[1] })
	default:
		t.Fatalf("uci %s %s: not modelled", op, arg)
	}
}
