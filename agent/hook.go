package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// hookTimeout bounds a hook script: a hung script must not stall the
// lease state machine.
const hookTimeout = 30 * time.Second

// hookEnv is the environment a hook script sees, in the spirit of
// odhcp6c's script: the event and, when bound, the binding.
// The delegated prefix is there even without a binding, so that a hook
// handing the prefix to the LAN keeps doing so while IPv4 is down.
func hookEnv(event string, d *Desired, prefix netip.Prefix, wan, uplink string) []string {
	env := []string{
		"MAPT_EVENT=" + event,
		"MAPT_WAN=" + wan,
		"MAPT_UPLINK=" + uplink,
	}
	if d == nil {
		if prefix.IsValid() {
			env = append(env, "MAPT_PREFIX="+prefix.String())
		}
		return env
	}
	b := d.Binding
	ranges := make([]string, 0, b.PortSet.NumRanges())
	for _, r := range b.PortSet.Ranges() {
		ranges = append(ranges, r.String())
	}
	fmrs := make([]string, len(d.FMRs))
	for i, r := range d.FMRs {
		fmrs[i] = r.String()
	}
	return append(env,
		"MAPT_PREFIX="+b.EndUserPrefix.String(),
		"MAPT_BMR="+b.Rule.String(),
		"MAPT_IPV4="+b.IPv4.String(),
		"MAPT_IPV4_ADDRESS="+b.IPv4.Addr().String(),
		fmt.Sprintf("MAPT_PSID=%d", b.PSID()),
		fmt.Sprintf("MAPT_PSID_LEN=%d", b.PortSet.Len),
		fmt.Sprintf("MAPT_PSID_OFFSET=%d", b.PortSet.Offset),
		"MAPT_PORTS="+strings.Join(ranges, " "),
		fmt.Sprintf("MAPT_PORT_COUNT=%d", b.PortSet.Count()),
		"MAPT_MAP_ADDRESS="+b.MAPAddress.String(),
		"MAPT_DMR="+d.DMR.String(),
		"MAPT_FMRS="+strings.Join(fmrs, " "),
		"MAPT_DOMAIN="+d.Domain,
	)
}

// runHook runs the script and logs its outcome; it never fails the caller.
func runHook(ctx context.Context, log *slog.Logger, script, event string, d *Desired, prefix netip.Prefix, wan, uplink string) {
	if script == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, event)
	cmd.Env = append(os.Environ(), hookEnv(event, d, prefix, wan, uplink)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Warn("hook failed", "script", script, "event", event, "err", err, "output", strings.TrimSpace(string(out)))
		return
	}
	log.Info("hook ran", "script", script, "event", event)
}
