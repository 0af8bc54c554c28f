package server

import (
	"net"
	"sync"
	"sync/atomic"
)

// Connection defaults. A connection costs the process up to two file
// descriptors (the socket, and a payload file while one is streamed), and
// the process needs a few more for its database, listener and logs.
const (
	// MaxDefaultConns bounds the default connection cap however high the
	// descriptor limit is, so that connection buffers (some tens of KiB
	// each with TLS) stay within a few hundred MiB.
	MaxDefaultConns = 4096
	// descriptorReserve is what the default leaves to everything but
	// connections: the database and its journal files, the listener,
	// standard streams, and headroom.
	descriptorReserve = 64
	// minDefaultConns is the default cap on a process whose descriptor
	// limit leaves less; below it the server could not serve a fleet.
	minDefaultConns = 16
)

// DefaultMaxConns is the connection cap used when Config.MaxConns is zero:
// half of the descriptors the process may open, less a reserve, at most
// MaxDefaultConns. Go raises the soft descriptor limit to the hard one at
// start, so this is sized to the hard limit. With no known limit it is
// MaxDefaultConns.
func DefaultMaxConns() int { return maxConnsFor(openFileLimit()) }

// maxConnsFor is DefaultMaxConns for a descriptor limit nofile (0: unknown).
func maxConnsFor(nofile uint64) int {
	if nofile == 0 {
		return MaxDefaultConns
	}
	if nofile < 2*minDefaultConns+descriptorReserve {
		return minDefaultConns
	}
	n := (nofile - descriptorReserve) / 2
	if n > MaxDefaultConns {
		return MaxDefaultConns
	}
	return int(n)
}

// limitListener accepts at most cap(slots) connections at once. Accept
// takes a slot before it accepts, and the first Close of a connection gives
// the slot back, so connections beyond the cap wait in the kernel's listen
// backlog (holding no descriptor of the process) until one closes. Safe for
// concurrent use.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	open      *atomic.Int64 // connections accepted and not yet closed
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, max int, open *atomic.Int64) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), open: open, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn gives its listener's slot back on its first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.slots
	})
	return err
}
