package relay

import (
	"fmt"
	"log/slog"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/domainfile"
)

// One BR per set of devices: a second br on the same devices would chain
// a second translator behind the first, and its stop would remove the
// local devices and routes the first uses. The claim is per device, in
// the network namespace; our programs on the devices' hooks that a live
// process holds (CheckHooks) refuse a start too. Translators that no live
// process holds were left by a BR that was killed or stopped with
// --leave-in-place: this run adopts them.
func claimDevices(f *domainfile.File) (release func(), err error) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	devs := []string{f.BR.IPv6Interface}
	if f.BR.IPv4Interface != f.BR.IPv6Interface {
		devs = append(devs, f.BR.IPv4Interface)
	}
	for _, dev := range devs {
		r, err := dataplane.Claim("br-" + dev)
		if err != nil {
			release()
			return nil, fmt.Errorf("relay: another br runs on %s: %w", dev, err)
		}
		releases = append(releases, r)
		if err := dataplane.CheckHooks(dev); err != nil {
			release()
			return nil, fmt.Errorf("relay: another br runs on %s: %w", dev, err)
		}
	}
	return release, nil
}

// pinRoot prepares the directory the translators are pinned in and
// returns it, or "" to run unpinned (logged: they then stop with the BR).
func pinRoot(root string, log *slog.Logger) string {
	root, err := dataplane.PreparePinRoot(root)
	if err != nil {
		log.Warn("translators not pinned: they will stop with the br", "err", err)
		return ""
	}
	return root
}
