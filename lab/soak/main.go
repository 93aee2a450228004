// Command soak is `make soak` (issue 16; not part of `make test`): the
// zero-touch lab with both CEs for -duration (default 10 minutes) of mixed
// traffic while the network lives its life, and a report of what each
// event cost and of what the processes kept.
//
// Traffic, from both clients to s, all the time:
//   - a 100 datagrams/s UDP stream, echoed by s (both directions of the CE
//     and the BR count);
//   - ping at 5/s (ICMP echo ids NAPTed into the port set);
//   - a long-lived TCP connection echoing a line every 100 ms (it must
//     live through everything), and a new HTTP connection fetching the
//     seed's page every second and 1 MiB every 10 s.
//
// Events: Kea renews every CE's lease every 10 s (T1); the BR reloads
// (SIGHUP) every minute; every 2 minutes the domain gains or loses an FMR
// (the file the BR follows and Kea's configuration: the BR reloads it,
// the CEs apply it at their next renewal); once, at 40 % of the run, CE
// 11b's agent is killed (SIGKILL) and started 3 s later; once, at 70 %,
// the BR is stopped (SIGTERM, --leave-in-place) and started 3 s later.
// The translators are pinned, so none of this may lose a packet.
//
// It fails (exit status 1) on any lost datagram or echo, any failed
// connection or TCP stall over 3 s, any process that exited, and any leak:
// a process whose open file descriptors grew by more than 4 or whose RSS
// grew by more than max(8 MiB, 50%) between its first sample (10 s after
// it started) and the end, or more BPF programs of ours loaded at the end
// than at the start.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mapt-go/mapt/lab"
	"github.com/mapt-go/mapt/testenv"
)

// extraFMR is the rule the domain gains and loses every 2 minutes.
const extraFMR = `      - ipv6-prefix: 2001:db8:cf::/48
        ipv4-prefix: 198.51.100.0/24
        ea-len: 8
        psid-offset: 0
        fmr: true
`

// Leak bounds.
const (
	fdSlack   = 4
	rssSlack  = 8 << 20
	rssFactor = 1.5
	settle    = 10 * time.Second // after a start, before the first sample
)

func main() {
	bin := flag.String("bin", "bin", "directory with ce-agent and br")
	duration := flag.Duration("duration", 10*time.Minute, "how long the soak runs")
	flag.Parse()
	if *duration < time.Minute {
		fmt.Fprintln(os.Stderr, "soak: -duration must be at least 1m (one reload)")
		os.Exit(2)
	}
	r, abs := testenv.MustProgram("soak", *bin)
	s := &soak{r: r, bin: abs, duration: *duration}
	s.run()
	if s.failed() {
		fmt.Println("\nsoak: FAIL")
		r.Exit(1)
	}
	fmt.Println("\nsoak: PASS")
	r.Exit(0)
}

type soak struct {
	r        *testenv.Program
	bin      string
	duration time.Duration
	l        *lab.Lab
	pins     string
	start    time.Time

	mu       sync.Mutex
	events   []event
	problems []string
	procs    map[string]*procTrack // by role
	tcp      []*tcpEcho
	http     []*httpLoad
}

// event is something that happened to the network, and the window in
// which a loss is put down to it.
type event struct {
	at     time.Time
	name   string
	window time.Duration
}

func (s *soak) problem(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := fmt.Sprintf(format, a...)
	s.problems = append(s.problems, msg)
	fmt.Println("PROBLEM:", msg)
}

func (s *soak) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.problems) > 0
}

func (s *soak) note(name string, window time.Duration) {
	s.mu.Lock()
	s.events = append(s.events, event{at: time.Now(), name: name, window: window})
	s.mu.Unlock()
	fmt.Printf("%8s  %s\n", time.Since(s.start).Round(time.Second), name)
}

