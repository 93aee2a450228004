package lab_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/agent"
	"github.com/mapt-go/mapt/domainfile/domaintest"
	"github.com/mapt-go/mapt/testenv"
)

// The anycast lab: two BRs announce the seed domain over BGP (BIRD, with
// BFD) to a router on each side, which spread the traffic over both (ECMP):
//
//	c1 - ce11b --+                  +-- br1 --+
//	             +-- r6 (acc) ------+         +-- r4 -- s (203.0.113.56-63)
//	c2 - ce774 --+   AS 64500       +-- br2 --+   AS 64501
//	                                 AS 64512
//
// r6 is the access network's router: it routes the CEs' prefixes and
// announces their aggregate 2001:db8:ce::/51 to the BRs; r4 is the IPv4
// side and announces a default route. Each BR runs `br run` with
// br.anycast and BIRD with relay/anycast/bird-br.conf; the routers run
// relay/anycast/bird-upstream.conf. The CEs are static (ce-agent run
// --rule --dmr --prefix).
const (
	anyRule     = "2001:db8:ce::/51,192.0.2.0/24,13,a=0"
	anyDMR      = "64:ff9b::/96"
	anyServers  = 8 // addresses of s: 16 (CE, server) pairs for the hash to spread
	anyInterval = 10 * time.Millisecond
)

type anyBR struct {
	name     string
	ns       *testenv.NS
	br, bird *testenv.Proc
	domain   string
	r6port   string // its port on r6
}

type anycastLab struct {
	t       *testing.T
	lab     *testenv.Lab
	bin     string
	dir     string
	r6, r4  *testenv.NS
	s       *testenv.NS
	brs     []*anyBR
	clients []*testenv.NS
	flows   []*flow
	stop    chan struct{}
	wg      sync.WaitGroup
}

func serverAddr(i int) string { return fmt.Sprintf("203.0.113.%d", 56+i) }

