package nat

import "fmt"

// InsertFailed is the kernel's count, in the NAT's network namespace, of
// new connections conntrack could not insert: with SNAT into a port set,
// the ones that found no free port (NAT exhaustion), whose first packet is
// dropped. It counts since the namespace was made, summed over CPUs; a
// rising value means the port set is full for some destination.
func (n *NAT) InsertFailed() (uint64, error) {
	st, err := n.ct.Stats()
	if err != nil {
		return 0, fmt.Errorf("nat: conntrack statistics: %w", err)
	}
	var sum uint64
	for _, s := range st {
		sum += uint64(s.InsertFailed)
	}
	return sum, nil
}
