package rpfilter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before map[string]string // device: rp_filter
		after  map[string]string
		change bool
	}{
		{"nothing filtered", map[string]string{"all": "0", "default": "0", "wan": "0", "lan": "0"},
			map[string]string{"all": "0", "default": "0", "wan": "0", "lan": "0"}, false},
		{"only the device", map[string]string{"all": "0", "default": "1", "wan": "2", "lan": "1"},
			map[string]string{"all": "0", "default": "1", "wan": "0", "lan": "1"}, true},
		{"all strict", map[string]string{"all": "1", "default": "0", "wan": "0", "lan": "0", "eth0.2": "2"},
			map[string]string{"all": "0", "default": "1", "wan": "0", "lan": "1", "eth0.2": "2"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := t.TempDir()
			for dev, v := range tc.before {
				if err := os.MkdirAll(filepath.Join(conf, dev), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(conf, dev, "rp_filter"), []byte(v+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Off(conf, "wan")
			if err != nil || (c != nil) != tc.change {
				t.Fatalf("Off = %+v, %v; want a change: %v", c, err, tc.change)
			}
			if c != nil && (c.Own != tc.before["wan"] || c.All != tc.before["all"] || c.Key() != "net.ipv4.conf.wan.rp_filter") {
				t.Errorf("change %+v (%s), want own %s all %s", c, c.Key(), tc.before["wan"], tc.before["all"])
			}
			for dev, want := range tc.after {
				b, _ := os.ReadFile(filepath.Join(conf, dev, "rp_filter"))
				if got := strings.TrimSpace(string(b)); got != want {
					t.Errorf("%s: rp_filter %s, want %s", dev, got, want)
				}
			}
		})
	}
	if _, err := Off(t.TempDir(), "wan"); err == nil || !strings.Contains(err.Error(), "net.ipv4.conf.all.rp_filter") {
		t.Errorf("without the files: %v, want an error naming the setting", err)
	}
}
