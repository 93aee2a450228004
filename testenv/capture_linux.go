package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Capture is a tcpdump capture running in a namespace.
type Capture struct {
	ns   *NS
	proc *Proc
	file string
}

// Capture starts tcpdump on dev with a BPF filter expression (may be
// empty) and returns once it is listening.
func (n *NS) Capture(dev, filter string) *Capture {
	n.lab.t.Helper()
	Require(n.lab.t, "tcpdump")
	f, err := os.CreateTemp(n.lab.dir, "cap-*.pcap")
	if err != nil {
		n.lab.t.Fatal(err)
	}
	f.Close()
	args := []string{"tcpdump", "-i", dev, "-n", "-U", "--immediate-mode", "-s", "256", "-w", f.Name()}
	if filter != "" {
		args = append(args, filter)
	}
	p := n.Start(args...)
	if !WaitFor(10*time.Second, func() bool { return strings.Contains(p.Output(), "listening on") || p.Exited() }) || p.Exited() {
		n.lab.t.Fatalf("testenv: tcpdump on %s:%s did not start: %s", n.Short, dev, p.Output())
	}
	return &Capture{ns: n, proc: p, file: filepath.Clean(f.Name())}
}

// Packets stops the capture and decodes what it saw. Decoding starts at the
// link layer of the capture (Ethernet, or raw IP for L3 devices).
func (c *Capture) Packets() []gopacket.Packet {
	t := c.ns.lab.t
	t.Helper()
	// Give the kernel a moment to hand over packets still in flight.
	time.Sleep(100 * time.Millisecond)
	c.proc.Stop()
	f, err := os.Open(c.file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("testenv: read capture: %v", err)
	}
	lt := r.LinkType()
	var out []gopacket.Packet
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		var dec gopacket.Decoder = lt
		if lt == layers.LinkTypeRaw || lt == layers.LinkTypeIPv4 || lt == layers.LinkTypeIPv6 {
			// L3 devices (TUN): the version nibble tells the family.
			dec = layers.LayerTypeIPv4
			if len(data) > 0 && data[0]>>4 == 6 {
				dec = layers.LayerTypeIPv6
			}
		}
		out = append(out, gopacket.NewPacket(data, dec, gopacket.Default))
	}
	return out
}
