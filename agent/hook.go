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

	"github.com/mapt-go/mapt/provision"
)

// hookTimeout bounds a hook script: a hung script must not stall the
// lease state machine.
const hookTimeout = 30 * time.Second

// hookInfo is what a hook run is told.
type hookInfo struct {
	event     string
	desired   *Desired         // the binding in force, nil when none
	prefix    netip.Prefix     // the delegated prefix, also without a binding
	lease     *provision.Lease // the DHCPv6 lease in force, nil when none (static)
	wan       string
	uplink    string
	uplinkMTU int
	now       time.Time
}

// remaining is the part of a lifetime left at now, in whole seconds, for
// netifd, which counts lifetimes from when it is told (proto.c).
func remaining(obtained time.Time, life time.Duration, now time.Time) int64 {
	left := obtained.Add(life).Sub(now)
	if left < 0 {
		return 0
	}
	return int64(left / time.Second)
}

// hookEnv is the environment a hook script sees, in the spirit of
// odhcp6c's script: the event, the DHCPv6 data the LAN needs (prefix and
// lifetimes, DNS, search list, NTP) and, when bound, the binding.
// The delegated prefix is there even without a binding, so that a hook
// handing the prefix to the LAN keeps doing so while IPv4 is down.
func hookEnv(h hookInfo) []string {
	env := []string{
		"MAPT_EVENT=" + h.event,
		"MAPT_WAN=" + h.wan,
		"MAPT_UPLINK=" + h.uplink,
	}
	if l := h.lease; l != nil {
		dns := make([]string, len(l.DNS))
		for i, a := range l.DNS {
			dns[i] = a.String()
		}
		env = append(env,
			fmt.Sprintf("MAPT_PREFIX_PREFERRED=%d", remaining(l.Obtained, l.Preferred, h.now)),
			fmt.Sprintf("MAPT_PREFIX_VALID=%d", remaining(l.Obtained, l.Valid, h.now)),
			"MAPT_DNS="+strings.Join(dns, " "),
			"MAPT_DNS_SEARCH="+strings.Join(l.Search, " "),
			"MAPT_NTP="+strings.Join(l.NTP, " "),
			"MAPT_SOFTWIRE="+l.Mechanism,
			"MAPT_S46_PRIORITY="+strings.Join(l.S46Priority, ","),
		)
		if l.ServerAddr.IsValid() {
			env = append(env, "MAPT_SERVER="+l.ServerAddr.String())
		}
	}
	d := h.desired
	if d == nil {
		if h.prefix.IsValid() {
			env = append(env, "MAPT_PREFIX="+h.prefix.String())
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
	env = append(env,
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
	if h.uplinkMTU > 0 {
		env = append(env, fmt.Sprintf("MAPT_UPLINK_MTU=%d", h.uplinkMTU))
	}
	return env
}

// runHook runs the script and logs its outcome; it never fails the caller.
func runHook(ctx context.Context, log *slog.Logger, script string, h hookInfo) {
	if script == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, h.event)
	cmd.Env = append(os.Environ(), hookEnv(h)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Warn("hook failed", "script", script, "event", h.event, "err", err, "output", strings.TrimSpace(string(out)))
		return
	}
	log.Info("hook ran", "script", script, "event", h.event)
}
