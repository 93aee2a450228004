// Package serve runs the accept loop of the small local sockets the
// binaries listen on: the agent's status socket and the abstract socket by
// which a process claims its device (dataplane.Claim).
package serve

import (
	"net"
	"sync"
)

// Accept hands every connection l accepts to handle, which owns it and
// must close it, one at a time in one goroutine, until l is closed. stop
// closes l and returns once the loop has ended, so no handler runs after
// it; it may be called more than once.
func Accept(l net.Listener, handle func(net.Conn)) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return func() {
		l.Close()
		wg.Wait()
	}
}
