package testenv

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// Stream is a paced UDP stream to an echo server: each datagram carries a
// sequence number, and a datagram counts as delivered when its echo comes
// back, so a stream through a CE and the BR measures both directions of
// both translators. The restart tests and the soak count what it loses.
type Stream struct {
	conn     net.Conn
	interval time.Duration
	size     int

	mu   sync.Mutex
	sent []time.Time // by sequence number
	got  map[uint64]bool
	stop chan struct{}
	done sync.WaitGroup
}

// UDPStream sends pps datagrams a second of size bytes (at least 8) from
// n to addr (host:port), which must echo them, until Stop.
func (n *NS) UDPStream(addr string, pps, size int) (*Stream, error) {
	c, err := n.Dial("udp", "", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("testenv: stream to %s: %w", addr, err)
	}
	s := &Stream{conn: c, interval: time.Second / time.Duration(pps), size: max(size, 8), got: map[uint64]bool{}, stop: make(chan struct{})}
	s.done.Add(2)
	go s.send()
	go s.receive()
	return s, nil
}

func (s *Stream) send() {
	defer s.done.Done()
	buf := make([]byte, s.size)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for seq := uint64(0); ; seq++ {
		binary.BigEndian.PutUint64(buf, seq)
		s.mu.Lock()
		s.sent = append(s.sent, time.Now())
		s.mu.Unlock()
		s.conn.Write(buf) // a refused send is a loss like any other
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Stream) receive() {
	defer s.done.Done()
	buf := make([]byte, 65536)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return // Stop set the deadline
			}
			select {
			case <-s.stop:
				return
			default:
			}
			time.Sleep(time.Millisecond) // ECONNREFUSED from an ICMP error: keep reading
			continue
		}
		if n >= 8 {
			seq := binary.BigEndian.Uint64(buf)
			s.mu.Lock()
			s.got[seq] = true
			s.mu.Unlock()
		}
	}
}

// StreamResult is what a stream sent and lost.
type StreamResult struct {
	Sent, Lost int
	// Lost datagrams by send time, for attributing them to events.
	LostAt []time.Time
}

// Stop ends the stream, waits for the last echoes (grace) and returns
// what it sent and lost.
func (s *Stream) Stop(grace time.Duration) StreamResult {
	close(s.stop)
	time.Sleep(grace)
	s.conn.SetReadDeadline(time.Now())
	s.done.Wait()
	s.conn.Close()
	return s.Result()
}

// Result is what the stream has lost so far, leaving out the datagrams of
// the last second (their echoes may still be on the way).
func (s *Stream) Result() StreamResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r StreamResult
	cut := time.Now().Add(-time.Second)
	select {
	case <-s.stop:
		cut = time.Now().Add(time.Hour) // stopped: everything counts
	default:
	}
	for seq, at := range s.sent {
		if at.After(cut) {
			break
		}
		r.Sent++
		if !s.got[uint64(seq)] {
			r.Lost++
			r.LostAt = append(r.LostAt, at)
		}
	}
	return r
}

// LostBetween counts the datagrams of r sent in [from, to).
func (r StreamResult) LostBetween(from, to time.Time) int {
	n := 0
	for _, at := range r.LostAt {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
}
