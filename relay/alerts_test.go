package relay

import (
	"os/exec"
	"testing"

	"github.com/mapt-go/mapt/testenv"
)

// TestAlertRules checks the shipped Prometheus alert rules with promtool
// and runs their unit tests (alerts/mapt-br.rules.test.yml: each alert
// fires on the series it is for, and not on the others). promtool comes
// with Debian's prometheus package (make deps).
func TestAlertRules(t *testing.T) {
	testenv.RequireCommands(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "mapt-br.rules.yml"}, {"test", "rules", "mapt-br.rules.test.yml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = "alerts"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
