package dataplane

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/mapt-go/mapt/testenv"
)

// hookProgs lists the IDs of the programs on a device's hook, TCX and
// cls_bpf together, and the IDs of the TCX links.
func hookProgs(t *testing.T, dev string, ingress bool) (progs []ebpf.ProgramID, links []link.ID) {
	t.Helper()
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	at := ebpf.AttachTCXEgress
	if ingress {
		at = ebpf.AttachTCXIngress
	}
	if q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at}); err == nil {
		for _, p := range q.Programs {
			progs = append(progs, p.ID)
			if id, ok := p.LinkID(); ok {
				links = append(links, id)
			}
		}
	}
	for _, f := range clsFilters(t, ifc.Index, ingress) {
		progs = append(progs, ebpf.ProgramID(f))
	}
	return progs, links
}

// pinState is what the test compares across restarts: the programs and
// links on the CE's two hooks.
type hookState struct {
	wanProgs, upProgs []ebpf.ProgramID
	wanLinks, upLinks []link.ID
}

func ceHooks(t *testing.T, ns *testenv.NS) hookState {
	t.Helper()
	var s hookState
	if err := ns.Do(func() error {
		s.wanProgs, s.wanLinks = hookProgs(t, "wan", true)
		s.upProgs, s.upLinks = hookProgs(t, "uplink", false)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func id(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	i, err := progID(p)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestPinAdopt runs a CE translator pinned, leaves it in place (what a
// killed process leaves) and loads it again, in both attach modes:
//   - the same programs are kept, with their links and maps, and a rule
//     change on the way is applied to the adopted maps (stale rules go);
//   - a device that was recreated (new ifindex) gets a new link;
//   - another version of the programs (programVariant) replaces the
//     pinned ones on the same links (TCX: BPF_LINK_UPDATE, the link IDs
//     stay) or in the same filter (clsact);
//   - Close removes the hooks and every pin.
func TestPinAdopt(t *testing.T) {
	testenv.Require(t, "tc")
	modes := []AttachMode{AttachClsact}
	if HaveTCX(t) {
		modes = append(modes, AttachTCX)
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			// A pin root of ours below the filesystem (as /sys/fs/bpf/mapt):
			// the last Close removes it too.
			root := filepath.Join(testenv.BPFFS(t), "mapt")
			dir := filepath.Join(root, "ce-wan")
			l := testenv.New(t)
			ce, peer := l.NS("ce"), l.NS("peer")
			l.Veth(ce, "wan", peer, "eth0")
			l.Veth(ce, "uplink", peer, "eth1")
			cfg := Config{Mode: CE, Binding: ceBinding, DMR: dmr, FMRs: allRules}

			start := func(cfg Config, want Adoption) *Translator {
				t.Helper()
				var tr *Translator
				if err := ce.Do(func() error {
					var err error
					if tr, err = LoadPinned(cfg, dir); err != nil {
						return err
					}
					return tr.AttachCE("uplink", "wan", mode)
				}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tr.Close() })
				if got, why := tr.Adoption(); got != want {
					t.Fatalf("adoption %q (%s), want %q", got, why, want)
				}
				if tr.AttachMode() != mode {
					t.Fatalf("attach mode %q, want %q", tr.AttachMode(), mode)
				}
				return tr
			}
			one := func(s hookState, tr *Translator) {
				t.Helper()
				if !slices.Equal(s.wanProgs, []ebpf.ProgramID{id(t, tr.Prog6to4())}) || !slices.Equal(s.upProgs, []ebpf.ProgramID{id(t, tr.Prog4to6())}) {
					t.Fatalf("hooks %+v, want only ce_ingress %d and ce_egress %d", s, id(t, tr.Prog6to4()), id(t, tr.Prog4to6()))
				}
			}

			tr := start(cfg, AdoptNew)
			first := ceHooks(t, ce)
			one(first, tr)
			for _, f := range []string{"map_config", "map_rules_v6", "prog_ce_ingress", "prog_xlat_err4to6"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Fatalf("pin %s: %v", f, err)
				}
			}
			if err := tr.LeaveInPlace(); err != nil {
				t.Fatal(err)
			}
			if left := ceHooks(t, ce); !slices.Equal(left.wanProgs, first.wanProgs) || !slices.Equal(left.upProgs, first.upProgs) {
				t.Fatalf("after LeaveInPlace the hooks hold %+v, want %+v", left, first)
			}

			// Same programs, one rule less: kept, and the rule goes.
			less := cfg
			less.FMRs = allRules[:2]
			tr = start(less, AdoptKept)
			kept := ceHooks(t, ce)
			one(kept, tr)
			if !slices.Equal(kept.wanProgs, first.wanProgs) || !slices.Equal(kept.wanLinks, first.wanLinks) || !slices.Equal(kept.upLinks, first.upLinks) {
				t.Fatalf("kept: hooks %+v, were %+v", kept, first)
			}
			var n int
			var k ceV6ExactKey
			for it := tr.coll.Maps["rules_v6x"].Iterate(); it.Next(&k, new(ceRule)); {
				n++
			}
			if n != 0 {
				t.Fatalf("rules_v6x holds %d rules after the 1:1 rules were dropped", n)
			}
			if c := tr.Config(); c.IPv6Side.Ifindex == 0 || c.IPv4Side.Ifindex == 0 {
				t.Fatalf("config after attach: %+v", c)
			}
			if err := tr.LeaveInPlace(); err != nil {
				t.Fatal(err)
			}

			// The uplink comes back as a new device: a new link there.
			ce.MustExec("ip", "link", "del", "uplink")
			l.Veth(ce, "uplink", peer, "eth1")
			tr = start(less, AdoptKept)
			moved := ceHooks(t, ce)
			one(moved, tr)
			if mode == AttachTCX && (slices.Equal(moved.upLinks, kept.upLinks) || !slices.Equal(moved.wanLinks, kept.wanLinks)) {
				t.Fatalf("after the uplink was recreated: links %+v, were %+v", moved, kept)
			}
			if err := tr.LeaveInPlace(); err != nil {
				t.Fatal(err)
			}

			// Another version of the programs: replaced on the same hooks.
			programVariant = "test"
			t.Cleanup(func() { programVariant = "" })
			tr = start(cfg, AdoptReplaced)
			_, why := tr.Adoption()
			if !strings.Contains(why, "another version") {
				t.Fatalf("replaced because %q", why)
			}
			upgraded := ceHooks(t, ce)
			one(upgraded, tr)
			if slices.Equal(upgraded.wanProgs, moved.wanProgs) {
				t.Fatal("the programs on the hooks did not change")
			}
			if mode == AttachTCX && (!slices.Equal(upgraded.wanLinks, moved.wanLinks) || !slices.Equal(upgraded.upLinks, moved.upLinks)) {
				t.Fatalf("upgrade: links %+v, were %+v: want the same links, updated", upgraded, moved)
			}
			var pinned *ebpf.Program
			pinned, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog_ce_ingress"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if id(t, pinned) != id(t, tr.Prog6to4()) {
				t.Fatalf("pinned ce_ingress %d, running %d", id(t, pinned), id(t, tr.Prog6to4()))
			}
			pinned.Close()

			if err := ce.Do(tr.Close); err != nil {
				t.Fatal(err)
			}
			if gone := ceHooks(t, ce); len(gone.wanProgs)+len(gone.upProgs) != 0 {
				t.Fatalf("after Close the hooks hold %+v", gone)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(dir)
				t.Fatalf("pin directory left after Close: %v %v", err, entries)
			}
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Fatalf("empty pin root left after Close: %v", err)
			}
		})
	}
}