func birdConf(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "relay", "anycast", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newAnycastLab(t *testing.T) *anycastLab {
	testenv.Require(t, "ip", "nft", "bird", "birdc")
	l := testenv.New(t)
	a := &anycastLab{t: t, lab: l, dir: l.Dir(), stop: make(chan struct{})}
	a.bin = testenv.BuildAgentAndBR(t)
	a.r6, a.r4, a.s = l.NS("r6"), l.NS("r4"), l.NS("s")
	for _, r := range []*testenv.NS{a.r6, a.r4} {
		r.Forwarding()
		// L3 hashing (the default, set to say so): every fragment of a
		// datagram has the addresses (and, in IPv6, the flow label and
		// the next header, 44) of the first, so all take one BR.
		r.Sysctl("net.ipv4.fib_multipath_hash_policy", "0")
		r.Sysctl("net.ipv6.fib_multipath_hash_policy", "0")
		r.Sysctl("net.ipv6.conf.all.keep_addr_on_down", "1")
	}
	// The IPv4 side: s has anyServers addresses behind r4.
	l.Veth(a.r4, "s", a.s, "eth0")
	a.r4.Addr("s", "203.0.113.1/24")
	for i := 0; i < anyServers; i++ {
		a.s.Addr("eth0", serverAddr(i)+"/24")
	}
	a.s.Route("default", "via", "203.0.113.1")
	// The access network: the CEs on r6's bridge.
	a.r6.Bridge("acc")
	a.r6.Addr("acc", "2001:db8:6::1/64")
	var agents []struct {
		name, sock string
		p          *testenv.Proc
	}
	for _, ce := range []struct{ name, client, wan, prefix string }{
		{"ce11b", "c1", "2001:db8:6::11b", "2001:db8:ce:11b::/64"},
		{"ce774", "c2", "2001:db8:6::774", "2001:db8:ce:774::/64"},
	} {
		ns := l.NS(ce.name)
		l.Veth(a.r6, "p-"+ce.name, ns, "wan")
		a.r6.MustExec("ip", "link", "set", "dev", "p-"+ce.name, "master", "acc")
		ns.Addr("wan", ce.wan+"/64")
		ns.Route("default", "via", "2001:db8:6::1")
		ns.Forwarding()
		c := l.NS(ce.client)
		l.Veth(ns, "lan", c, "eth0")
		ns.Addr("lan", "192.168.0.1/24")
		c.Addr("eth0", "192.168.0.4/24")
		c.Route("default", "via", "192.168.0.1")
		a.r6.Route(ce.prefix, "via", ce.wan)
		a.clients = append(a.clients, c)
		sock := filepath.Join(a.dir, ce.name+".sock")
		p := ns.Start(filepath.Join(a.bin, "ce-agent"), "run", "--wan", "wan", "--rule", anyRule, "--dmr", anyDMR, "--prefix", ce.prefix,
			"--state-dir", filepath.Join(a.dir, ce.name), "--status-socket", sock)
		agents = append(agents, struct {
			name, sock string
			p          *testenv.Proc
		}{ce.name, sock, p})
	}
	// The BRs, each linked to both routers.
	for i := 1; i <= 2; i++ {
		b := &anyBR{name: fmt.Sprintf("br%d", i), r6port: fmt.Sprintf("br%d", i)}
		b.ns = l.NS(b.name)
		b.ns.Forwarding()
		b.ns.Sysctl("net.ipv6.conf.all.keep_addr_on_down", "1")
		l.Veth(a.r6, b.r6port, b.ns, "eth0")
		a.r6.Addr(b.r6port, fmt.Sprintf("2001:db8:f:%d::1/64", i))
		b.ns.Addr("eth0", fmt.Sprintf("2001:db8:f:%d::2/64", i))
		l.Veth(a.r4, b.name, b.ns, "eth1")
		a.r4.Addr(b.name, fmt.Sprintf("198.18.%d.1/24", i))
		b.ns.Addr("eth1", fmt.Sprintf("198.18.%d.2/24", i))
		b.domain = filepath.Join(a.dir, b.name+".yaml")
		if err := os.WriteFile(b.domain, []byte(anyDomain), 0o644); err != nil {
			t.Fatal(err)
		}
		a.brs = append(a.brs, b)
	}
	a.startRouters()
	for i, b := range a.brs {
		b.bird = a.bird(b.ns, fmt.Sprintf(`router id 10.255.0.%d;
define MAPT_TABLE = 9724;
define MAPT_AS = 64512;
define UP6_ADDR = 2001:db8:f:%d::1;
define UP6_AS = 64500;
define UP4_ADDR = 198.18.%d.1;
define UP4_AS = 64501;
include "%s";
`, 11+i, i+1, i+1, birdConf(t, "bird-br.conf")))
		a.startBR(b)
	}
	for _, ag := range agents {
		if !testenv.WaitFor(15*time.Second, func() bool {
			s, err := agent.ReadStatus(ag.sock)
			return err == nil && s.State == "bound" || ag.p.Exited()
		}) || ag.p.Exited() {
			t.Fatalf("%s did not bind:\n%s", ag.name, ag.p.Output())
		}
	}
	a.startEcho()
	t.Cleanup(a.close)
	return a
}

// anyDomain is each BR's domain file: the seed domain, announced while
// healthy, and healthy only while both sides route (the routes come from
// the routers over BGP, so BFD's verdict reaches br).
var anyDomain = `br:
  ipv6-interface: eth0
  ipv4-interface: eth1
  metrics: 127.0.0.1:9724
  anycast:
    table: 9724
    check-interval: 50ms
    drain: 500ms
    require-routes:
      - 2001:db8:ce::1
      - 203.0.113.56
domains:
` + domaintest.Domain("seed", domaintest.DMR, domaintest.SeedRule(0))

func (a *anycastLab) startRouters() {
	up := birdConf(a.t, "bird-upstream.conf")
	a.bird(a.r6, fmt.Sprintf(`router id 10.255.0.6;
define MAPT_AS = 64500;
define MAPT_PREFIX4 = [ 192.0.2.0/24 ];
define MAPT_PREFIX6 = [ 64:ff9b::/96 ];
include "%s";
protocol bgp br1 from mapt_br6 { neighbor 2001:db8:f:1::2 as 64512; }
protocol bgp br2 from mapt_br6 { neighbor 2001:db8:f:2::2 as 64512; }
protocol static mapt_to_br6 { ipv6; route 2001:db8:ce::/51 blackhole; }
`, up))
	a.bird(a.r4, fmt.Sprintf(`router id 10.255.0.4;
define MAPT_AS = 64501;
define MAPT_PREFIX4 = [ 192.0.2.0/24 ];
define MAPT_PREFIX6 = [ 64:ff9b::/96 ];
include "%s";
protocol bgp br1 from mapt_br4 { neighbor 198.18.1.2 as 64512; }
protocol bgp br2 from mapt_br4 { neighbor 198.18.2.2 as 64512; }
protocol static mapt_to_br4 { ipv4; route 0.0.0.0/0 blackhole; }
`, up))
}

// bird starts BIRD in ns with a site file that includes a shipped one.
func (a *anycastLab) bird(ns *testenv.NS, site string) *testenv.Proc {
	a.t.Helper()
	conf := filepath.Join(a.dir, ns.Short+"-bird.conf")
	site = "log stderr { info, remote, warning, error, auth, fatal, bug };\n" + site
	if err := os.WriteFile(conf, []byte(site), 0o644); err != nil {
		a.t.Fatal(err)
	}
	if out, err := ns.Exec("bird", "-p", "-c", conf); err != nil {
		a.t.Fatalf("bird -p %s: %v\n%s", conf, err, out)
	}
	return ns.Start("bird", "-f", "-c", conf, "-s", filepath.Join(a.dir, ns.Short+"-bird.sock"), "-P", filepath.Join(a.dir, ns.Short+"-bird.pid"))
}

func (a *anycastLab) startBR(b *anyBR) {
	b.br = b.ns.Start(filepath.Join(a.bin, "br"), "run", "--config", b.domain)
}

// paths are the next-hop devices of a route on a router.
func paths(ns *testenv.NS, family, prefix string) []string {
	out, _ := ns.Exec("ip", family, "route", "show", prefix)
	var devs []string
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" {
			devs = append(devs, f[i+1])
		}
	}
	return devs
}

