package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
)

// waitFor polls cond until it holds. The bound is generous: it only turns a
// hang into a failure and is never what a test asserts.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type running struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startRun runs s on a fresh loopback listener until the test ends or
// cancel is called.
func startRun(t *testing.T, s *Server, tlsConfig *tls.Config) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx, ln, tlsConfig) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func get(t *testing.T, c *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func contentWithTimestamp(body string) *Content {
	return &Content{Metadata: map[string][]byte{timestampPath: []byte(body)}, Releases: map[string][]string{"p": {"1"}}}
}

func TestReloadOnGeneration(t *testing.T) {
	src := &fakeSource{gen: 1, content: contentWithTimestamp("v1")}
	s, err := New(Config{Source: src, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.reload(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := s.reload(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := src.calls(); n != 1 {
		t.Errorf("unchanged generation fetched content %d times, want once", n)
	}

	src.set(1, contentWithTimestamp("v1-bis"))
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := string(s.snap.Load().metadata[timestampPath].body); got != "v1-bis" {
		t.Errorf("forced reload serves %q", got)
	}

	// A broken source leaves the old content in service.
	src.set(2, &Content{Metadata: map[string][]byte{"/elsewhere": nil}})
	if err := s.reload(ctx, false); err == nil || !strings.Contains(err.Error(), "server: reload generation 2") {
		t.Errorf("invalid content: err %v", err)
	}
	src.mu.Lock()
	src.contentErr = errors.New("disk gone")
	src.mu.Unlock()
	if err := s.reload(ctx, false); err == nil || !strings.Contains(err.Error(), "source content: disk gone") {
		t.Errorf("content error: err %v", err)
	}
	if snap := s.snap.Load(); snap.generation != 1 || string(snap.metadata[timestampPath].body) != "v1-bis" {
		t.Errorf("failed reload replaced content: generation %d", snap.generation)
	}
}

func TestRunPollsSource(t *testing.T) {
	src := &fakeSource{gen: 1, content: contentWithTimestamp("v1")}
	s, err := New(Config{Source: src, PollEvery: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, nil)
	url := "http://" + r.addr + timestampPath
	if code, body := get(t, http.DefaultClient, url); code != http.StatusOK || string(body) != "v1" {
		t.Fatalf("before change: %d %q", code, body)
	}
	src.set(2, contentWithTimestamp("v2"))
	waitFor(t, "the poll loop to serve generation 2", func() bool {
		_, body := get(t, http.DefaultClient, url)
		return string(body) == "v2"
	})
}

func TestResign(t *testing.T) {
	src := &fakeSource{gen: 1, content: contentWithTimestamp("v1")}
	res := &fakeResigner{called: make(chan int, 10)}
	// The resigner changes content without changing the generation, so
	// only the reload that follows a resign can pick it up.
	res.onCall = func(n int) {
		if n == 1 {
			src.set(1, contentWithTimestamp("resigned"))
		}
	}
	s, err := New(Config{Source: src, Resigner: res, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := string(s.snap.Load().metadata[timestampPath].body); got != "resigned" {
		t.Errorf("after a resign that changed something, serving %q", got)
	}
	calls := src.calls()
	if err := s.resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	if src.calls() != calls {
		t.Error("a resign that changed nothing reloaded content")
	}
	if s.metrics.resignsChg.Load() != 1 || s.metrics.resignsUnchg.Load() != 1 {
		t.Errorf("resign counters: changed %d, unchanged %d", s.metrics.resignsChg.Load(), s.metrics.resignsUnchg.Load())
	}
}

func TestRunResignLoop(t *testing.T) {
	src := &fakeSource{gen: 1, content: contentWithTimestamp("v1")}
	res := &fakeResigner{called: make(chan int, 10)}
	res.onCall = func(n int) {
		if n == 1 {
			src.set(1, contentWithTimestamp("resigned"))
		}
	}
	s, err := New(Config{Source: src, Resigner: res, ResignEvery: time.Millisecond,
		PollEvery: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, nil)
	<-res.called
	waitFor(t, "the resign loop to reload", func() bool {
		_, body := get(t, http.DefaultClient, "http://"+r.addr+timestampPath)
		return string(body) == "resigned"
	})
}

func TestGracefulShutdown(t *testing.T) {
	sink := &fakeSink{entered: make(chan struct{}, 1), block: make(chan struct{})}
	src := &fakeSource{gen: 1, content: contentWithTimestamp("v1")}
	s, err := New(Config{Source: src, Reports: sink, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, nil)

	type result struct {
		code int
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+r.addr+deviceapi.ReportsPath, "application/json",
			strings.NewReader(`{"product":"p","version":"1","outcome":"installed"}`))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		resp.Body.Close()
		inflight <- result{code: resp.StatusCode}
	}()
	<-sink.entered
	r.cancel()
	// Shutdown closes the listener first; once new connections are
	// refused, the request above is in flight during shutdown.
	waitFor(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(sink.block)
	res := <-inflight
	if res.err != nil || res.code != http.StatusAccepted {
		t.Errorf("in-flight request: code %d, err %v; want 202", res.code, res.err)
	}
	if err := <-r.done; err != nil {
		t.Errorf("Run after graceful shutdown: %v", err)
	}
	r.done <- nil // for the cleanup
	if len(sink.got()) != 1 {
		t.Errorf("sink got %d reports, want 1", len(sink.got()))
	}
}

func TestShutdownTimeout(t *testing.T) {
	sink := &fakeSink{entered: make(chan struct{}, 1), block: make(chan struct{})}
	defer close(sink.block)
	s, err := New(Config{Source: &fakeSource{content: &Content{Releases: map[string][]string{"p": {"1"}}}}, Reports: sink,
		ShutdownTimeout: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, nil)
	go func() {
		resp, err := http.Post("http://"+r.addr+deviceapi.ReportsPath, "application/json",
			strings.NewReader(`{"product":"p","version":"1","outcome":"installed"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-sink.entered
	r.cancel()
	err = <-r.done
	r.done <- nil
	if err == nil || !strings.Contains(err.Error(), "server: graceful shutdown") {
		t.Errorf("Run with a request stuck past the timeout: %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	s, err := New(Config{Source: &fakeSource{content: &Content{}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, nil)
	if code, _ := get(t, http.DefaultClient, "http://"+r.addr+healthzPath); code != http.StatusOK {
		t.Fatalf("first Run: healthz %d", code)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(t.Context(), ln, nil); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Source: &fakeSource{}, PollEvery: -1},
		{Source: &fakeSource{}, ReportBurst: -1},
		{Source: &fakeSource{}, MaxConns: -1},
		{Source: &fakeSource{}, IdleTimeout: -1},
		{Source: &fakeSource{}, ReadHeaderTimeout: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// selfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and its
// key to dir and returns the file names and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "uptrust test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

func TestTLSMinVersion(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	lc := ListenConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	ln, tlsConfig, err := lc.Listen(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tlsConfig.MinVersion != tls.VersionTLS12 {
		t.Errorf("ListenConfig MinVersion %x, want TLS 1.2", tlsConfig.MinVersion)
	}
	ln.Close()

	old := &tls.Config{MinVersion: tls.VersionTLS10, Certificates: tlsConfig.Certificates}
	tls11Client := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}

	// Control: a server that allows TLS 1.0 does complete a TLS 1.1
	// handshake with this client, so the refusal below is the server's.
	ctl, err := tls.Listen("tcp", "127.0.0.1:0", old)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	go func() {
		c, err := ctl.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ctl.Addr().String(), tls11Client)
	if err != nil {
		t.Fatalf("control: TLS 1.1 client cannot reach a TLS 1.0+ server: %v", err)
	}
	c.Close()

	// Run raises the caller's MinVersion to TLS 1.2.
	s, err := New(Config{Source: &fakeSource{content: &Content{}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, old)
	if c, err := tls.Dial("tcp", r.addr, tls11Client); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
	}}}
	defer client.CloseIdleConnections()
	if code, body := get(t, client, "https://"+r.addr+healthzPath); code != http.StatusOK {
		t.Errorf("TLS 1.2 healthz: %d %q", code, body)
	}
}

// TestNoAddressesLogged drives every kind of logged event, including
// net/http's own error log, and checks no client address reaches the log.
func TestNoAddressesLogged(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, payload, _ := testContent(t)
	sink := &fakeSink{err: errors.New("sink broken")}
	s, err := New(Config{Source: &fakeSource{gen: 1, content: c}, Reports: sink, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s, &tls.Config{Certificates: []tls.Certificate{cert}})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	base := "https://" + r.addr

	get(t, client, base+timestampPath)
	get(t, client, base+"/repo/missing")
	if err := os.Remove(c.Payloads[payload].Path); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, client, base+payload); code != http.StatusInternalServerError {
		t.Errorf("missing payload: status %d", code)
	}
	resp, err := client.Post(base+deviceapi.ReportsPath, "application/json",
		strings.NewReader(`{"product":"p","version":"1","outcome":"installed"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Garbage on the TLS port makes net/http log a handshake error that
	// names the peer's address.
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(bytes.Repeat([]byte{0xff}, 16)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitFor(t, "the TLS handshake error to be logged", func() bool {
		return strings.Contains(logs.String(), "TLS handshake error")
	})

	out := logs.String()
	for _, want := range []string{"payload unavailable", "sink broken", "[redacted]"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1") || strings.Contains(out, r.addr) {
		t.Errorf("log contains a client address:\n%s", out)
	}
}

func TestRedactWriter(t *testing.T) {
	logs := &syncBuffer{}
	w := redactWriter{slog.New(slog.NewTextHandler(logs, nil))}
	for _, line := range []string{
		"http: TLS handshake error from 203.0.113.9:4711: EOF\n",
		"http: panic serving [2001:db8::1]:443: boom\n",
		"http: TLS handshake error from [::1]:5555: EOF\n",
		"http: bad request from 10.1.2.3\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	for _, addr := range []string{"203.0.113.9", "4711", "2001:db8", "::1", "10.1.2.3"} {
		if strings.Contains(out, addr) {
			t.Errorf("redacted log still contains %q:\n%s", addr, out)
		}
	}
	if strings.Count(out, "[redacted]") != 4 {
		t.Errorf("want 4 redactions:\n%s", out)
	}
}