// TestPinNames: dots (refused by the BPF filesystem) are escaped, and
// outside the initial network namespace the name says which one.
func TestPinNames(t *testing.T) {
	testenv.Require(t)
	if got := CEPinName("eth0.100"); got != "ce-eth0%2e100" {
		t.Fatalf("CEPinName(eth0.100) = %q", got)
	}
	if got := BRPinName("eth0", 1); got != "br-eth0-1" {
		t.Fatalf("BRPinName = %q", got)
	}
	ns := testenv.New(t).NS("pin")
	var got string
	ns.Do(func() error { got = CEPinName("wan"); return nil })
	if !strings.HasPrefix(got, "ce-wan@net") {
		t.Fatalf("CEPinName in a namespace = %q", got)
	}
}

// clsFilters returns the program IDs of our cls_bpf filters on a hook.
func clsFilters(t *testing.T, ifindex int, ingress bool) []uint32 {
	t.Helper()
	parent := uint32(netlink.HANDLE_MIN_EGRESS)
	if ingress {
		parent = netlink.HANDLE_MIN_INGRESS
	}
	fs, err := netlink.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, parent)
	if err != nil {
		return nil // no clsact qdisc
	}
	var ids []uint32
	for _, f := range fs {
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "mapt-") {
			ids = append(ids, uint32(bf.Id))
		}
	}
	return ids
}
