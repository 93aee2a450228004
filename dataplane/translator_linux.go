package dataplane

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ruleMaps are the maps sized by Config.Capacity.
var ruleMaps = []string{"rules_v4", "rules_v6", "rules_psid", "rules_v4x", "rules_v6x"}

// preallocMax is the capacity up to which the rule hashes are
// preallocated. Without preallocation (BPF_F_NO_PREALLOC) elements come
// from the BPF memory allocator, whose per-CPU free lists are refilled
// from irq_work; where the architecture cannot raise irq_work itself
// (MIPS) that waits for the next timer tick, and inserts from user space
// fail with ENOMEM after a handful of elements. Preallocated maps cost
// their full size up front: about 100 bytes an entry, 6.5 MiB a map at
// this limit. Beyond it (BRs with tens of thousands of 1:1 rules) the maps
// are allocated on demand and inserts retry ENOMEM (putAll).
const preallocMax = 1 << 16

// enomemRetries and enomemBackoff bound the retries of an insert that
// failed for want of a free element (see preallocMax): one timer tick
// refills the lists, 10 ms covers HZ=100.
const (
	enomemRetries = 50
	enomemBackoff = 10 * time.Millisecond
)

// Translator is a loaded set of translator programs and their maps.
type Translator struct {
	mode  Mode
	coll  *ebpf.Collection
	names []string // counter names by index (enum reason)

	mu     sync.Mutex
	cfg    Config
	cap    int
	tables ruleTables
	slot   uint32

	attached   []attachment
	attachMode AttachMode
	closed     bool

	// pin is where the translator is pinned (LoadPinned); nil when it
	// lives only as long as this process's file descriptors.
	pin *pinState
	// awaitAttach is set while an adopted translator (AdoptKept) runs the
	// configuration of the earlier run: a configuration without devices
	// is not written until Attach supplies them, so that the live
	// programs never see one.
	awaitAttach bool
}

// Load loads the programs for cfg.Mode (without attaching them) and writes
// the configuration.
func Load(cfg Config) (*Translator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := CheckKernel(); err != nil {
		return nil, err
	}
	spec, names, tails, err := loadSpec(cfg.Mode)
	if err != nil {
		return nil, err
	}
	capacity := cfg.capacity()
	sizeMaps(spec, capacity)
	coll, err := newCollection(spec, cfg.Mode, tails)
	if err != nil {
		return nil, err
	}
	t := &Translator{mode: cfg.Mode, coll: coll, names: names, cap: capacity, slot: 1}
	t.tables = ruleTables{}
	if err := t.Update(cfg); err != nil {
		coll.Close()
		return nil, err
	}
	return t, nil
}

// loadSpec reads the object for mode, with the names of its counters and
// of its tail-call programs.
func loadSpec(mode Mode) (spec *ebpf.CollectionSpec, names, tails []string, err error) {
	if mode == CE {
		spec, err = loadCe()
	} else {
		spec, err = loadBr()
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dataplane: load %s spec: %w", mode, err)
	}
	if names, err = reasonNames(spec); err != nil {
		return nil, nil, nil, err
	}
	if tails, err = tailNames(spec); err != nil {
		return nil, nil, nil, err
	}
	if programVariant != "" {
		for _, p := range spec.Programs {
			p.Instructions = variantOf(p.Instructions)
		}
	}
	return spec, names, tails, nil
}

// sizeMaps sets the rule maps' size, preallocated up to preallocMax.
func sizeMaps(spec *ebpf.CollectionSpec, capacity int) {
	for _, name := range ruleMaps {
		m := spec.Maps[name]
		m.MaxEntries = uint32(capacity)
		if m.Type == ebpf.Hash && capacity <= preallocMax {
			m.Flags &^= unix.BPF_F_NO_PREALLOC
		} else if m.Type == ebpf.Hash {
			m.Flags |= unix.BPF_F_NO_PREALLOC
		}
	}
}

// newCollection loads the programs and maps of spec and fills the
// tail-call array.
func newCollection(spec *ebpf.CollectionSpec, mode Mode, tails []string) (*ebpf.Collection, error) {
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		// A *ebpf.VerifierError inside carries the whole log (%+v).
		return nil, fmt.Errorf("dataplane: load %s programs: %w", mode, err)
	}
	for i, name := range tails {
		prog := coll.Programs[name]
		if prog == nil {
			coll.Close()
			return nil, fmt.Errorf("dataplane: tail call %d: no program %s in the %s object", i, name, mode)
		}
		if err := coll.Maps["tails"].Put(uint32(i), prog); err != nil {
			coll.Close()
			return nil, fmt.Errorf("dataplane: tail call %s: %w", name, err)
		}
	}
	return coll, nil
}

// Mode reports whether this is a CE or a BR translator.
func (t *Translator) Mode() Mode { return t.mode }

// Config returns the configuration last written.
func (t *Translator) Config() Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg
}

