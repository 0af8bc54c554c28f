package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

func TestMaxConnsFor(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{0, MaxDefaultConns},       // unknown
		{1 << 62, MaxDefaultConns}, // unlimited
		{524288, MaxDefaultConns},  // systemd's default hard limit
		{1024, (1024 - descriptorReserve) / 2},
		{4096, (4096 - descriptorReserve) / 2},
		{2*MaxDefaultConns + descriptorReserve, MaxDefaultConns},
		{100, (100 - descriptorReserve) / 2},
		{2*minDefaultConns + descriptorReserve - 1, minDefaultConns},
		{1, minDefaultConns},
	} {
		if got := maxConnsFor(tc.nofile); got != tc.want {
			t.Errorf("maxConnsFor(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
	if n := DefaultMaxConns(); n < minDefaultConns || n > MaxDefaultConns {
		t.Errorf("DefaultMaxConns() = %d, outside [%d, %d]", n, minDefaultConns, MaxDefaultConns)
	}
}

// rawConn is a client connection that sends requests by hand, so a test
// controls when it opens, idles and closes.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// send writes a keep-alive GET for path.
func (r *rawConn) send(path string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, "GET "+path+" HTTP/1.1\r\nHost: uptrust\r\n\r\n"); err != nil {
		r.t.Fatal(err)
	}
}

// answer reads one response within d and returns its status code, or an
// error when none came.
func (r *rawConn) answer(d time.Duration) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(r.r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// TestConnectionCap holds the cap's worth of connections open and checks
// that another client waits, unanswered, while the held connections are
// still served, and is answered once one of them closes.
func TestConnectionCap(t *testing.T) {
	s, err := New(Config{Source: &fakeSource{content: &Content{}}, Logger: slog.New(slog.DiscardHandler),
		MaxConns: 2, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, nil)
	waitFor(t, "content", func() bool { return s.snap.Load() != nil })

	held := []*rawConn{dialRaw(t, r.addr), dialRaw(t, r.addr)}
	for i, c := range held {
		c.send(healthzPath)
		if code, err := c.answer(10 * time.Second); err != nil || code != http.StatusOK {
			t.Fatalf("held connection %d: %d %v", i, code, err)
		}
	}

	over := dialRaw(t, r.addr) // the kernel completes the handshake; the server does not accept
	over.send(healthzPath)
	// 300 ms is ample for a loopback answer: without the cap it takes
	// well under a millisecond.
	if code, err := over.answer(300 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection over the cap was answered: %d %v", code, err)
	}
	held[1].send(metricsPath)
	if code, err := held[1].answer(10 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("held connection while another waits: %d %v", code, err)
	}
	if got := s.metrics.connsOpen.Load(); got != 2 {
		t.Errorf("open connections = %d, want 2", got)
	}

	held[0].c.Close()
	if code, err := over.answer(10 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("the waiting connection after one closed: %d %v", code, err)
	}
}

// TestIdleTimeout checks that a keep-alive connection left idle is closed
// after Config.IdleTimeout and gives its slot under the cap to a waiting
// client.
func TestIdleTimeout(t *testing.T) {
	const idle = 100 * time.Millisecond
	s, err := New(Config{Source: &fakeSource{content: &Content{}}, Logger: slog.New(slog.DiscardHandler),
		MaxConns: 1, IdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, nil)
	waitFor(t, "content", func() bool { return s.snap.Load() != nil })

	first := dialRaw(t, r.addr)
	// The server's idle clock starts after it has written its answer, so
	// no earlier than this.
	idleSince := time.Now()
	first.send(healthzPath)
	if code, err := first.answer(10 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("first request: %d %v", code, err)
	}
	next := dialRaw(t, r.addr)
	next.send(healthzPath)
	if code, err := next.answer(10 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("a client waiting for the idle connection's slot: %d %v", code, err)
	}
	if waited := time.Since(idleSince); waited < idle {
		t.Errorf("the waiting client was answered after %v, before the idle timeout %v: is the cap applied?", waited, idle)
	}
	first.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := first.r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: read %d bytes, %v; want EOF (closed by the server)", n, err)
	}
}