// waitPaths waits until both routers have exactly the BRs named as next
// hops for the domain (r6: the DMR; r4: the rule's IPv4 prefix).
func (a *anycastLab) waitPaths(timeout time.Duration, want ...string) {
	a.t.Helper()
	var six, four []string
	if !testenv.WaitFor(timeout, func() bool {
		six, four = paths(a.r6, "-6", anyDMR), paths(a.r4, "-4", "192.0.2.0/24")
		slices.Sort(six)
		slices.Sort(four)
		return slices.Equal(six, want) && slices.Equal(four, want)
	}) {
		a.t.Fatalf("routers' next hops: r6 %v, r4 %v; want %v\n%s", six, four, want, a.birdState())
	}
}

func (a *anycastLab) birdState() string {
	var b strings.Builder
	for _, ns := range []*testenv.NS{a.r6, a.r4, a.brs[0].ns, a.brs[1].ns} {
		out, _ := ns.Exec("birdc", "-s", filepath.Join(a.dir, ns.Short+"-bird.sock"), "show", "protocols")
		fmt.Fprintf(&b, "%s:\n%s\n", ns.Short, out)
	}
	return b.String()
}

// startEcho answers UDP on port 7 of every server address, from that
// address.
func (a *anycastLab) startEcho() {
	for i := 0; i < anyServers; i++ {
		a.s.EchoUDP("udp", serverAddr(i)+":7")
	}
}

// flow is one continuous stream: a datagram every anyInterval from a
// client to one server address, echoed back.
type flow struct {
	name string
	conn net.Conn
	mu   sync.Mutex
	sent []time.Time
	got  []bool
}

