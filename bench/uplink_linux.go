package bench

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/mapt-go/mapt/testenv"
)

// The nft+tun variant routes the LAN's IPv4 into a TUN device as MAP-T's
// CE does (ce-agent's uplink, agent/link_linux.go ensureUplink), and moves
// packets between it and the WAN with the same hooks and helpers as the
// translator, minus the translation: at the uplink's TC egress a program
// gives the bare IP packet an Ethernet header's room
// (bpf_skb_change_head, as ce_egress does for an L3 uplink) and sends it
// out of the WAN with bpf_redirect_neigh; at the WAN's TC ingress a
// program hands every IPv4 packet to the uplink's ingress
// (bpf_redirect with BPF_F_INGRESS, as ce_ingress does after 6->4). What
// the translator adds on top of this variant is its own work.

// skbProtocolOff is offsetof(struct __sk_buff, protocol): the EtherType
// in network byte order, loaded as a 32-bit word.
const skbProtocolOff = 16

// TC verdicts (TCX_PASS/TC_ACT_OK and TC_ACT_SHOT).
const (
	tcPass = 0
	tcDrop = 2
)

// bpfFIngress is BPF_F_INGRESS.
const bpfFIngress = 1

// etherTypeIPv4 is htons(ETH_P_IP) as the program sees skb->protocol.
var etherTypeIPv4 = int32(binary.NativeEndian.Uint16([]byte{0x08, 0x00}))

// uplinkEgress is the program at the uplink's TC egress: IPv4 leaves by
// the WAN (ifindex wan) through the neighbour subsystem, after the route
// lookup bpf_redirect_neigh does for its destination on the WAN.
func uplinkEgress(wan int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, skbProtocolOff, asm.Word),
		asm.JNE.Imm(asm.R2, etherTypeIPv4, "pass"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 14), // ETH_HLEN
		asm.Mov.Imm(asm.R3, 0),
		asm.FnSkbChangeHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R1, int32(wan)),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRedirectNeigh.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcPass).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcDrop).WithSymbol("drop"),
		asm.Return(),
	}
}

// wanIngress is the program at the WAN's TC ingress: every IPv4 packet
// goes to the uplink's (ifindex up) ingress.
func wanIngress(up int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, skbProtocolOff, asm.Word),
		asm.JNE.Imm(asm.R2, etherTypeIPv4, "pass"),
		asm.Mov.Imm(asm.R1, int32(up)),
		asm.Mov.Imm(asm.R2, bpfFIngress),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcPass).WithSymbol("pass"),
		asm.Return(),
	}
}

// attachUplink loads both programs and attaches them with TCX (what the
// translator gets on this kernel) in ns, egress of uplink and ingress of
// wan. They stay attached until t's cleanup closes the links (or the
// namespace goes).
func attachUplink(t testenv.T, ns *testenv.NS, uplink, wan string) {
	t.Helper()
	err := ns.Do(func() error {
		up, err := net.InterfaceByName(uplink)
		if err != nil {
			return err
		}
		w, err := net.InterfaceByName(wan)
		if err != nil {
			return err
		}
		for _, a := range []struct {
			name   string
			insns  asm.Instructions
			ifidx  int
			attach ebpf.AttachType
		}{
			{"bench_up_egress", uplinkEgress(w.Index), up.Index, ebpf.AttachTCXEgress},
			{"bench_wan_in", wanIngress(up.Index), w.Index, ebpf.AttachTCXIngress},
		} {
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: a.name, Type: ebpf.SchedCLS, Instructions: a.insns, License: "Dual BSD/GPL"})
			if err != nil {
				return fmt.Errorf("load %s: %w", a.name, err)
			}
			l, err := link.AttachTCX(link.TCXOptions{Interface: a.ifidx, Program: prog, Attach: a.attach})
			prog.Close() // the link holds it
			if err != nil {
				return fmt.Errorf("attach %s: %w", a.name, err)
			}
			t.Cleanup(func() { l.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bench: %s: uplink programs: %v", ns.Short, err)
	}
}
