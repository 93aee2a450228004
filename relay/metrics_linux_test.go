package relay

import (
	"log/slog"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/mapt-go/mapt/dataplane"
	"github.com/mapt-go/mapt/domainfile"
	"github.com/mapt-go/mapt/testenv"
)

func gather(t *testing.T, r *Relay) map[string][]*dto.Metric {
	t.Helper()
	mfs, err := newRegistry(r).Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetMetric()
	}
	return out
}

func value(ms []*dto.Metric) float64 {
	if len(ms) != 1 {
		return -1
	}
	m := ms[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return -1
}

// TestCollectorReadFailure reads a real translator's counters, then
// closes it under the collector: the scrape then says it failed
// (mapt_br_up 0, one more scrape error) instead of silently dropping the
// series, and the other metrics are still served.
func TestCollectorReadFailure(t *testing.T) {
	testenv.Require(t)
	f, err := domainfile.Load("../domainfile/testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, _ := translatorConfigs(f)
	xl, err := dataplane.Load(cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer xl.Close()
	r := &Relay{log: slog.New(slog.DiscardHandler), file: f, groups: []*group{{xl: xl, local: &localRoutes{}}}}
	r.state.record(true, 1)
	m := gather(t, r)
	if value(m["mapt_br_up"]) != 1 || value(m["mapt_br_scrape_errors_total"]) != 0 {
		t.Fatalf("up %v errors %v", value(m["mapt_br_up"]), value(m["mapt_br_scrape_errors_total"]))
	}
	if len(m["mapt_br_translated_packets_total"]) != 3 || m["mapt_br_translated_packets_total"][0].Label[0].GetValue() == "" {
		t.Fatalf("translated: %v", m["mapt_br_translated_packets_total"])
	}
	bi := m["mapt_br_build_info"]
	if len(bi) != 1 || len(bi[0].Label) != 2 || bi[0].Label[0].GetName() != "goversion" || bi[0].Label[1].GetValue() == "" {
		t.Fatalf("build info: %v", bi)
	}
	if len(m["process_cpu_seconds_total"]) != 1 || len(m["go_goroutines"]) != 1 {
		t.Fatal("no process or Go runtime metrics")
	}
	xl.Close()
	m = gather(t, r)
	if value(m["mapt_br_up"]) != 0 || value(m["mapt_br_scrape_errors_total"]) != 1 {
		t.Fatalf("after close: up %v errors %v", value(m["mapt_br_up"]), value(m["mapt_br_scrape_errors_total"]))
	}
	if len(m["mapt_br_translated_packets_total"]) != 0 || value(m["mapt_br_rules"]) != 1 {
		t.Fatalf("after close: translated %v rules %v", m["mapt_br_translated_packets_total"], m["mapt_br_rules"])
	}
}