func (s *soak) run() {
	r := s.r
	s.pins = testenv.BPFFS(r)
	fmt.Printf("soak: %s of mixed traffic through the lab (Kea T1 10 s, pins in %s)\n", s.duration, s.pins)
	s.l = lab.Up(r, lab.Options{Bin: s.bin, RenewTimer: 10,
		AgentArgs: []string{"--pin-dir", s.pins}, RelayArgs: []string{"--pin-dir", s.pins, "--leave-in-place"}})
	l := s.l
	if err := l.WaitProvisioned(60 * time.Second); err != nil {
		r.Fatal(err)
	}
	s.servers()
	s.procs = map[string]*procTrack{}
	for _, c := range l.CEs {
		s.track("ce-agent "+c.Name, c.Agent)
	}
	s.track("br", l.Relay)
	s.track("kea-dhcp6", l.Kea)
	s.track("web (python3)", l.Web)
	hooksStart := s.hooks()

	// Traffic.
	var streams []*testenv.Stream
	var pings []*pinger
	for _, c := range l.CEs {
		st, err := c.Client.UDPStream(testenv.SeedServer+":7", 100, 64)
		if err != nil {
			r.Fatal(err)
		}
		streams = append(streams, st)
		pings = append(pings, startPing(c.Client))
		s.tcp = append(s.tcp, startTCPEcho(c.Client))
		s.http = append(s.http, startHTTP(c.Client))
	}
	s.start = time.Now()
	s.note("traffic started", 0)

	// The schedule: reloads at 30 s + k min, rule changes every 2 min,
	// the agent restart at 40 % and the BR restart at 70 % of the run
	// (15 s off the minute and the half-minute: alone in their windows).
	type step struct {
		at time.Duration
		do func()
	}
	var plan []step
	for at := 30 * time.Second; at < s.duration-10*time.Second; at += time.Minute {
		plan = append(plan, step{at, s.reload})
	}
	added := false
	for at := 2 * time.Minute; at < s.duration-15*time.Second; at += 2 * time.Minute {
		plan = append(plan, step{at, func() { added = !added; s.changeRules(added) }})
	}
	plan = append(plan, step{s.duration*4/10 + 15*time.Second, s.restartAgent}, step{s.duration*7/10 + 15*time.Second, s.restartBR})
	slices.SortFunc(plan, func(a, b step) int { return int(a.at - b.at) })

	sampler := time.NewTicker(30 * time.Second)
	defer sampler.Stop()
	for _, p := range plan {
		for wait := time.Until(s.start.Add(p.at)); wait > 0; wait = time.Until(s.start.Add(p.at)) {
			select {
			case <-sampler.C:
				s.sample()
			case <-time.After(wait):
			}
		}
		p.do()
	}
	for wait := time.Until(s.start.Add(s.duration)); wait > 0; wait = time.Until(s.start.Add(s.duration)) {
		select {
		case <-sampler.C:
			s.sample()
		case <-time.After(wait):
		}
	}
	s.note("end", 0)
	s.sample()
	hooksEnd := s.hooks()

	// Results.
	var udp []testenv.StreamResult
	for _, st := range streams {
		udp = append(udp, st.Stop(time.Second))
	}
	var icmp [][]time.Time
	var icmpSent []int
	for _, p := range pings {
		lost, sent := p.stop()
		icmp = append(icmp, lost)
		icmpSent = append(icmpSent, sent)
	}
	for _, t := range s.tcp {
		t.stop()
	}
	for _, h := range s.http {
		h.stop()
	}
	s.report(udp, icmp, icmpSent)
	s.reportProcs()
	fmt.Printf("\nprograms on the TCX hooks: %v at the start, %v at the end\n", hooksStart, hooksEnd)
	if !maps.Equal(hooksStart, hooksEnd) {
		s.problem("the TCX hooks changed: %v at the start, %v at the end", hooksStart, hooksEnd)
	}
	if dirs := testenv.PinnedDirs(s.pins); len(dirs) != 3 {
		s.problem("%d translators pinned at the end (%v), want 3 (two CEs, the BR)", len(dirs), dirs)
	}
	for _, c := range l.CEs {
		out, err := c.NS.Exec("tc", "filter", "show", "dev", "wan", "ingress")
		if err == nil && strings.Count(out, "mapt-") > 0 {
			s.problem("%s: cls_bpf filters on a TCX run: %s", c.Name, out)
		}
	}
}

