package testenv

import (
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
)

func TestLabPingAndCapture(t *testing.T) {
	l := New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Veth(a, "eth0", b, "eth0")
	a.Addr("eth0", "2001:db8:1::1/64")
	b.Addr("eth0", "2001:db8:1::2/64")
	a.Addr("eth0", "198.51.100.1/24")
	b.Addr("eth0", "198.51.100.2/24")
	c := b.Capture("eth0", "icmp")
	a.MustExec("ping", "-c", "2", "-i", "0.2", "-W", "2", "198.51.100.2")
	a.MustExec("ping", "-6", "-c", "1", "-W", "2", "2001:db8:1::2")
	pkts := c.Packets()
	requests := 0
	for _, p := range pkts {
		if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoRequest {
			requests++
		}
	}
	if requests != 2 {
		t.Fatalf("captured %d echo requests, want 2 (of %d packets)", requests, len(pkts))
	}
	var got []string
	err := a.Do(func() error {
		out, err := a.Exec("ip", "-br", "link")
		got = strings.Fields(out)
		return err
	})
	if err != nil || !strings.Contains(strings.Join(got, " "), "eth0") {
		t.Fatalf("Do/Exec: %v %v", got, err)
	}
	p := a.Start("sleep", "60")
	p.Stop()
	if !p.Exited() {
		t.Fatal("Stop did not end the process")
	}
}

// TestMissingCommands: a missing tool is named with the Debian package to
// install where the names differ, and one on PATH is not named.
func TestMissingCommands(t *testing.T) {
	if got := missingCommands([]string{"sh"}); len(got) != 0 {
		t.Errorf("sh is on PATH, missing %v", got)
	}
	t.Setenv("PATH", t.TempDir())
	got := strings.Join(missingCommands([]string{"ip", "cpio", "kea-dhcp6"}), ", ")
	if want := "ip (Debian package iproute2), cpio, kea-dhcp6 (Debian package kea-dhcp6-server)"; got != want {
		t.Errorf("missing %q, want %q", got, want)
	}
}
