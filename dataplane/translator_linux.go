package dataplane

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// Translator is a loaded set of translator programs and their maps.
type Translator struct {
	mode Mode
	coll *ebpf.Collection

	mu     sync.Mutex
	cfg    Config
	cap    int
	tables ruleTables
	slot   uint32

	attached   []attachment
	attachMode AttachMode
}

// Load loads the programs for cfg.Mode (without attaching them) and writes
// the configuration.
func Load(cfg Config) (*Translator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		spec *ebpf.CollectionSpec
		err  error
	)
	if cfg.Mode == CE {
		spec, err = loadCe()
	} else {
		spec, err = loadBr()
	}
	if err != nil {
		return nil, fmt.Errorf("dataplane: load %s spec: %w", cfg.Mode, err)
	}
	capacity := cfg.capacity()
	for _, name := range []string{"rules_v4", "rules_v6", "rules_psid"} {
		spec.Maps[name].MaxEntries = uint32(capacity)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("dataplane: load %s programs: %+v", cfg.Mode, ve)
		}
		return nil, fmt.Errorf("dataplane: load %s programs: %w", cfg.Mode, err)
	}
	t := &Translator{mode: cfg.Mode, coll: coll, cap: capacity, slot: 1}
	t.tables = ruleTables{}
	if err := t.Update(cfg); err != nil {
		coll.Close()
		return nil, err
	}
	return t, nil
}

// Mode reports whether this is a CE or a BR translator.
func (t *Translator) Mode() Mode { return t.mode }

// Config returns the configuration last written.
func (t *Translator) Config() Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg
}

// Update replaces the configuration. Rules are inserted or replaced before
// stale ones are deleted, and the binding/DMR go to the idle config slot
// before the active index flips, so a packet never sees a half-written
// configuration.
func (t *Translator) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Mode != t.mode {
		return fmt.Errorf("dataplane: update: mode %v, translator is %v", cfg.Mode, t.mode)
	}
	tables, err := buildTables(cfg.FMRs)
	if err != nil {
		return err
	}
	if tables.size() > t.cap {
		return fmt.Errorf("dataplane: update: %d rules exceed the capacity %d set at load", tables.size(), t.cap)
	}
	t.mu.Lock()
	defer t.mu.Unlock()

	m := t.coll.Maps
	for k, v := range tables.v6 {
		if err := m["rules_v6"].Put(k, v); err != nil {
			return fmt.Errorf("dataplane: update: rules_v6: %w", err)
		}
	}
	for k, v := range tables.psid {
		if err := m["rules_psid"].Put(k, v); err != nil {
			return fmt.Errorf("dataplane: update: rules_psid: %w", err)
		}
	}
	for k, v := range tables.v4 {
		if err := m["rules_v4"].Put(k, v); err != nil {
			return fmt.Errorf("dataplane: update: rules_v4: %w", err)
		}
	}
	slot := t.slot ^ 1
	if err := m["config"].Put(slot, encodeConfig(cfg)); err != nil {
		return fmt.Errorf("dataplane: update: config: %w", err)
	}
	if err := m["active"].Put(uint32(0), slot); err != nil {
		return fmt.Errorf("dataplane: update: active: %w", err)
	}
	t.slot = slot
	for k := range t.tables.v4 {
		if _, keep := tables.v4[k]; !keep {
			if err := m["rules_v4"].Delete(k); err != nil {
				return fmt.Errorf("dataplane: update: delete rules_v4: %w", err)
			}
		}
	}
	for k := range t.tables.psid {
		if _, keep := tables.psid[k]; !keep {
			if err := m["rules_psid"].Delete(k); err != nil {
				return fmt.Errorf("dataplane: update: delete rules_psid: %w", err)
			}
		}
	}
	for k := range t.tables.v6 {
		if _, keep := tables.v6[k]; !keep {
			if err := m["rules_v6"].Delete(k); err != nil {
				return fmt.Errorf("dataplane: update: delete rules_v6: %w", err)
			}
		}
	}
	t.tables = tables
	t.cfg = cfg
	return nil
}

// Counters returns the packet counters by reason, summed over CPUs.
func (t *Translator) Counters() (map[string]uint64, error) {
	out := make(map[string]uint64, len(counterNames))
	m := t.coll.Maps["counters"]
	for i, name := range counterNames {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("dataplane: counters: %s: %w", name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// MapMemory is the kernel memory charged to the translator's maps (the
// memlock figure of each map, summed).
func (t *Translator) MapMemory() (uint64, error) {
	var sum uint64
	for name, m := range t.coll.Maps {
		info, err := m.Info()
		if err != nil {
			return 0, fmt.Errorf("dataplane: map %s info: %w", name, err)
		}
		if n, ok := info.Memlock(); ok {
			sum += n
		}
	}
	return sum, nil
}

// Prog4to6 is the program translating IPv4 to IPv6 (CE: uplink egress;
// BR: IPv4-side ingress).
func (t *Translator) Prog4to6() *ebpf.Program {
	if t.mode == CE {
		return t.coll.Programs["ce_egress"]
	}
	return t.coll.Programs["br_ingress4"]
}

// Prog6to4 is the program translating IPv6 to IPv4 (CE: WAN ingress; BR:
// IPv6-side ingress).
func (t *Translator) Prog6to4() *ebpf.Program {
	if t.mode == CE {
		return t.coll.Programs["ce_ingress"]
	}
	return t.coll.Programs["br_ingress6"]
}

// Close detaches the programs and releases them and their maps.
func (t *Translator) Close() error {
	err := t.Detach()
	t.coll.Close()
	return err
}
