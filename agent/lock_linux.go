package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/dataplane"
)

// One agent per WAN: a second one would attach a second translator, take
// over the status socket, and when either stopped remove the uplink and
// the nft table from under the other. Before it touches anything, an
// agent makes sure that no live agent uses its state directory (a lock
// file holding the PID), its WAN (dataplane.Claim, and our programs on
// the WAN's hooks held by a live process: dataplane.CheckHooks) or its
// status socket (something answers on it). A killed agent holds none of
// these: the lock and the claim go with the process, and the translator
// it pinned is adopted.

// lockStateDir takes <dir>/lock (flock) and writes our PID in it. The
// file stays after we stop: removing it would let a third agent lock a
// file that a second one is about to open.
func lockStateDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: state directory lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := io.ReadAll(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, fmt.Errorf("agent: another agent runs: %w", dataplane.InUse("state directory "+dir, pid))
		}
		return nil, fmt.Errorf("agent: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// claimWAN makes sure that no other live agent runs on wan or serves
// the status socket.
func claimWAN(wan, statusSocket string) (release func(), err error) {
	release, err = dataplane.Claim("ce-" + wan)
	if err != nil {
		return nil, fmt.Errorf("agent: another agent runs on WAN %s: %w", wan, err)
	}
	if err := dataplane.CheckHooks(wan); err != nil {
		release()
		return nil, fmt.Errorf("agent: another agent runs on WAN %s: %w", wan, err)
	}
	if statusSocket != "" {
		if fi, err := os.Lstat(statusSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if pid, err := dataplane.PeerPID("unix", statusSocket); err == nil {
				release()
				return nil, fmt.Errorf("agent: another agent serves the status socket: %w", dataplane.InUse(statusSocket, pid))
			}
		}
	}
	return release, nil
}