// servers answers UDP and TCP echo on s:7 and serves 1 MiB as /big.
func (s *soak) servers() {
	l := s.l
	l.S.EchoUDP("udp", ":7")
	l.S.EchoTCP("tcp", ":7")
	if err := os.WriteFile(filepath.Join(l.WebRoot, "big"), make([]byte, 1<<20), 0o644); err != nil {
		s.r.Fatal(err)
	}
}

func (s *soak) reload() {
	s.note("br reload (SIGHUP)", 5*time.Second)
	if err := s.l.Relay.Signal(syscall.SIGHUP); err != nil {
		s.problem("br reload: %v", err)
	}
}

// changeRules adds or removes the extra FMR: the BR reloads the file, Kea
// its configuration, and the CEs apply it at their next renewal (T1 10 s).
func (s *soak) changeRules(add bool) {
	o := lab.Options{}
	what := "removed"
	if add {
		o.ExtraRules, what = extraFMR, "added"
	}
	s.note("rule change: FMR 2001:db8:cf::/48 "+what+" (br reload, CEs at renewal)", 15*time.Second)
	s.l.ChangeDomain(s.r, o)
}

func (s *soak) restartAgent() {
	c := s.l.CEs[0]
	s.note("ce11b agent kill -9, 3 s away, restarted", 10*time.Second)
	c.Agent.Signal(syscall.SIGKILL)
	c.Agent.Wait(5 * time.Second)
	time.Sleep(3 * time.Second)
	s.l.StartAgent(c, "--pin-dir", s.pins)
	if err := s.l.WaitProvisioned(20 * time.Second); err != nil {
		s.problem("agent restart: %v", err)
		return
	}
	if !strings.Contains(c.Agent.Output(), "adoption=kept") {
		s.problem("the restarted agent did not keep its pinned translator")
	}
	s.track("ce-agent "+c.Name, c.Agent)
}

func (s *soak) restartBR() {
	l := s.l
	s.note("br SIGTERM --leave-in-place, 3 s away, restarted", 10*time.Second)
	start := time.Now()
	l.Relay.Signal(syscall.SIGTERM)
	if err := l.Relay.Wait(5 * time.Second); err != nil {
		s.problem("br stop: %v", err)
	}
	took := time.Since(start)
	fmt.Printf("          br exited in %v\n", took.Round(time.Millisecond))
	if took > 200*time.Millisecond {
		s.problem("br took %v to exit on SIGTERM (bound 200 ms)", took)
	}
	time.Sleep(3 * time.Second)
	l.StartRelay(s.bin, "--pin-dir", s.pins, "--leave-in-place")
	if !testenv.WaitFor(10*time.Second, func() bool { return strings.Contains(l.Relay.Output(), "br running") || l.Relay.Exited() }) || l.Relay.Exited() {
		s.problem("br restart:\n%s", l.Relay.Output())
		return
	}
	if !strings.Contains(l.Relay.Output(), "adoption=kept") {
		s.problem("the restarted br did not keep its pinned translator")
	}
	s.track("br", l.Relay)
}