func (a *anycastLab) startFlows() {
	for _, c := range a.clients {
		for i := 0; i < anyServers; i++ {
			conn, err := c.Dial("udp", "", serverAddr(i)+":7", 5*time.Second)
			if err != nil {
				a.t.Fatal(err)
			}
			f := &flow{name: c.Short + "->" + serverAddr(i), conn: conn}
			a.flows = append(a.flows, f)
			a.wg.Add(2)
			go a.send(f)
			go a.receive(f)
		}
	}
}

func (a *anycastLab) send(f *flow) {
	defer a.wg.Done()
	t := time.NewTicker(anyInterval)
	defer t.Stop()
	msg := make([]byte, 64)
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			f.mu.Lock()
			seq := len(f.sent)
			f.sent = append(f.sent, now)
			f.got = append(f.got, false)
			f.mu.Unlock()
			binary.BigEndian.PutUint64(msg, uint64(seq))
			f.conn.Write(msg)
		}
	}
}

func (a *anycastLab) receive(f *flow) {
	defer a.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := f.conn.Read(buf)
		if err != nil {
			// Errors from ICMP unreachables come and go; a closed
			// socket ends the flow.
			select {
			case <-a.stop:
				return
			default:
				if strings.Contains(err.Error(), "use of closed") {
					return
				}
				continue
			}
		}
		if n != 64 {
			continue
		}
		seq := int(binary.BigEndian.Uint64(buf))
		f.mu.Lock()
		if seq < len(f.got) {
			f.got[seq] = true
		}
		f.mu.Unlock()
	}
}

func (a *anycastLab) close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	for _, f := range a.flows {
		f.conn.Close()
	}
	a.wg.Wait()
}

// loss is what the streams lost among the datagrams sent in [from, to):
// the longest run of consecutive losses in any flow (as time: the
// outage), the datagrams lost and the flows that lost any.
type loss struct {
	outage time.Duration
	lost   int
	flows  int
}

func (l loss) String() string {
	return fmt.Sprintf("outage %.3f s (%d datagrams lost in %d flows)", l.outage.Seconds(), l.lost, l.flows)
}

func (a *anycastLab) loss(from, to time.Time) loss {
	var out loss
	for _, f := range a.flows {
		f.mu.Lock()
		run, lost := 0, 0
		for i, at := range f.sent {
			if at.Before(from) || !at.Before(to) {
				continue
			}
			if f.got[i] {
				run = 0
				continue
			}
			lost++
			run++
			if d := time.Duration(run) * anyInterval; d > out.outage {
				out.outage = d
			}
		}
		f.mu.Unlock()
		out.lost += lost
		if lost > 0 {
			out.flows++
		}
	}
	return out
}

// metric reads one sample of a BR's metrics.
func (b *anyBR) metric(name string) float64 {
	m, err := b.ns.Scrape("http://127.0.0.1:9724/metrics")
	if err != nil {
		return -1
	}
	return m[name]
}

const (
	m6to4 = `mapt_br_translated_packets_total{direction="6to4",domain="seed"}`
	m4to6 = `mapt_br_translated_packets_total{direction="4to6",domain="seed"}`
)

// checkECMP checks that both BRs carry the streams, both ways.
func (a *anycastLab) checkECMP(when string) {
	a.t.Helper()
	var before [2][2]float64
	for i, b := range a.brs {
		before[i] = [2]float64{b.metric(m6to4), b.metric(m4to6)}
	}
	time.Sleep(time.Second)
	for i, b := range a.brs {
		d6, d4 := b.metric(m6to4)-before[i][0], b.metric(m4to6)-before[i][1]
		a.t.Logf("%s: %s translated %.0f 6->4 and %.0f 4->6 datagrams in 1 s", when, b.name, d6, d4)
		if d6 < 10 || d4 < 10 {
			a.t.Fatalf("%s: %s carries %.0f 6->4 and %.0f 4->6 datagrams a second: no ECMP", when, b.name, d6, d4)
		}
	}
}

