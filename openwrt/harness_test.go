package openwrt_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// call is one line the OpenWrt stubs in testdata/root log: a netifd
// proto_* call, a log line, or a ubus/uci invocation.
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

// runHandler runs a function of the proto mapt handler (proto_mapt_setup,
// proto_mapt_teardown, ...) as netifd would, through
// testdata/root/netifd-handler.sh: cfg is the interface's configuration
// (option -> value; lists space-separated), passed as CFG_* variables.
func runHandler(t *testing.T, uci map[string]string, cfg map[string]string, env []string, fn string, args ...string) shellRun {
	t.Helper()
	handler, err := filepath.Abs("ce-agent/files/mapt.sh")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range cfg {
		env = append(env, "CFG_"+k+"="+v)
	}
	return runShell(t, uci, env, append([]string{"testdata/root/netifd-handler.sh", handler, fn}, args...)...)
}

// rootWith returns a copy of the stub root with more files in it
// (path inside the root -> contents).
func rootWith(t *testing.T, files map[string]string) string {
	t.Helper()
	src, err := filepath.Abs("testdata/root")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("copy the stub root: %v: %s", err, out)
	}
	for p, body := range files {
		full := filepath.Join(dst, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dst
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
