package relay_test

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapt-go/mapt/testenv"
)

// anycastYAML is the lab's domain with anycast on: announcements in table
// 9724, checked every 50 ms, a 1 s drain.
// The BR is healthy only while it routes CE 11b's prefix out of its
// IPv6 side and s out of its IPv4 side.
var anycastYAML = strings.Replace(domainYAML, "  metrics:", `  anycast:
    table: 9724
    check-interval: 50ms
    drain: 1s
    require-routes:
      - 2001:db8:ce:11b::1
      - 203.0.113.56
  metrics:`, 1)

// healthz fetches the BR's /healthz: status code and body.
func (l *mapLab) healthz() (int, string, error) { return l.BR.Get("http://127.0.0.1:9724/healthz") }

// announced is what the BR has in its anycast table, both families (""
// when the table does not exist).
func (l *mapLab) announced(t *testing.T) string {
	t.Helper()
	v4, _ := l.BR.Exec("ip", "-4", "route", "show", "table", "9724")
	v6, _ := l.BR.Exec("ip", "-6", "route", "show", "table", "9724")
	if strings.Contains(v4, "does not exist") {
		v4 = ""
	}
	if strings.Contains(v6, "does not exist") {
		v6 = ""
	}
	return v4 + v6
}

func waitAnnounced(t *testing.T, l *mapLab, want bool, why string) {
	t.Helper()
	if !testenv.WaitFor(2*time.Second, func() bool {
		a := l.announced(t)
		has := strings.Contains(a, "192.0.2.0/24 dev maptbr0 proto 77") && strings.Contains(a, "64:ff9b::/96 dev maptbr0 proto 77")
		return has == want && (want || strings.TrimSpace(a) == "")
	}) {
		code, body, _ := l.healthz()
		t.Fatalf("%s: announced %v wanted; table 9724:\n%s\nhealthz %d %s\nbr:\n%s", why, want, l.announced(t), code, body, l.br.Output())
	}
}

func wantHealth(t *testing.T, l *mapLab, code int, contains string) {
	t.Helper()
	var got int
	var body string
	if !testenv.WaitFor(2*time.Second, func() bool {
		got, body, _ = l.healthz()
		return got == code && strings.Contains(body, contains)
	}) {
		t.Fatalf("healthz %d %q, want %d with %q", got, body, code, contains)
	}
}

// TestBRHealthAnycast checks what a routing daemon sees of a BR: the
// announcement routes exist exactly while the BR is healthy. They go when
// the IPv4 side loses its link, when forwarding is off, when a required
// route goes (as a routing daemon removes it when BFD declares the
// upstream dead), when the
// translator is taken off its hooks behind the BR's back, while it drains
// on SIGTERM, and when it is killed; a reload's new prefix is announced.
func TestBRHealthAnycast(t *testing.T) {
	l := startLabWith(t, anycastYAML)
	waitAnnounced(t, l, true, "start")
	wantHealth(t, l, 200, "ok\nannounced 2 routes in table 9724")
	m, _ := l.metrics()
	if m["mapt_br_healthy"] != 1 || m["mapt_br_anycast_announced_routes"] != 2 || m[`mapt_br_translator_attached{domain="seed"}`] != 1 {
		t.Fatalf("metrics: %v", m)
	}
	udpEcho(t, l.C1, "while announced")

	// The IPv4 side loses its link: the BR could no longer deliver what the
	// IPv6 side sends, so both announcements go.
	l.BR.MustExec("ip", "link", "set", "eth1", "down")
	waitAnnounced(t, l, false, "eth1 down")
	wantHealth(t, l, 503, "interface eth1: down")
	if m, _ := l.metrics(); m["mapt_br_healthy"] != 0 || m["mapt_br_anycast_announced_routes"] != 0 {
		t.Fatalf("metrics while down: %v", m)
	}
	l.BR.MustExec("ip", "link", "set", "eth1", "up")
	waitAnnounced(t, l, true, "eth1 up")

	l.BR.Sysctl("net.ipv4.conf.all.forwarding", "0")
	wantHealth(t, l, 503, "net.ipv4.conf.all.forwarding is off")
	waitAnnounced(t, l, false, "forwarding off")
	l.BR.Sysctl("net.ipv4.conf.all.forwarding", "1")
	waitAnnounced(t, l, true, "forwarding on")

	l.BR.MustExec("ip", "-6", "route", "del", "2001:db8:ce:11b::/64")
	wantHealth(t, l, 503, "no route to 2001:db8:ce:11b::1 out of eth0")
	waitAnnounced(t, l, false, "required route gone")
	l.RouteDelegated("2001:db8:ce:11b::/64", testenv.SeedCE11bWAN)
	waitAnnounced(t, l, true, "required route back")

	// A reload's new rule is announced too.
	more := anycastYAML + "      - ipv6-prefix: 2001:db8:cf::/48\n        ipv4-prefix: 198.51.100.0/24\n        ea-len: 8\n"
	if err := os.WriteFile(l.domainFile, []byte(more), 0o644); err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitFor(3*time.Second, func() bool { return strings.Contains(l.announced(t), "198.51.100.0/24 dev maptbr0") }) {
		t.Fatalf("new rule not announced:\n%s", l.announced(t))
	}

	// SIGTERM: withdrawn first, translating on during the drain, then gone.
	l.br.Signal(syscall.SIGTERM)
	waitAnnounced(t, l, false, "SIGTERM")
	if l.br.Exited() {
		t.Fatal("br exited without draining")
	}
	wantHealth(t, l, 503, "stopping")
	udpEcho(t, l.C1, "while draining")
	if err := l.br.Wait(5 * time.Second); err != nil {
		t.Fatalf("br exit: %v\n%s", err, l.br.Output())
	}

	// clsact hooks: the health check finds the programs there too, and
	// sees them go when someone flushes the filters.
	os.WriteFile(l.domainFile, []byte(anycastYAML), 0o644)
	l.br = l.BR.Start(testenv.BuildBinary(t, "./cmd/br"), "run", "--config", l.domainFile, "--attach-mode", "clsact")
	waitAnnounced(t, l, true, "clsact start")
	wantHealth(t, l, 200, "ok")
	l.BR.MustExec("tc", "filter", "del", "dev", "eth1", "ingress")
	wantHealth(t, l, 503, "domain seed: translator not attached")
	waitAnnounced(t, l, false, "filters flushed")
	if m, _ := l.metrics(); m[`mapt_br_translator_attached{domain="seed"}`] != 0 {
		t.Fatalf("metrics after the flush: %v", m)
	}
	// SIGKILL: the process cannot withdraw anything; the kernel does, as
	// the local device goes with the process's file descriptors.
	l.br.Stop()
	l.br = l.BR.Start(testenv.BuildBinary(t, "./cmd/br"), "run", "--config", l.domainFile)
	waitAnnounced(t, l, true, "restart")
	l.br.Signal(syscall.SIGKILL)
	waitAnnounced(t, l, false, "SIGKILL")
}
