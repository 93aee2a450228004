package provision

import (
	"fmt"
	"maps"
	"sync"
	"time"
)

// Why the client dropped or trimmed what it received. The names are the
// keys of Stats.Counters and a stable interface (ce-agent status --json).
const (
	// DropMalformed: not a DHCPv6 message (RFC 8415 s8), or options that
	// cannot be decoded where they matter (client or server identifier,
	// IA_PD, status code).
	DropMalformed = "malformed"
	// DropUnexpected: a message type a client does not act on here
	// (RFC 8415 s16: only Advertise and Reply; Reconfigure is not
	// supported).
	DropUnexpected = "unexpected_type"
	// DropStale: a transaction ID that is not the one of the exchange in
	// progress (RFC 8415 s16.3, s16.10).
	DropStale = "stale_transaction"
	// DropForeign: another client's answer, or one without a server
	// identifier (RFC 8415 s16.3, s16.10).
	DropForeign = "not_for_us"
	// DropWrongServer: a Reply to Request or Renew from a server other
	// than the one the message was addressed to by its Server Identifier
	// (RFC 8415 s18.2.2, s18.2.4); a rogue on-link server must not be
	// able to renumber or withdraw the CE.
	DropWrongServer = "wrong_server"
	// DropUnusable: an Advertise or Reply that answers us but gives no
	// lease (NoPrefixAvail, lifetimes 0, T1 > T2: RFC 8415 s18.2.9,
	// s21.21).
	DropUnusable = "unusable"
	// DropOverflow: more answers queued than the client reads (an
	// Advertise flood); the excess is dropped, as a full socket buffer
	// would drop it.
	DropOverflow = "overflow"
	// IgnoredOption: an option that could not be decoded, or carried
	// values unsafe to pass on (a domain name with characters outside
	// letters, digits, '-' and '_'), left out of an otherwise good message.
	IgnoredOption = "ignored_option"
	// IgnoredContainer: an S46 container left out of a lease: invalid
	// (RFC 7598 s6), of a mechanism not implemented (MAP-E, lw4o6), or not
	// the one the server's S46 priority chose (RFC 8026).
	IgnoredContainer = "ignored_container"
)

// Stats counts what the client received and why it dropped what it
// dropped. Counters counts by the reasons above; Last is the most recent
// reason with its detail, for an operator wondering why nothing binds.
type Stats struct {
	Received   uint64            `json:"received"`
	Advertises uint64            `json:"advertises"`
	Replies    uint64            `json:"replies"`
	Counters   map[string]uint64 `json:"counters,omitempty"`
	Last       string            `json:"last,omitempty"`
	LastAt     time.Time         `json:"last_at,omitzero"`
}

// stats is the client's live Stats; the reader goroutine and Run both
// update it, and Stats() copies it for the agent's status.
type stats struct {
	mu sync.Mutex
	s  Stats
}

func (st *stats) received(advertise, reply bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Received++
	if advertise {
		st.s.Advertises++
	}
	if reply {
		st.s.Replies++
	}
}

// count adds n to reason's counter and records the reason as the last.
func (st *stats) count(now time.Time, reason string, n int, format string, args ...any) {
	if n <= 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.s.Counters == nil {
		st.s.Counters = map[string]uint64{}
	}
	st.s.Counters[reason] += uint64(n)
	st.s.Last = reason + ": " + fmt.Sprintf(format, args...)
	st.s.LastAt = now.UTC()
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.s
	s.Counters = maps.Clone(st.s.Counters)
	return s
}
