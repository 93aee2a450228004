package openwrt_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// call is one line the OpenWrt stubs in testdata/root log: a procd_*
// call, a log line, or a ubus/uci/sysctl invocation.
type call struct {
	name string
	args []string
}

// shellRun is the outcome of one script run under the stubs.
type shellRun struct {
	calls  []call
	err    error
	stderr string
}

// runShell runs argv with sh under the stub root: UCI files from uci
// (file name -> contents), the stubs first in PATH, extra environment
// variables from env ("K=V").
func runShell(t *testing.T, uci map[string]string, env []string, argv ...string) shellRun {
	t.Helper()
	root, err := filepath.Abs("testdata/root")
	if err != nil {
		t.Fatal(err)
	}
	cfg := t.TempDir()
	stubLog := filepath.Join(t.TempDir(), "calls")
	for name, body := range uci {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", argv...)
	cmd.Env = append([]string{
		"PATH=" + filepath.Join(root, "bin") + ":/usr/bin:/bin",
		"UCI_CONFIG_DIR=" + cfg,
		"IPKG_INSTROOT=" + root,
		"LC_ALL=C",
		"STUB_LOG=" + stubLog,
	}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r := shellRun{err: cmd.Run(), stderr: stderr.String()}
	// The stubs log to a file, not stdout: the scripts may redirect their
	// commands' output.
	calls, err := os.ReadFile(stubLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimRight(string(calls), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		r.calls = append(r.calls, call{name: f[0], args: f[1:]})
	}
	return r
}

// runInit runs one function of the init script (start_service,
// service_triggers) through the stub rc.common.
func runInit(t *testing.T, uci map[string]string, fn string) shellRun {
	t.Helper()
	script, err := filepath.Abs("ce-agent/files/ce-agent.init")
	if err != nil {
		t.Fatal(err)
	}
	return runShell(t, uci, nil, "testdata/root/rc.common", script, fn)
}

// instance is what procd would get for one service instance.
type instance struct {
	argv   []string
	params map[string][]string // set_param other than command
}

// instances folds the procd_* calls of a run into instances.
func (r shellRun) instances(t *testing.T) []instance {
	t.Helper()
	var out []instance
	var cur *instance
	for _, c := range r.calls {
		switch c.name {
		case "open_instance":
			if cur != nil {
				t.Fatal("procd_open_instance inside an open instance")
			}
			cur = &instance{params: map[string][]string{}}
		case "close_instance":
			if cur == nil {
				t.Fatal("procd_close_instance without procd_open_instance")
			}
			out = append(out, *cur)
			cur = nil
		case "set_param", "append_param":
			if cur == nil {
				t.Fatalf("%s %v outside an instance", c.name, c.args)
			}
			if len(c.args) == 0 {
				t.Fatalf("%s without a parameter name", c.name)
			}
			p, v := c.args[0], c.args[1:]
			switch {
			case p == "command" && c.name == "set_param":
				cur.argv = append([]string(nil), v...)
			case p == "command":
				cur.argv = append(cur.argv, v...)
			case c.name == "set_param":
				cur.params[p] = v
			default:
				cur.params[p] = append(cur.params[p], v...)
			}
		}
	}
	if cur != nil {
		t.Fatal("instance left open")
	}
	return out
}

// logs returns the logger lines of a run, "PRIORITY MESSAGE" each.
func (r shellRun) logs() []string {
	var out []string
	for _, c := range r.calls {
		if c.name != "log" {
			continue
		}
		// logger -t TAG -p PRIO MSG
		if len(c.args) == 5 {
			out = append(out, c.args[3]+" "+c.args[4])
		} else {
			out = append(out, strings.Join(c.args, " "))
		}
	}
	return out
}

// named returns the calls with the given name.
func (r shellRun) named(name string) [][]string {
	var out [][]string
	for _, c := range r.calls {
		if c.name == name {
			out = append(out, c.args)
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
