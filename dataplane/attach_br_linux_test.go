package dataplane

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mapt-go/mapt/testenv"
)

// TestAttachBRDetach attaches the three BR programs in each mode and checks
// that Close leaves every hook as it found it. On a kernel without TCX,
// the TCX hooks are not queried (the kernel has none to ask), and asking
// for TCX must fail as not supported with nothing attached.
func TestAttachBRDetach(t *testing.T) {
	testenv.Require(t, "tc")
	tcx := HaveTCX(t)
	for _, mode := range []AttachMode{AttachTCX, AttachClsact} {
		t.Run(string(mode), func(t *testing.T) {
			l := testenv.New(t)
			br, peer := l.NS("br"), l.NS("peer")
			l.Veth(br, "v6", peer, "a")
			l.Veth(br, "v4", peer, "b")
			br.MustExec("ip", "tuntap", "add", "dev", "brtun0", "mode", "tun")
			br.MustExec("ip", "link", "set", "dev", "brtun0", "up")

			// hooks counts our programs on each hook.
			hooks := func() map[string]int {
				n := map[string]int{}
				err := br.Do(func() error {
					for _, h := range []struct {
						dev string
						at  ebpf.AttachType
						tc  string
					}{{"v6", ebpf.AttachTCXIngress, "ingress"}, {"v4", ebpf.AttachTCXIngress, "ingress"}, {"brtun0", ebpf.AttachTCXEgress, "egress"}} {
						if tcx {
							ifc, err := net.InterfaceByName(h.dev)
							if err != nil {
								return err
							}
							q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: h.at})
							if err != nil {
								return err
							}
							n[h.dev+" tcx"] = len(q.Programs)
						}
						out, _ := br.Exec("tc", "filter", "show", "dev", h.dev, h.tc)
						n[h.dev+" cls_bpf"] = strings.Count(out, "mapt-")
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			var tr *Translator
			var attachErr error
			err := br.Do(func() error {
				var err error
				if tr, err = Load(brConfig()); err != nil {
					return err
				}
				attachErr = tr.AttachBR("v6", "v4", "brtun0", mode)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if mode == AttachTCX && !tcx {
				if !errors.Is(attachErr, ebpf.ErrNotSupported) {
					t.Fatalf("attach tcx on a kernel without TCX: %v, want an error wrapping ebpf.ErrNotSupported", attachErr)
				}
				for k, v := range hooks() {
					if v != 0 {
						t.Errorf("after a failed attach: %s has %d programs", k, v)
					}
				}
				return
			}
			if attachErr != nil {
				t.Fatal(attachErr)
			}
			if tr.AttachMode() != mode {
				t.Fatalf("attach mode %q, want %q", tr.AttachMode(), mode)
			}
			kind := " tcx"
			if mode == AttachClsact {
				kind = " cls_bpf"
			}
			got := hooks()
			for _, dev := range []string{"v6", "v4", "brtun0"} {
				if got[dev+kind] != 1 {
					t.Errorf("%s: %d programs of ours attached, want 1 (%v)", dev, got[dev+kind], got)
				}
			}
			if c := tr.Config(); c.IPv6Side.Ifindex == 0 || c.IPv4Side.Ifindex == 0 || c.Local.Ifindex == 0 || !c.Local.L3 {
				t.Errorf("config after attach: %+v", c)
			}
			if err := br.Do(tr.Close); err != nil {
				t.Fatal(err)
			}
			for k, v := range hooks() {
				if v != 0 {
					t.Errorf("after Close: %s has %d programs", k, v)
				}
			}
			if out := br.MustExec("tc", "qdisc", "show", "dev", "v6"); strings.Contains(out, "clsact") {
				t.Errorf("clsact qdisc we created is still there: %s", out)
			}
		})
	}
}
