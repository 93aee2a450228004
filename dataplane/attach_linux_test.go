package dataplane_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/testenv"
)

func seedCE(t *testing.T) dataplane.Config {
	r, err := mapt.ParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Derive(netip.MustParsePrefix("2001:db8:ce:11b::/64"))
	if err != nil {
		t.Fatal(err)
	}
	return dataplane.Config{Mode: dataplane.CE, Binding: b, DMR: netip.MustParsePrefix("64:ff9b::/96")}
}

// TestAttachModes attaches a CE translator in each mode on a veth pair,
// next to a foreign filter, sees traffic reach it, and detaches only ours.
// Auto is TCX where the kernel has it (6.6+) and clsact elsewhere; on a
// kernel without TCX, asking for TCX must fail as not supported and leave
// the hooks as they were.
func TestAttachModes(t *testing.T) {
	testenv.Require(t, "tc", "ping")
	tcx := dataplane.HaveTCX(t)
	for _, mode := range []dataplane.AttachMode{dataplane.AttachTCX, dataplane.AttachClsact, dataplane.AttachAuto} {
		name := string(mode)
		if mode == dataplane.AttachAuto {
			name = "auto"
		}
		t.Run(name, func(t *testing.T) {
			l := testenv.New(t)
			ce, peer := l.NS("ce"), l.NS("peer")
			l.Veth(ce, "wan", peer, "eth0")
			l.Veth(ce, "uplink", peer, "eth1")
			ce.Addr("wan", "2001:db8:6::11b/64")
			peer.Addr("eth0", "2001:db8:6::1/64")
			// A foreign program on the same hook: it must survive us.
			if err := ce.Do(func() error { return foreignFilter("wan") }); err != nil {
				t.Fatal(err)
			}
			var tr *dataplane.Translator
			var attachErr error
			err := ce.Do(func() error {
				var err error
				if tr, err = dataplane.Load(seedCE(t)); err != nil {
					return err
				}
				attachErr = tr.AttachCE("uplink", "wan", mode)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if mode == dataplane.AttachTCX && !tcx {
				if !errors.Is(attachErr, ebpf.ErrNotSupported) {
					t.Fatalf("attach tcx on a kernel without TCX: %v, want an error wrapping ebpf.ErrNotSupported", attachErr)
				}
				if msg := attachErr.Error(); !strings.Contains(msg, "TCX hooks (needs Linux 6.6+)") || !strings.Contains(msg, "clsact") {
					t.Fatalf("the error does not name the feature, its kernel and the way out: %v", attachErr)
				}
				if m := tr.AttachMode(); m != dataplane.AttachAuto {
					t.Fatalf("attach mode %q after a failed attach", m)
				}
				for _, hook := range [][]string{{"wan", "ingress"}, {"uplink", "egress"}} {
					out := ce.MustExec("tc", "filter", "show", "dev", hook[0], hook[1])
					if strings.Contains(out, "mapt-") {
						t.Fatalf("%s %s after a failed attach: %s", hook[0], hook[1], out)
					}
				}
				if out := ce.MustExec("tc", "filter", "show", "dev", "wan", "ingress"); !strings.Contains(out, "foreign") {
					t.Fatalf("the foreign filter is gone: %s", out)
				}
				return
			}
			if attachErr != nil {
				t.Fatal(attachErr)
			}
			want := mode
			if mode == dataplane.AttachAuto {
				want = dataplane.AttachClsact
				if tcx {
					want = dataplane.AttachTCX
				}
			}
			if tr.AttachMode() != want {
				t.Fatalf("mode = %q, want %q", tr.AttachMode(), want)
			}
			if want == dataplane.AttachClsact {
				out := ce.MustExec("tc", "filter", "show", "dev", "wan", "ingress")
				if !strings.Contains(out, "mapt-ce_ingress") || !strings.Contains(out, "foreign") {
					t.Fatalf("filters: %s", out)
				}
			}
			before, _ := tr.Counters()
			// IPv6 to the WAN's own address is not MAP-T: the program
			// counts it and passes it.
			peer.MustExec("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8:6::11b")
			after, _ := tr.Counters()
			if after["pass"] < before["pass"]+3 {
				t.Fatalf("pass counter %d -> %d: the program did not see the traffic", before["pass"], after["pass"])
			}
			if err := ce.Do(tr.Detach); err != nil {
				t.Fatal(err)
			}
			// The count to compare with is taken after the detach: the
			// WAN also receives the peer's neighbour discovery, which the
			// program counts as pass too, and on a slow CPU (mipsel under
			// TCG) one arrived between the ping and the detach.
			detached, _ := tr.Counters()
			peer.MustExec("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8:6::11b")
			if final, _ := tr.Counters(); final["pass"] != detached["pass"] {
				t.Fatalf("program still attached: pass %d -> %d", detached["pass"], final["pass"])
			}
			out := ce.MustExec("tc", "filter", "show", "dev", "wan", "ingress")
			if strings.Contains(out, "mapt-") || !strings.Contains(out, "foreign") {
				t.Fatalf("after detach: %s", out)
			}
		})
	}
}

// foreignFilter puts someone else's cls_bpf program (it lets everything
// through) on dev's ingress, at priority 1.
func foreignFilter(dev string) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()}, // TC_ACT_UNSPEC
		License:      "GPL",
	})
	if err != nil {
		return err
	}
	defer prog.Close()
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
	if err := netlink.QdiscAdd(q); err != nil {
		return err
	}
	return netlink.FilterAdd(&netlink.BpfFilter{
		FilterAttrs:  netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS, Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL},
		Fd:           prog.FD(),
		Name:         "foreign",
		DirectAction: true,
	})
}

// TestClsactReplacesItsOwn attaches twice in clsact mode, as a restarted
// agent does: one filter of ours, not two.
func TestClsactReplacesItsOwn(t *testing.T) {
	testenv.Require(t, "tc")
	l := testenv.New(t)
	ce, peer := l.NS("ce"), l.NS("peer")
	l.Veth(ce, "wan", peer, "eth0")
	l.Veth(ce, "uplink", peer, "eth1")
	err := ce.Do(func() error {
		for i := 0; i < 2; i++ {
			tr, err := dataplane.Load(seedCE(t))
			if err != nil {
				return err
			}
			if err := tr.AttachCE("uplink", "wan", dataplane.AttachClsact); err != nil {
				return err
			}
			// Neither Detach nor Close: the process "crashed" and its
			// filters stay; the next run replaces them.
			_ = tr
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"wan ingress", "uplink egress"} {
		out := ce.MustExec(append([]string{"tc", "filter", "show", "dev"}, strings.Fields(dev)...)...)
		if n := strings.Count(out, "mapt-"); n != 1 {
			t.Fatalf("%s: %d filters of ours:\n%s", dev, n, out)
		}
	}
}
