package relay

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mapt-go/mapt/internal/version"
)

// translated maps counter names to a direction label; the rest are drops
// (or, for "pass", traffic that is not ours).
var translated = map[string]string{
	"br_4to6":    "4to6",
	"br_6to4":    "6to4",
	"br_hairpin": "hairpin",
}

// notDrops are counters that are neither translations nor drops: the CE
// counters stay zero on a BR, the source check's passes, and what the BR
// hands its stack to fragment.
var notDrops = map[string]bool{
	"ce_4to6": true, "ce_6to4": true, "pass": true, "br_via_stack": true, "br_fast": true,
	"icmp_sent": true, "icmp_limited": true,
	"savi_checked": true, "savi_exempt": true, "savi_unverified": true,
}

// icmpResults are the counters of the ICMP errors the translator itself
// sends (RFC 7915 s4.4, s5.4; RFC 7599 s8.2-8.3), by result label.
var icmpResults = map[string]string{"icmp_sent": "sent", "icmp_limited": "rate_limited"}

// newRegistry is what /metrics serves: the BR's own metrics, and the
// process and Go runtime collectors (memory, file descriptors, GC), so
// that a NOC sees a leaking or restarting BR.
func newRegistry(r *Relay) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(r), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}

// collector turns the translators' per-CPU counters into metrics at
// scrape time, so the packet path pays nothing for them. Each translator
// (one per DMR) is a series of its own, labelled with the domains it
// serves.
type collector struct {
	r *Relay

	scrapeErrors atomic.Uint64

	packets, bytes, drops, passed, viaStack, fast, icmp, rules, reloadTime, reloadOK, reloads *prometheus.Desc
	up, scrapeErrs, buildInfo, healthy, attached, announced                                   *prometheus.Desc
}

func newCollector(r *Relay) *collector {
	dom := []string{"domain"}
	return &collector{
		r:          r,
		packets:    prometheus.NewDesc("mapt_br_translated_packets_total", "Packets translated, by domain (the domains sharing a translator, comma-separated) and direction.", []string{"domain", "direction"}, nil),
		bytes:      prometheus.NewDesc("mapt_br_translated_bytes_total", "Bytes of translated packets (as sent), by domain and direction.", []string{"domain", "direction"}, nil),
		drops:      prometheus.NewDesc("mapt_br_dropped_packets_total", "Packets dropped, by domain and reason; the source check's (savi_*) have domain \"\": it runs before any domain's translator.", []string{"domain", "reason"}, nil),
		passed:     prometheus.NewDesc("mapt_br_passed_packets_total", "Packets that are not MAP-T traffic, left to the stack, by domain.", dom, nil),
		viaStack:   prometheus.NewDesc("mapt_br_via_stack_packets_total", "IPv4 packets for CEs handed to the BR's stack to be fragmented before translation (fragments, and DF-clear packets too big for the IPv6 side), by domain.", dom, nil),
		fast:       prometheus.NewDesc("mapt_br_fast_path_packets_total", "Translated packets the BR sent to their next hop itself (FIB lookup), not through its stack, by domain; the rest of the translated packets took the stack.", dom, nil),
		icmp:       prometheus.NewDesc("mapt_br_icmp_errors_total", "ICMP errors the translator generated itself, by domain and result (sent, or rate_limited: held back by the rate limit).", []string{"domain", "result"}, nil),
		rules:      prometheus.NewDesc("mapt_br_rules", "Mapping rules loaded.", nil, nil),
		reloadTime: prometheus.NewDesc("mapt_br_last_reload_timestamp_seconds", "When the domain file was last (re)loaded or tried.", nil, nil),
		reloadOK:   prometheus.NewDesc("mapt_br_last_reload_success", "1 when the last reload succeeded.", nil, nil),
		reloads:    prometheus.NewDesc("mapt_br_reloads_total", "Reload attempts, by result.", []string{"result"}, nil),
		up:         prometheus.NewDesc("mapt_br_up", "1 when every BPF counter was read in this scrape; 0 when a read failed and series are missing.", nil, nil),
		scrapeErrs: prometheus.NewDesc("mapt_br_scrape_errors_total", "Scrapes in which reading the BPF counters failed.", nil, nil),
		buildInfo:  prometheus.NewDesc("mapt_br_build_info", "Always 1; the labels say which build runs.", []string{"version", "goversion"}, nil),
		healthy:    prometheus.NewDesc("mapt_br_healthy", "1 when the last health check passed (see /healthz).", nil, nil),
		attached:   prometheus.NewDesc("mapt_br_translator_attached", "1 when the domain's translator is on its hooks in the kernel, at the last health check.", dom, nil),
		announced:  prometheus.NewDesc("mapt_br_anycast_announced_routes", "Routes the BR has in its anycast table for the routing daemon to announce (0 while unhealthy).", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.drops, c.passed, c.viaStack, c.fast, c.icmp, c.rules, c.reloadTime, c.reloadOK, c.reloads,
		c.up, c.scrapeErrs, c.buildInfo, c.healthy, c.attached, c.announced} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ok := c.collectCounters(ch)
	if !ok {
		c.scrapeErrors.Add(1)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(ok))
	ch <- prometheus.MustNewConstMetric(c.scrapeErrs, prometheus.CounterValue, float64(c.scrapeErrors.Load()))
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, version.Number(), runtime.Version())
	s := c.r.state.snapshot()
	ch <- prometheus.MustNewConstMetric(c.rules, prometheus.GaugeValue, float64(s.rules))
	ch <- prometheus.MustNewConstMetric(c.reloadTime, prometheus.GaugeValue, float64(s.last.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(c.reloadOK, prometheus.GaugeValue, b2f(s.lastOK))
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(s.ok), "ok")
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(s.failed), "failed")
	if h := c.r.health; h != nil {
		hs := h.snapshot()
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, b2f(len(hs.problems) == 0))
		for domain, on := range hs.attached {
			ch <- prometheus.MustNewConstMetric(c.attached, prometheus.GaugeValue, b2f(on), domain)
		}
		if hs.anycast {
			ch <- prometheus.MustNewConstMetric(c.announced, prometheus.GaugeValue, float64(hs.announced))
		}
	}
}

