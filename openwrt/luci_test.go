package openwrt_test

import (
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestLuCIForm loads the LuCI protocol form (luci-proto-mapt) in node with
// stubs of LuCI's form, network and widgets modules (testdata/luci-harness.js):
// a syntax error fails there; the form must register protocol 'mapt' for
// package ce-agent, and every option it offers must be one the handler
// declares (TestProtoInitConfig), with the log levels the handler accepts.
func TestLuCIForm(t *testing.T) {
	testenv.RequireCommands(t, "node")
	out, err := exec.Command("node", "testdata/luci-harness.js", "luci-proto-mapt/htdocs/luci-static/resources/protocol/mapt.js").CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var form struct {
		Patterns []string `json:"patterns"`
		Protocol string   `json:"protocol"`
		Pkg      string   `json:"pkg"`
		Floating bool     `json:"floating"`
		Options  []struct {
			Name, Cls, Tab string
			Values         []string
		} `json:"options"`
	}
	if err := json.Unmarshal(out, &form); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if form.Protocol != "mapt" || form.Pkg != "ce-agent" || !form.Floating || !reflect.DeepEqual(form.Patterns, []string{"/^map-.+$/"}) {
		t.Errorf("form %+v", form)
	}
	r := runHandler(t, nil, nil, nil, "proto_mapt_init_config")
	declared := map[string]bool{}
	for _, c := range r.calls {
		if strings.HasPrefix(c.name, "proto_config_add_") && len(c.args) > 0 {
			name, _, _ := strings.Cut(c.args[0], ":")
			declared[name] = true
		}
	}
	seen := map[string]bool{}
	for _, o := range form.Options {
		if !declared[o.Name] {
			t.Errorf("the form offers %q, which the handler does not read", o.Name)
		}
		if seen[o.Name] {
			t.Errorf("option %q twice", o.Name)
		}
		seen[o.Name] = true
		if o.Name == "log_level" && !reflect.DeepEqual(o.Values, []string{"debug", "info", "warn", "error"}) {
			t.Errorf("log levels %q", o.Values)
		}
	}
	for _, must := range []string{"device", "rule", "dmr", "prefix", "clientid", "reqopts", "mtu", "lowest_ipv6_mtu", "zone"} {
		if !seen[must] {
			t.Errorf("the form lacks %s", must)
		}
	}
	mk := readFile(t, "luci-proto-mapt/Makefile")
	for _, line := range []string{"LUCI_DEPENDS:=+ce-agent\n", "include $(TOPDIR)/feeds/luci/luci.mk\n"} {
		if !strings.Contains(mk, line) {
			t.Errorf("luci-proto-mapt/Makefile lacks %q", line)
		}
	}
}
