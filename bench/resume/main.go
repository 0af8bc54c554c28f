// Command resumeproxy sits between a device and `uptrust serve` for
// scripts/bench-resume.sh: it forwards every request (Range and If-Range
// included) and counts the body bytes it sends in answer to payload
// requests (paths under /targets/ that end in -payload-suffix), so that the bytes downloaded twice
// after an interruption can be measured from outside the agent.
//
// The first payload answer can be interrupted after a number of bytes:
// -cut-at closes the connection mid-body (a dropped connection), -pause-at
// stops sending and holds the connection open until the client goes away
// (for killing the agent at a known point). Every byte counted has been
// flushed to the socket, whose send buffer is kept at 64 KiB: on loopback,
// Linux would otherwise let several MiB wait in the proxy's own kernel, and
// count them as sent to a device that never got them.
//
// GET /_stats answers, without forwarding, with a JSON object:
// {"payload_bytes": N, "requests": [{"range": ..., "if_range": ...,
// "status": ..., "bytes": ...}], "paused": bool}.
//
// Usage: resumeproxy -listen 127.0.0.1:PORT -upstream http://127.0.0.1:PORT
// -payload-suffix .VERSION [-cut-at N | -pause-at N]. It serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "resumeproxy:", err)
		os.Exit(1)
	}
}

// request is one payload request as seen by the proxy.
type request struct {
	Range   string `json:"range,omitempty"`
	IfRange string `json:"if_range,omitempty"`
	Status  int    `json:"status"`
	Bytes   int64  `json:"bytes"`
}

type proxy struct {
	rp       *httputil.ReverseProxy
	suffix   string
	cutAt    int64 // < 0: never
	pauseAt  int64 // < 0: never
	mu       sync.Mutex
	requests []request
	paused   bool
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("resumeproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "server base URL")
	cutAt := fs.Int64("cut-at", -1, "close the first payload connection after this many body bytes")
	pauseAt := fs.Int64("pause-at", -1, "stop the first payload answer after this many body bytes and hold the connection")
	suffix := fs.String("payload-suffix", "", "payload paths end with this (the consistent-snapshot name ends with .VERSION)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *suffix == "" {
		return errors.New("-payload-suffix is required")
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-upstream %q is not a URL", *upstream)
	}
	p := &proxy{suffix: *suffix, cutAt: *cutAt, pauseAt: *pauseAt}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.FlushInterval = -1 // every byte counted is written through at once
	p.rp.ModifyResponse = p.modify
	p.rp.ErrorLog = nil
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	ln = smallSendBuffer{ln}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Println("http://" + ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_stats" {
		p.mu.Lock()
		var total int64
		for _, q := range p.requests {
			total += q.Bytes
		}
		b, _ := json.Marshal(map[string]any{"payload_bytes": total, "requests": p.requests, "paused": p.paused})
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(b, '\n'))
		return
	}
	p.rp.ServeHTTP(w, r)
}

// modify wraps the body of payload answers in a counting (and for the
// first one, possibly interrupting) reader.
func (p *proxy) modify(resp *http.Response) error {
	req := resp.Request
	if !strings.Contains(req.URL.Path, "/targets/") || !strings.HasSuffix(req.URL.Path, p.suffix) || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent) {
		return nil
	}
	p.mu.Lock()
	i := len(p.requests)
	p.requests = append(p.requests, request{Range: req.Header.Get("Range"), IfRange: req.Header.Get("If-Range"), Status: resp.StatusCode})
	p.mu.Unlock()
	b := &body{rc: resp.Body, p: p, i: i, ctx: req.Context(), cut: -1, pause: -1}
	if i == 0 {
		b.cut, b.pause = p.cutAt, p.pauseAt
	}
	resp.Body = b
	return nil
}

// body counts what the proxy forwards of one payload answer.
type body struct {
	rc    io.ReadCloser
	p     *proxy
	i     int
	ctx   context.Context
	n     int64
	cut   int64
	pause int64
}

var errCut = errors.New("resumeproxy: connection cut")

func (b *body) Read(buf []byte) (int, error) {
	for _, limit := range []int64{b.cut, b.pause} {
		if limit >= 0 && int64(len(buf)) > limit-b.n {
			buf = buf[:limit-b.n]
		}
	}
	if len(buf) == 0 {
		if b.cut >= 0 && b.n >= b.cut {
			return 0, errCut
		}
		b.p.mu.Lock()
		b.p.paused = true
		b.p.mu.Unlock()
		<-b.ctx.Done()
		return 0, errCut
	}
	n, err := b.rc.Read(buf)
	b.n += int64(n)
	b.p.mu.Lock()
	b.p.requests[b.i].Bytes += int64(n)
	b.p.mu.Unlock()
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

// smallSendBuffer sets a 64 KiB send buffer on every accepted connection.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(64 << 10)
	}
	return c, err
}
