package provision

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mapt-go/mapt/testenv"
)

// BenchmarkKeaBind measures how long the client takes from its first
// Solicit to a Bound event against a local kea-dhcp6 with rapid commit,
// and reports it as a ratio to a bare Solicit/Reply round trip on the same
// link and server (the baseline, measured in the same run): the cost of
// the client beyond the DHCPv6 exchange itself.
func BenchmarkKeaBind(b *testing.B) {
	testenv.Require(b, "kea-dhcp6")
	cl := newLinkLab(b)
	cl.ce.MustExec("ip", "link", "set", "eth0", "address", ceMAC)
	startKea(b, cl, keaConfig{dir: cl.lab.Dir(), rule: "0, 13, 24, 192.0.2.0, 2001:db8:ce::/51", portParams: "0, 0/0", dmr: "64:ff9b::/96", rapidCommit: true})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	state := b.TempDir() // the lease is written (fsync) as in production
	var raw, client time.Duration
	for b.Loop() {
		if err := RemoveLease(state); err != nil {
			b.Fatal(err)
		}
		// Baseline: one hand-built rapid-commit Solicit, wait for the Reply.
		var c *Client
		if err := cl.ce.Do(func() (err error) {
			c, err = NewClient(ClientConfig{Interface: "eth0", StateDir: state, Logger: log})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		xid := dhcpv6.TransactionID{byte(raw), 0x42, 0x17}
		msg := buildMessage(dhcpv6.MessageTypeSolicit, xid, c.id, 0, nil, netip.Prefix{}, c.mc).ToBytes()
		buf := make([]byte, 2048)
		t0 := time.Now()
		if _, err := c.conn.WriteTo(msg, c.dst); err != nil {
			b.Fatal(err)
		}
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				b.Fatal("baseline: no reply: ", err)
			}
			if m, err := dhcpv6.MessageFromBytes(buf[:n]); err == nil && m.TransactionID == xid && m.MessageType == dhcpv6.MessageTypeReply {
				break
			}
		}
		raw += time.Since(t0)
		c.conn.SetReadDeadline(time.Time{})

		// The client: Run until Bound.
		c.t.solMaxDelay = 0 // the RFC's random 0-1 s start delay is not ours to measure
		ctx, cancel := context.WithCancel(context.Background())
		bound := make(chan struct{})
		done := make(chan struct{})
		t1 := time.Now()
		go func() {
			defer close(done)
			c.Run(ctx, func(e Event) {
				if e.Kind == Bound {
					close(bound)
				}
			})
		}()
		select {
		case <-bound:
		case <-time.After(5 * time.Second):
			b.Fatal("client: no Bound")
		}
		client += time.Since(t1)
		cancel()
		<-done
		c.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64(raw.Microseconds())/n, "µs-raw-exchange/op")
	b.ReportMetric(float64(client.Microseconds())/n, "µs-client-bind/op")
	b.ReportMetric(float64(client)/float64(raw), "client/raw")
}
