package serve

import (
	"io"
	"net"
	"path/filepath"
	"testing"
)

func TestAccept(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	stop := Accept(l, func(c net.Conn) {
		c.Write([]byte("hello"))
		c.Close()
	})
	for range 3 {
		c, err := net.Dial("unix", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "hello" {
			t.Fatalf("read %q, %v; want hello", b, err)
		}
	}
	stop()
	stop()
	if c, err := net.Dial("unix", l.Addr().String()); err == nil {
		c.Close()
		t.Fatal("dial after stop: connected")
	}
}