// report prints the loss per event and checks there is none.
func (s *soak) report(udp []testenv.StreamResult, icmp [][]time.Time, icmpSent []int) {
	s.mu.Lock()
	events := slices.Clone(s.events)
	s.mu.Unlock()
	names := []string{"c1", "c2"}
	// A loss belongs to the latest event whose window holds it, else to
	// the background.
	owner := func(at time.Time) int {
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			if !at.Before(e.at.Add(-time.Second)) && at.Before(e.at.Add(e.window)) {
				return i
			}
		}
		return -1
	}
	type tally struct{ udp, icmp, stalls, httpFail [2]int }
	per := make([]tally, len(events))
	var bg tally
	add := func(i int, f func(*tally)) {
		if i < 0 {
			f(&bg)
		} else {
			f(&per[i])
		}
	}
	for c := range udp {
		for _, at := range udp[c].LostAt {
			add(owner(at), func(t *tally) { t.udp[c]++ })
		}
		for _, at := range icmp[c] {
			add(owner(at), func(t *tally) { t.icmp[c]++ })
		}
		for _, at := range s.tcp[c].stallsAt() {
			add(owner(at), func(t *tally) { t.stalls[c]++ })
		}
		for _, at := range s.http[c].failuresAt() {
			add(owner(at), func(t *tally) { t.httpFail[c]++ })
		}
	}
	fmt.Printf("\nloss per event (UDP datagrams / ICMP echoes / TCP stalls over %v / failed HTTP fetches; c1, c2)\n", stallBound)
	fmt.Printf("%-9s %-62s %-9s %-9s %-7s %-7s\n", "at", "event", "udp", "icmp", "tcp", "http")
	row := func(at, name string, t tally) {
		fmt.Printf("%-9s %-62s %-9s %-9s %-7s %-7s\n", at, name,
			fmt.Sprintf("%d, %d", t.udp[0], t.udp[1]), fmt.Sprintf("%d, %d", t.icmp[0], t.icmp[1]),
			fmt.Sprintf("%d, %d", t.stalls[0], t.stalls[1]), fmt.Sprintf("%d, %d", t.httpFail[0], t.httpFail[1]))
	}
	renewals := int(s.duration / (10 * time.Second))
	for i, e := range events {
		row(e.at.Sub(s.start).Round(time.Second).String(), e.name, per[i])
	}
	row("", fmt.Sprintf("background (incl. ~%d Kea renewals per CE)", renewals), bg)
	for c := range udp {
		h := s.http[c]
		fmt.Printf("%s: UDP %d sent, %d lost; ICMP %d sent, %d lost; TCP echo %d lines, longest echo %v (at %v), %d stalls, %d reconnects; HTTP %d fetches (%d of 1 MiB), %d failed\n",
			names[c], udp[c].Sent, udp[c].Lost, icmpSent[c], len(icmp[c]), s.tcp[c].lines,
			s.tcp[c].maxRTT.Round(time.Millisecond), s.tcp[c].maxAt.Sub(s.start).Round(100*time.Millisecond),
			len(s.tcp[c].stallsAt()), s.tcp[c].reconnects, h.fetches, h.big, len(h.failuresAt()))
		for i, at := range s.tcp[c].stallsAt() {
			fmt.Printf("    TCP stall at %v: %v\n", at.Sub(s.start).Round(100*time.Millisecond), s.tcp[c].stallFor[i].Round(time.Millisecond))
		}
		if udp[c].Lost > 0 || len(icmp[c]) > 0 || len(s.tcp[c].stallsAt()) > 0 || len(h.failuresAt()) > 0 || s.tcp[c].reconnects > 0 {
			s.problem("%s: traffic lost (UDP %d, ICMP %d, TCP stalls %d, TCP reconnects %d, HTTP failures %d)", names[c],
				udp[c].Lost, len(icmp[c]), len(s.tcp[c].stallsAt()), s.tcp[c].reconnects, len(h.failuresAt()))
		}
	}
}

// procTrack samples one role's process. A restarted role is checked for
// leaks on its latest incarnation (first against last sample); the report
// shows the run's first sample too.
type procTrack struct {
	p           *testenv.Proc
	started     time.Time
	first, last sample // of the latest incarnation
	sampled     bool
	runStart    sample // the first incarnation's first sample
	restarts    int
	history     []sample
}

type sample struct {
	rss int64 // bytes
	fds int
}

func (s *soak) track(role string, p *testenv.Proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &procTrack{p: p, started: time.Now(), runStart: sample{rss: -1}}
	if old := s.procs[role]; old != nil {
		t.history, t.runStart, t.restarts = old.history, old.runStart, old.restarts+1
	}
	s.procs[role] = t
}