// failover fails br1 with fail, measures the streams' loss, brings it
// back with restore, measures again and checks that both BRs carry
// traffic again.
type failoverResult struct {
	name       string
	down, back loss
}

func (a *anycastLab) failover(name string, fail, restore func(b *anyBR)) failoverResult {
	a.t.Helper()
	b := a.brs[0]
	t0 := time.Now()
	fail(b)
	a.waitPaths(5*time.Second, "br2")
	moved := time.Since(t0)
	time.Sleep(2 * time.Second)
	down := a.loss(t0.Add(-200*time.Millisecond), time.Now().Add(-time.Second))
	t1 := time.Now()
	restore(b)
	a.waitPaths(30*time.Second, "br1", "br2")
	time.Sleep(2 * time.Second)
	back := a.loss(t1, time.Now().Add(-time.Second))
	a.t.Logf("%s: both routers left br1 within %v (polled); br1 down: %s; back: %s", name, moved.Round(time.Millisecond), down, back)
	a.checkECMP(name + ", br1 back")
	return failoverResult{name, down, back}
}

// TestAnycastFailover runs two streams' worth of flows from each client
// through the two BRs and fails one BR four ways: SIGTERM (it withdraws,
// drains and stops), SIGKILL (the kernel withdraws for it), its IPv6 link
// down, and a silent failure of that link (BFD). Traffic moves to the
// other BR within a bounded time and spreads over both again when the BR
// is back. Fragmented datagrams cross the pair intact both ways.
func TestAnycastFailover(t *testing.T) {
	a := newAnycastLab(t)
	a.waitPaths(30*time.Second, "br1", "br2")
	a.startFlows()
	time.Sleep(time.Second)
	if l := a.loss(time.Now().Add(-time.Second), time.Now().Add(-300*time.Millisecond)); l.lost > 0 {
		t.Fatalf("loss with both BRs up: %s\n%s", l, a.birdState())
	}
	a.checkECMP("both up")
	a.fragments()

	const bound = 1500 * time.Millisecond // generous: the target is < 1 s
	check := func(r failoverResult) {
		t.Helper()
		if r.down.outage > bound || r.back.outage > bound {
			t.Errorf("%s: outage %v down, %v back; want < %v", r.name, r.down.outage, r.back.outage, bound)
		}
	}
	restart := func(b *anyBR) { a.startBR(b) }
	// MAPT_ANYCAST_ROUNDS repeats the four failovers, for figures.
	rounds := 1
	if n, err := strconv.Atoi(os.Getenv("MAPT_ANYCAST_ROUNDS")); err == nil && n > 1 {
		rounds = n
	}
	var results []failoverResult
	for round := 0; round < rounds; round++ {
		results = append(results, a.failovers(check, restart)...)
	}
	summarize(t, results)
	a.fragments()
}

// failovers fails br1 each of the four ways once.
func (a *anycastLab) failovers(check func(failoverResult), restart func(*anyBR)) []failoverResult {
	t := a.t
	var out []failoverResult
	run := func(r failoverResult) {
		check(r)
		out = append(out, r)
	}
	run(a.failover("SIGTERM", func(b *anyBR) {
		b.br.Signal(syscall.SIGTERM)
		if err := b.br.Wait(5 * time.Second); err != nil {
			t.Fatalf("br1 did not stop: %v", err)
		}
	}, restart))
	run(a.failover("SIGKILL", func(b *anyBR) { b.br.Signal(syscall.SIGKILL); b.br.Wait(5 * time.Second) }, restart))
	run(a.failover("link down", func(b *anyBR) {
		b.ns.MustExec("ip", "link", "set", "eth0", "down")
	}, func(b *anyBR) {
		b.ns.MustExec("ip", "link", "set", "eth0", "up")
	}))
	// A silent failure: r6's port to br1 stays up but passes nothing, both
	// ways. Only BFD can tell; br1 learns it when BIRD removes the CE
	// routes that came over the dead session (require-routes).
	run(a.failover("silent link failure (BFD)", func(b *anyBR) {
		a.r6.MustExec("nft", "add", "table", "netdev", "blackhole")
		for _, hook := range []string{"ingress", "egress"} {
			a.r6.MustExec("nft", "add", "chain", "netdev", "blackhole", hook,
				fmt.Sprintf("{ type filter hook %s device %s priority 0; policy drop; }", hook, b.r6port))
		}
	}, func(b *anyBR) {
		a.r6.MustExec("nft", "delete", "table", "netdev", "blackhole")
	}))
	return out
}

