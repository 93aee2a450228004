package bench

import (
	"encoding/json"
	"fmt"
)

// IperfResult is what the benchmark takes from an iperf3 -J report.
type IperfResult struct {
	// ReceivedBPS is the receiver's goodput in bits per second.
	ReceivedBPS float64
	// SentPackets is the number of UDP datagrams the sender sent (0 for
	// TCP).
	SentPackets int64
	// Seconds is the length of the measured interval at the sender.
	Seconds float64
}

type iperfSum struct {
	Seconds       *float64 `json:"seconds"`
	BitsPerSecond *float64 `json:"bits_per_second"`
	Packets       *int64   `json:"packets"`
}

type iperfReport struct {
	Error string `json:"error"`
	End   *struct {
		SumSent     *iperfSum `json:"sum_sent"`
		SumReceived *iperfSum `json:"sum_received"`
	} `json:"end"`
}

// ParseIperf reads an iperf3 (3.7 or later) JSON report. udp says whether
// the test was a UDP one: then the sender's packet count is required.
func ParseIperf(b []byte, udp bool) (IperfResult, error) {
	var r iperfReport
	if err := json.Unmarshal(b, &r); err != nil {
		return IperfResult{}, fmt.Errorf("bench: iperf3 report: %w", err)
	}
	if r.Error != "" {
		return IperfResult{}, fmt.Errorf("bench: iperf3: %s", r.Error)
	}
	if r.End == nil || r.End.SumSent == nil || r.End.SumReceived == nil {
		return IperfResult{}, fmt.Errorf("bench: iperf3 report: no end.sum_sent/sum_received")
	}
	s, rcv := r.End.SumSent, r.End.SumReceived
	if rcv.BitsPerSecond == nil || *rcv.BitsPerSecond < 0 {
		return IperfResult{}, fmt.Errorf("bench: iperf3 report: end.sum_received.bits_per_second missing or negative")
	}
	if s.Seconds == nil || *s.Seconds <= 0 {
		return IperfResult{}, fmt.Errorf("bench: iperf3 report: end.sum_sent.seconds missing or not positive")
	}
	res := IperfResult{ReceivedBPS: *rcv.BitsPerSecond, Seconds: *s.Seconds}
	if udp {
		if s.Packets == nil || *s.Packets < 0 {
			return IperfResult{}, fmt.Errorf("bench: iperf3 report: end.sum_sent.packets missing or negative in a UDP test")
		}
		res.SentPackets = *s.Packets
	}
	return res, nil
}
