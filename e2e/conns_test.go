package e2e

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/server"
)

// TestIdleSocketsCannotHoldTheServer fills the server's connection cap
// with an idle keep-alive connection and a silent one, as a client
// hoarding descriptors would, and checks that the server closes both
// after their timeouts and a device then updates through the freed slots.
func TestIdleSocketsCannotHoldTheServer(t *testing.T) {
	w := offered(t, worldOptions{})
	srv, err := server.New(server.Config{Source: w.p, Reports: w.p, Logger: slog.New(slog.DiscardHandler),
		MaxConns: 2, IdleTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv, ln, nil)
	addr := ln.Addr().String()
	w.url = "http://" + addr

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	idle := dial()
	br := bufio.NewReader(idle)
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: uptrust\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	silent := dial()

	dev := w.device("behind-hoarder", 0)
	w.cycle(dev)
	w.assertRunning(dev, "1.1.0")

	for _, c := range []struct {
		name string
		conn net.Conn
		r    io.Reader
	}{{"idle keep-alive", idle, br}, {"silent", silent, silent}} {
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // only turns a hang into a failure
		if n, err := c.r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("%s connection: read %d bytes, %v; want it closed by the server", c.name, n, err)
		}
	}
}