// Update replaces the configuration; a cfg without device indexes keeps
// the ones Attach set. Rules are inserted or replaced before
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
	t.mu.Lock()
	if cfg.IPv6Side == (Link{}) && cfg.IPv4Side == (Link{}) && cfg.Local == (Link{}) {
		// What Attach learnt about the devices survives a new binding or
		// rule set built from scratch.
		cfg.IPv6Side, cfg.IPv4Side, cfg.Local = t.cfg.IPv6Side, t.cfg.IPv4Side, t.cfg.Local
	}
	t.mu.Unlock()
	tables, err := buildTables(cfg.FMRs)
	if err != nil {
		return err
	}
	if tables.size() > t.cap {
		return fmt.Errorf("dataplane: update: %d rules exceed the capacity %d set at load", tables.size(), t.cap)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.awaitAttach && cfg.IPv6Side.Ifindex == 0 {
		// Adopted and not attached yet: the pinned configuration goes
		// on until Attach brings the devices.
		t.cfg = cfg
		return nil
	}
	t.awaitAttach = false

	m := t.coll.Maps
	if err := putAll(m["rules_v6"], tables.v6); err != nil {
		return fmt.Errorf("dataplane: update: rules_v6: %w", err)
	}
	if err := putAll(m["rules_v6x"], tables.v6x); err != nil {
		return fmt.Errorf("dataplane: update: rules_v6x: %w", err)
	}
	if err := putAll(m["rules_psid"], tables.psid); err != nil {
		return fmt.Errorf("dataplane: update: rules_psid: %w", err)
	}
	if err := putAll(m["rules_v4"], tables.v4); err != nil {
		return fmt.Errorf("dataplane: update: rules_v4: %w", err)
	}
	if err := putAll(m["rules_v4x"], tables.v4x); err != nil {
		return fmt.Errorf("dataplane: update: rules_v4x: %w", err)
	}
	slot := t.slot ^ 1
	if err := m["config"].Put(slot, encodeConfig(cfg, tables)); err != nil {
		return fmt.Errorf("dataplane: update: config: %w", err)
	}
	if err := m["active"].Put(uint32(0), slot); err != nil {
		return fmt.Errorf("dataplane: update: active: %w", err)
	}
	t.slot = slot
	for _, err := range []error{
		deleteStale(m["rules_v4"], t.tables.v4, tables.v4),
		deleteStale(m["rules_v4x"], t.tables.v4x, tables.v4x),
		deleteStale(m["rules_psid"], t.tables.psid, tables.psid),
		deleteStale(m["rules_v6"], t.tables.v6, tables.v6),
		deleteStale(m["rules_v6x"], t.tables.v6x, tables.v6x),
	} {
		if err != nil {
			return fmt.Errorf("dataplane: update: %w", err)
		}
	}
	t.tables = tables
	t.cfg = cfg
	return nil
}

// putAll writes every entry, in batches where the map type allows it
// (hash maps, Linux 5.6+), which matters for a million 1:1 rules.
func putAll[K comparable, V any](m *ebpf.Map, entries map[K]V) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]K, 0, len(entries))
	vals := make([]V, 0, len(entries))
	for k, v := range entries {
		keys = append(keys, k)
		vals = append(vals, v)
	}
	start := 0
	if m.Type() == ebpf.Hash && len(keys) > 64 {
		const batch = 16384
		retries := 0
		for start < len(keys) {
			j := min(start+batch, len(keys))
			n, err := m.BatchUpdate(keys[start:j], vals[start:j], nil)
			start += n
			if n > 0 {
				retries = 0 // the bound is on retries without progress
			}
			if err == nil {
				continue
			}
			if errors.Is(err, ebpf.ErrNotSupported) {
				break // before 5.6: one by one
			}
			if !errors.Is(err, unix.ENOMEM) || retries == enomemRetries {
				return err
			}
			retries++
			time.Sleep(enomemBackoff)
		}
	}
	for i := start; i < len(keys); i++ {
		if err := putRetry(m, keys[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// putRetry is Put retrying ENOMEM a bounded number of times (preallocMax).
func putRetry(m *ebpf.Map, k, v any) error {
	for retries := 0; ; retries++ {
		err := m.Put(k, v)
		if err == nil || !errors.Is(err, unix.ENOMEM) || retries == enomemRetries {
			return err
		}
		time.Sleep(enomemBackoff)
	}
}

// deleteStale removes the keys of old that are not in cur.
func deleteStale[K comparable, V any](m *ebpf.Map, old, cur map[K]V) error {
	for k := range old {
		if _, keep := cur[k]; keep {
			continue
		}
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete stale rule: %w", err)
		}
	}
	return nil
}

// Counters returns the packet counters by reason, summed over CPUs.
func (t *Translator) Counters() (map[string]uint64, error) {
	return t.sum("counters")
}

// Bytes returns the bytes of translated packets (after translation) by
// counter name, summed over CPUs; only the translation counters (ce_4to6,
// br_6to4, br_hairpin, ...) move.
func (t *Translator) Bytes() (map[string]uint64, error) {
	return t.sum("bytes")
}

func (t *Translator) sum(mapName string) (map[string]uint64, error) {
	out, err := SumPerCPU(t.coll.Maps[mapName], t.names)
	if err != nil {
		return nil, fmt.Errorf("dataplane: %s: %w", mapName, err)
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
func (t *Translator) Prog4to6() *ebpf.Program { return t.coll.Programs[t.name4to6()] }

// Prog6to4 is the program translating IPv6 to IPv4 (CE: WAN ingress; BR:
// IPv6-side ingress).
func (t *Translator) Prog6to4() *ebpf.Program { return t.coll.Programs[t.name6to4()] }

// Close detaches the programs and releases them and their maps, and
// removes the pins of a pinned translator: nothing of it is left. Closing
// twice is harmless.
func (t *Translator) Close() error {
	err := t.Detach()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		t.coll.Close()
		if t.pin != nil {
			err = errors.Join(err, removePins(t.pin.dir))
		}
	}
	return err
}

// LeaveInPlace releases this process's hold on the translator and leaves
// it running: pinned links and maps stay in the BPF filesystem (a restart
// adopts them with LoadPinned) and cls_bpf filters stay on their hooks.
// An unpinned translator on TCX stops with its links. Closing afterwards
// is harmless.
func (t *Translator) LeaveInPlace() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for _, a := range t.attached {
		errs = append(errs, a.release())
	}
	t.attached = nil
	t.coll.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dataplane: leave in place: %w", err)
	}
	return nil
}
