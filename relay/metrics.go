package relay

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// translated maps counter names to a direction label; the rest are drops
// (or, for "pass", traffic that is not ours).
var translated = map[string]string{
	"br_4to6":    "4to6",
	"br_6to4":    "6to4",
	"br_hairpin": "hairpin",
}

// collector turns the translator's per-CPU counters into metrics at
// scrape time, so the packet path pays nothing for them.
type collector struct {
	r *Relay

	packets, bytes, drops, passed, rules, reloadTime, reloadOK, reloads *prometheus.Desc
}

func newCollector(r *Relay) *collector {
	return &collector{
		r:          r,
		packets:    prometheus.NewDesc("mapt_br_translated_packets_total", "Packets translated, by direction.", []string{"direction"}, nil),
		bytes:      prometheus.NewDesc("mapt_br_translated_bytes_total", "Bytes of translated packets (as sent), by direction.", []string{"direction"}, nil),
		drops:      prometheus.NewDesc("mapt_br_dropped_packets_total", "Packets dropped, by reason.", []string{"reason"}, nil),
		passed:     prometheus.NewDesc("mapt_br_passed_packets_total", "Packets that are not MAP-T traffic, left to the stack.", nil, nil),
		rules:      prometheus.NewDesc("mapt_br_rules", "Mapping rules loaded.", nil, nil),
		reloadTime: prometheus.NewDesc("mapt_br_last_reload_timestamp_seconds", "When the domain file was last (re)loaded or tried.", nil, nil),
		reloadOK:   prometheus.NewDesc("mapt_br_last_reload_success", "1 when the last reload succeeded.", nil, nil),
		reloads:    prometheus.NewDesc("mapt_br_reloads_total", "Reload attempts, by result.", []string{"result"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.drops, c.passed, c.rules, c.reloadTime, c.reloadOK, c.reloads} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if b, err := c.r.bytes(); err == nil {
		for name, dir := range translated {
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(b[name]), dir)
		}
	}
	counters, err := c.r.counters()
	if err == nil {
		for name, v := range counters {
			switch dir, ok := translated[name]; {
			case ok:
				ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(v), dir)
			case name == "pass":
				ch <- prometheus.MustNewConstMetric(c.passed, prometheus.CounterValue, float64(v))
			case name == "ce_4to6" || name == "ce_6to4" || name == "savi_checked" || name == "savi_exempt" || name == "savi_unverified" || name == "br_via_stack":
				// CE counters stay zero on a BR; the check's passes are
				// not drops.
			default:
				ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), name)
			}
		}
	}
	s := c.r.state.snapshot()
	ch <- prometheus.MustNewConstMetric(c.rules, prometheus.GaugeValue, float64(s.rules))
	ch <- prometheus.MustNewConstMetric(c.reloadTime, prometheus.GaugeValue, float64(s.last.UnixNano())/1e9)
	ok := 0.0
	if s.lastOK {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(c.reloadOK, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(s.ok), "ok")
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(s.failed), "failed")
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