// sample reads every tracked process once it has settled.
func (s *soak) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for role, t := range s.procs {
		if t.p.Exited() {
			s.problems = append(s.problems, role+" exited:\n"+t.p.Output())
			continue
		}
		if time.Since(t.started) < settle {
			continue
		}
		sm, err := readProc(t.p.Cmd.Process.Pid)
		if err != nil {
			continue
		}
		if !t.sampled {
			t.first, t.sampled = sm, true
		}
		if t.runStart.rss < 0 {
			t.runStart = sm
		}
		t.last = sm
		t.history = append(t.history, sm)
	}
}

func readProc(pid int) (sample, error) {
	var sm sample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return sm, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			sm.rss = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return sm, err
	}
	sm.fds = len(fds)
	return sm, nil
}

func (s *soak) reportProcs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Printf("\nprocesses: RSS and open file descriptors at the start (first sample, 10 s after the process started; for a restarted one also its new incarnation's first sample) and at the end\n")
	fmt.Printf("%-18s %-8s %-22s %-12s %-12s %-8s %s\n", "process", "pid", "rss start (restarted)", "rss end", "fds start", "fds end", "samples every 30 s (rss MiB)")
	roles := make([]string, 0, len(s.procs))
	for r := range s.procs {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	for _, role := range roles {
		t := s.procs[role]
		var hist []string
		for _, h := range t.history {
			hist = append(hist, fmt.Sprintf("%.1f", float64(h.rss)/(1<<20)))
		}
		start, fds := mib(t.runStart.rss), fmt.Sprint(t.runStart.fds)
		if t.restarts > 0 {
			start += " (" + mib(t.first.rss) + ")"
			fds += fmt.Sprintf(" (%d)", t.first.fds)
		}
		fmt.Printf("%-18s %-8d %-22s %-12s %-12s %-8d %s\n", role, t.p.Cmd.Process.Pid, start, mib(t.last.rss), fds, t.last.fds, strings.Join(hist, " "))
		if !t.sampled {
			s.problems = append(s.problems, role+": never sampled (it ran less than 10 s?)")
			continue
		}
		if t.last.fds > t.first.fds+fdSlack {
			s.problems = append(s.problems, fmt.Sprintf("%s: open file descriptors %d -> %d", role, t.first.fds, t.last.fds))
		}
		if float64(t.last.rss) > max(float64(t.first.rss)*rssFactor, float64(t.first.rss+rssSlack)) {
			s.problems = append(s.problems, fmt.Sprintf("%s: RSS %s -> %s", role, mib(t.first.rss), mib(t.last.rss)))
		}
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// hooks counts the programs on the TCX hooks of the lab's translating
// devices: a restart, re-apply or reload that left a translator behind
// shows here as a longer chain. (Counting the kernel's programs would
// count other labs' too.)
func (s *soak) hooks() map[string]int {
	out := map[string]int{}
	l := s.l
	for _, h := range []struct {
		ns   *testenv.NS
		devs []string
	}{{l.CE11b, []string{"wan", "mapt0"}}, {l.CE774, []string{"wan", "mapt0"}}, {l.BR, []string{"eth0", "eth1", "maptbr0"}}} {
		h.ns.Do(func() error {
			for _, dev := range h.devs {
				ifc, err := net.InterfaceByName(dev)
				if err != nil {
					out[h.ns.Short+" "+dev+" missing"]++
					continue
				}
				for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
					if q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at}); err == nil && len(q.Programs) > 0 {
						out[fmt.Sprintf("%s %s %s", h.ns.Short, dev, at)] = len(q.Programs)
					}
				}
			}
			return nil
		})
	}
	return out
}

// pinger runs ping in a client namespace and finds the echoes that got no
// reply.
type pinger struct {
	p     *testenv.Proc
	start time.Time
}

const pingInterval = 200 * time.Millisecond

func startPing(ns *testenv.NS) *pinger {
	return &pinger{p: ns.Start("ping", "-n", "-i", "0.2", "-W", "2", testenv.SeedServer), start: time.Now()}
}

var pingReply = regexp.MustCompile(`icmp_seq=(\d+) ttl=`)

