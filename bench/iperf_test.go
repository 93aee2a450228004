package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseIperf(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name    string
		in      string
		udp     bool
		want    IperfResult
		wantErr string
	}{
		{name: "tcp", in: read("iperf3-tcp.json"), want: IperfResult{ReceivedBPS: 39894348426.7076, Seconds: 1.000216}},
		{name: "udp", in: read("iperf3-udp.json"), udp: true, want: IperfResult{ReceivedBPS: 76259251.37111975, SentPackets: 399420, Seconds: 1.000023}},
		{name: "udp reverse", in: read("iperf3-udp-reverse.json"), udp: true, want: IperfResult{ReceivedBPS: 55962490.856546715, SentPackets: 335630, Seconds: 1.002039}},
		{name: "tcp report read as udp", in: read("iperf3-tcp.json"), udp: true, wantErr: "sum_sent.packets missing"},
		{name: "iperf3 error", in: `{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}`, wantErr: "iperf3: unable to connect"},
		{name: "no end", in: `{"start":{}}`, wantErr: "no end.sum_sent"},
		{name: "no rate", in: `{"end":{"sum_sent":{"seconds":1},"sum_received":{}}}`, wantErr: "bits_per_second missing"},
		{name: "negative rate", in: `{"end":{"sum_sent":{"seconds":1},"sum_received":{"bits_per_second":-1}}}`, wantErr: "bits_per_second missing or negative"},
		{name: "zero seconds", in: `{"end":{"sum_sent":{"seconds":0},"sum_received":{"bits_per_second":1}}}`, wantErr: "seconds missing or not positive"},
		{name: "not json", in: `iperf3: error - unable to connect`, wantErr: "bench: iperf3 report:"},
		{name: "empty", in: ``, wantErr: "bench: iperf3 report:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIperf([]byte(tc.in), tc.udp)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzParseIperf: any bytes give a result or an error, never a panic, and
// a result is always usable (positive duration, no negative figures).
func FuzzParseIperf(f *testing.F) {
	for _, name := range []string{"iperf3-tcp.json", "iperf3-udp.json", "iperf3-udp-reverse.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Add([]byte(`{"end":{"sum_sent":{"seconds":1e400},"sum_received":{"bits_per_second":1}}}`), false)
	f.Add([]byte(`{"error":""}`), true)
	f.Fuzz(func(t *testing.T, b []byte, udp bool) {
		r, err := ParseIperf(b, udp)
		if err != nil {
			return
		}
		if r.Seconds <= 0 || r.ReceivedBPS < 0 || r.SentPackets < 0 || (!udp && r.SentPackets != 0) {
			t.Fatalf("unusable result %+v", r)
		}
	})
}