// summarize logs each failure's outage over the rounds: min, median, max.
func summarize(t *testing.T, results []failoverResult) {
	by := map[string][]time.Duration{}
	var names []string
	for _, r := range results {
		if by[r.name] == nil {
			names = append(names, r.name)
		}
		by[r.name] = append(by[r.name], r.down.outage)
		by[r.name+" (back)"] = append(by[r.name+" (back)"], r.back.outage)
	}
	for _, name := range names {
		for _, key := range []string{name, name + " (back)"} {
			d := by[key]
			slices.Sort(d)
			t.Logf("%-34s outage over %d runs: min %.3f s, median %.3f s, max %.3f s", key+":", len(d), d[0].Seconds(), d[len(d)/2].Seconds(), d[len(d)-1].Seconds())
		}
	}
}

// fragments sends 3000-byte datagrams, fragmented on the way out and on
// the way back, between every (client, server address) pair, which ECMP
// spreads over both BRs: each comes back intact, no BR saw a later
// fragment without the first, and both BRs fragmented some.
func (a *anycastLab) fragments() {
	a.t.Helper()
	var before [2]float64
	for i, b := range a.brs {
		before[i] = b.metric(`mapt_br_via_stack_packets_total{domain="seed"}`)
	}
	payload := make([]byte, 3000)
	for _, c := range a.clients {
		for i := 0; i < anyServers; i++ {
			conn, err := c.Dial("udp", "", serverAddr(i)+":7", 5*time.Second)
			if err != nil {
				a.t.Fatal(err)
			}
			buf := make([]byte, 4000)
			for k := 0; k < 5; k++ {
				for j := range payload {
					payload[j] = byte(j*7 + k + i)
				}
				ok := false
				for try := 0; try < 3 && !ok; try++ {
					conn.Write(payload)
					conn.SetReadDeadline(time.Now().Add(time.Second))
					n, err := conn.Read(buf)
					ok = err == nil && bytes.Equal(buf[:n], payload)
				}
				if !ok {
					a.t.Fatalf("%s -> %s: 3000-byte datagram %d not echoed intact\n%s", c.Short, serverAddr(i), k, a.dropped())
				}
			}
			conn.Close()
		}
	}
	for i, b := range a.brs {
		if miss := b.metric(`mapt_br_dropped_packets_total{domain="seed",reason="frag_miss"}`); miss != 0 {
			a.t.Errorf("%s: %v later fragments without their first", b.name, miss)
		}
		n := b.metric(`mapt_br_via_stack_packets_total{domain="seed"}`) - before[i]
		a.t.Logf("fragments: %s fragmented %.0f IPv4 fragments for the CEs", b.name, n)
		if n <= 0 {
			a.t.Errorf("%s saw no fragments: the pairs did not spread over both BRs", b.name)
		}
	}
}

// dropped lists the BRs' non-zero drop counters.
func (a *anycastLab) dropped() string {
	var out []string
	for _, b := range a.brs {
		m, _ := b.ns.Scrape("http://127.0.0.1:9724/metrics")
		for k, v := range m {
			if strings.HasPrefix(k, "mapt_br_dropped_packets_total") && v > 0 {
				out = append(out, b.name+" "+k+" "+strconv.FormatFloat(v, 'f', 0, 64))
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}