// stop ends ping and returns when each unanswered echo was sent, and how
// many were sent.
func (p *pinger) stop() ([]time.Time, int) {
	p.p.Signal(syscall.SIGINT)
	p.p.Wait(5 * time.Second)
	got := map[int]bool{}
	last := 0
	sc := bufio.NewScanner(strings.NewReader(p.p.Output()))
	for sc.Scan() {
		if m := pingReply.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			got[n] = true
			last = max(last, n)
		}
	}
	// Sequence numbers count from 1; the last few may have been cut off
	// by the SIGINT, so only echoes up to the last answered one count.
	var lost []time.Time
	for seq := 1; seq <= last; seq++ {
		if !got[seq] {
			lost = append(lost, p.start.Add(time.Duration(seq-1)*pingInterval))
		}
	}
	return lost, last
}

// tcpEcho keeps one TCP connection echoing a line every 100 ms.
type tcpEcho struct {
	ns         *testenv.NS
	done       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	stalls     []time.Time
	stallFor   []time.Duration
	lines      int
	reconnects int
	maxRTT     time.Duration
	maxAt      time.Time
}

// stallBound is the echo time that counts as a stall: a lost segment
// costs one retransmission timeout (200 ms and up) and a real outage
// shows in the UDP stream; a host as loaded as the lab's can take a
// second to schedule the echo.
const stallBound = 3 * time.Second

func startTCPEcho(ns *testenv.NS) *tcpEcho {
	e := &tcpEcho{ns: ns, done: make(chan struct{})}
	e.wg.Add(1)
	go e.run()
	return e
}

func (e *tcpEcho) run() {
	defer e.wg.Done()
	for first := true; ; first = false {
		c, err := e.ns.Dial("tcp", "", testenv.SeedServer+":7", 5*time.Second)
		if err != nil {
			e.mu.Lock()
			e.stalls = append(e.stalls, time.Now())
			e.mu.Unlock()
			select {
			case <-e.done:
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if !first {
			e.mu.Lock()
			e.reconnects++
			e.mu.Unlock()
		}
		r := bufio.NewReader(c)
		for seq := 0; ; seq++ {
			select {
			case <-e.done:
				c.Close()
				return
			case <-time.After(100 * time.Millisecond):
			}
			sent := time.Now()
			line := fmt.Sprintf("line %d\n", seq)
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(c, line); err != nil {
				break
			}
			got, err := r.ReadString('\n')
			if err != nil || got != line {
				break
			}
			e.mu.Lock()
			e.lines++
			rtt := time.Since(sent)
			if rtt > e.maxRTT {
				e.maxRTT, e.maxAt = rtt, sent
			}
			if rtt > stallBound {
				e.stalls = append(e.stalls, sent)
				e.stallFor = append(e.stallFor, rtt)
			}
			e.mu.Unlock()
		}
		c.Close()
	}
}

func (e *tcpEcho) stop() { close(e.done); e.wg.Wait() }

func (e *tcpEcho) stallsAt() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.stalls)
}

// httpLoad fetches the seed's page every second and 1 MiB every tenth
// time, each on a new connection (a new NAT mapping each).
type httpLoad struct {
	done     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	failures []time.Time
	fetches  int
	big      int
}

func startHTTP(ns *testenv.NS) *httpLoad {
	h := &httpLoad{done: make(chan struct{})}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return ns.Dial(network, "", addr, 5*time.Second)
		}}}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-h.done:
				return
			case <-time.After(time.Second):
			}
			path, want := "/index.html", int64(len(lab.Page))
			if i%10 == 9 {
				path, want = "/big", 1<<20
			}
			at := time.Now()
			resp, err := client.Get("http://" + testenv.SeedServer + path)
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			h.mu.Lock()
			h.fetches++
			if want == 1<<20 {
				h.big++
			}
			if err != nil || n != want {
				h.failures = append(h.failures, at)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *httpLoad) stop() { close(h.done); h.wg.Wait() }

func (h *httpLoad) failuresAt() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.failures)
}
