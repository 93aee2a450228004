package dataplane

import (
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mapt-go/mapt/testenv"
)

// TestAttachBRDetach attaches the three BR programs in each mode and checks
// that Close leaves every hook as it found it.
func TestAttachBRDetach(t *testing.T) {
	testenv.Require(t, "tc")
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
						ifc, err := net.InterfaceByName(h.dev)
						if err != nil {
							return err
						}
						q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: h.at})
						if err != nil {
							return err
						}
						n[h.dev+" tcx"] = len(q.Programs)
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
			err := br.Do(func() error {
				var err error
				if tr, err = Load(brConfig()); err != nil {
					return err
				}
				if err := tr.AttachBR("v6", "v4", mode); err != nil {
					return err
				}
				return tr.AttachBRLocal("brtun0", mode)
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
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
			if c := tr.Config(); c.WANIfindex == 0 || c.UplinkIfindex == 0 || !c.UplinkL3 {
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