// collectCounters sends every translator's counters, and the source
// check's; it reports false when a read failed (those series are then
// missing from this scrape, and mapt_br_up says so).
func (c *collector) collectCounters(ch chan<- prometheus.Metric) bool {
	groups, labels := c.r.snapshotGroups()
	ok := len(groups) > 0
	for i, g := range groups {
		domain := labels[i]
		b, err := g.xl.Bytes()
		if err != nil {
			c.r.log.Debug("metrics: read bytes", "domain", domain, "err", err)
			ok = false
		} else {
			for name, dir := range translated {
				ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(b[name]), domain, dir)
			}
		}
		counters, err := g.xl.Counters()
		if err != nil {
			c.r.log.Debug("metrics: read counters", "domain", domain, "err", err)
			ok = false
			continue
		}
		for name, v := range counters {
			switch dir, tr := translated[name]; {
			case tr:
				ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(v), domain, dir)
			case name == "pass":
				ch <- prometheus.MustNewConstMetric(c.passed, prometheus.CounterValue, float64(v), domain)
			case name == "br_via_stack":
				ch <- prometheus.MustNewConstMetric(c.viaStack, prometheus.CounterValue, float64(v), domain)
			case name == "br_fast":
				ch <- prometheus.MustNewConstMetric(c.fast, prometheus.CounterValue, float64(v), domain)
			case icmpResults[name] != "":
				ch <- prometheus.MustNewConstMetric(c.icmp, prometheus.CounterValue, float64(v), domain, icmpResults[name])
			case notDrops[name]:
			default:
				ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), domain, name)
			}
		}
	}
	c.r.mu.Lock()
	check := c.r.savi
	c.r.mu.Unlock()
	if check != nil {
		sc, err := check.Counters()
		if err != nil {
			c.r.log.Debug("metrics: read source check counters", "err", err)
			return false
		}
		for name, v := range sc {
			if !notDrops["savi_"+name] {
				ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), "", "savi_"+name)
			}
		}
	}
	return ok
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// reloadState is what the metrics report about reloads.
type reloadState struct {
	mu         sync.Mutex
	rules      int
	last       time.Time
	lastOK     bool
	ok, failed uint64
}

type reloadSnapshot struct {
	rules      int
	last       time.Time
	lastOK     bool
	ok, failed uint64
}

func (s *reloadState) record(ok bool, rules int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.lastOK = time.Now(), ok
	if ok {
		s.ok++
		s.rules = rules
	} else {
		s.failed++
	}
}

func (s *reloadState) snapshot() reloadSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return reloadSnapshot{s.rules, s.last, s.lastOK, s.ok, s.failed}
}
