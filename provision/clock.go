package provision

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"time"
)

// clock is the client's time source. The real one is the wall clock; the
// exchange fuzzer (fuzz_exchange_test.go) substitutes a virtual one whose
// timers fire at once, so that a whole lease life runs in microseconds and
// the same input always drives the state machine the same way.
type clock interface {
	now() time.Time
	// timer returns a channel that receives once d has passed, and a
	// function that stops it.
	timer(d time.Duration) (<-chan time.Time, func())
}

type wallClock struct{}

func (wallClock) now() time.Time { return time.Now() }

func (wallClock) timer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// newRand returns the client's source of retransmission jitter (RFC 8415
// s15 RAND), seeded from the system's randomness: clients that start
// together (a power cut across a street) must not retransmit in step.
func newRand() *rand.Rand {
	var seed [16]byte
	crand.Read(seed[:])
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}
