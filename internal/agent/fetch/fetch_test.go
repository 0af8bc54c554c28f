package fetch_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/uptrust/uptrust/internal/agent/fetch"
)

// recorder is an injected Rand and Sleep: jitter draws return half the
// ceiling, and sleeps return at once.
type recorder struct {
	ceilings []time.Duration
	sleeps   []time.Duration
}

func (r *recorder) rand(n int64) int64 {
	r.ceilings = append(r.ceilings, time.Duration(n))
	return n / 2
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.sleeps = append(r.sleeps, d)
	return ctx.Err()
}

func newClient(t *testing.T, cfg fetch.Config, rec *recorder) *fetch.Client {
	t.Helper()
	if rec != nil {
		cfg.Rand, cfg.Sleep = rec.rand, rec.sleep
	}
	c, err := fetch.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func getAll(t *testing.T, c *fetch.Client, url string, max int64) ([]byte, error) {
	t.Helper()
	body, err := c.Get(context.Background(), url, max)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

func TestRetryThenSuccess(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	rec := &recorder{}
	c := newClient(t, fetch.Config{MaxAttempts: 5}, rec)
	data, err := getAll(t, c, srv.URL+"/x", 100)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(data) != "hello" {
		t.Errorf("body = %q, want hello", data)
	}
	if hits.Load() != 3 || len(rec.sleeps) != 2 {
		t.Errorf("requests = %d, sleeps = %d; want 3 and 2", hits.Load(), len(rec.sleeps))
	}
}

func TestBackoffGrowsWithJitterAndGivesUp(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	rec := &recorder{}
	c := newClient(t, fetch.Config{MaxAttempts: 6, BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, rec)
	_, err := c.Get(context.Background(), srv.URL+"/x", 100)
	if err == nil {
		t.Fatal("Get succeeded against a failing server")
	}
	if !strings.Contains(err.Error(), "giving up after 6 attempts") || !strings.Contains(err.Error(), "500") {
		t.Errorf("error %q should name the attempts and the status", err)
	}
	var se *fetch.StatusError
	if !errors.As(err, &se) || se.StatusCode != 500 {
		t.Errorf("error %v should wrap a *StatusError 500", err)
	}
	if hits.Load() != 6 {
		t.Errorf("requests = %d, want 6", hits.Load())
	}
	ms := time.Millisecond
	wantCeil := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms}
	if !equalDurations(rec.ceilings, wantCeil) {
		t.Errorf("jitter ceilings = %v, want %v", rec.ceilings, wantCeil)
	}
	wantSleep := []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 500 * ms}
	if !equalDurations(rec.sleeps, wantSleep) {
		t.Errorf("sleeps = %v, want the jittered draws %v", rec.sleeps, wantSleep)
	}
}

func TestRetryAfterCappedByMaxBackoff(t *testing.T) {
	for _, tc := range []struct {
		header string
		max    time.Duration
		want   time.Duration
	}{
		{"1", 10 * time.Second, time.Second},
		{"3600", 2 * time.Second, 2 * time.Second},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 10 * time.Second, 0}, // dates ignored
	} {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", tc.header)
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			io.WriteString(w, "ok")
		}))
		rec := &recorder{}
		zeroJitter := func(int64) int64 { return 0 }
		c := newClient(t, fetch.Config{BaseBackoff: time.Millisecond, MaxBackoff: tc.max, Sleep: rec.sleep, Rand: zeroJitter}, nil)
		if _, err := getAll(t, c, srv.URL, 10); err != nil {
			t.Errorf("Retry-After %q: %v", tc.header, err)
		}
		if len(rec.sleeps) != 1 || rec.sleeps[0] != tc.want {
			t.Errorf("Retry-After %q, MaxBackoff %v: sleeps = %v, want [%v]", tc.header, tc.max, rec.sleeps, tc.want)
		}
		srv.Close()
	}
}

func TestContextCancelStopsWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel() // the client is about to wait an hour for its retry
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	// Real sleep: only ctx can end this wait.
	c := newClient(t, fetch.Config{BaseBackoff: time.Hour, MaxBackoff: time.Hour, Rand: func(n int64) int64 { return n - 1 }}, nil)
	_, err := c.Get(ctx, srv.URL, 10)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestNonRetryableStatus(t *testing.T) {
	for _, code := range []int{http.StatusNotFound, http.StatusForbidden, http.StatusNoContent} {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.WriteHeader(code)
		}))
		c := newClient(t, fetch.Config{}, &recorder{})
		_, err := c.Get(context.Background(), srv.URL+"/file", 10)
		var se *fetch.StatusError
		if !errors.As(err, &se) || se.StatusCode != code || !strings.Contains(err.Error(), srv.URL+"/file") {
			t.Errorf("status %d: err = %v, want a *StatusError naming status and URL", code, err)
		}
		if got := errors.Is(err, fetch.ErrNotFound); got != (code == 404) {
			t.Errorf("status %d: errors.Is(err, ErrNotFound) = %v", code, got)
		}
		if hits.Load() != 1 {
			t.Errorf("status %d: %d requests, want 1 (no retry)", code, hits.Load())
		}
		srv.Close()
	}
}

func TestGarbageResponseIsRetried(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("SPAM SPAM SPAM\r\n\r\n")
		buf.Flush()
		conn.Close()
	}))
	defer srv.Close()
	rec := &recorder{}
	c := newClient(t, fetch.Config{MaxAttempts: 3}, rec)
	_, err := c.Get(context.Background(), srv.URL, 10)
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("err = %v, want giving up after 3 attempts", err)
	}
	if hits.Load() != 3 {
		t.Errorf("requests = %d, want 3", hits.Load())
	}
}

func TestEndlessBodyIsTooLong(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("A"), 32<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{}, &recorder{})
	const max = 1<<20 + 17
	data, err := getAll(t, c, srv.URL, max)
	if !errors.Is(err, fetch.ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
	if len(data) != max {
		t.Errorf("delivered %d bytes before the error, want exactly the maximum %d", len(data), max)
	}
}

func TestContentLengthAboveMaximum(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "0123456789")
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{}, &recorder{})
	if _, err := c.Get(context.Background(), srv.URL, 9); !errors.Is(err, fetch.ErrTooLong) {
		t.Errorf("err = %v, want ErrTooLong", err)
	}
	if hits.Load() != 1 {
		t.Errorf("requests = %d, want 1 (no retry)", hits.Load())
	}
	// Exactly the maximum is fine, and so is an empty body with maximum 0.
	if data, err := getAll(t, c, srv.URL, 10); err != nil || string(data) != "0123456789" {
		t.Errorf("exact length: %q, %v", data, err)
	}
}

func TestExactLengthWithoutContentLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("01234"))
		w.(http.Flusher).Flush() // chunked: no Content-Length
		w.Write([]byte("56789"))
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{}, &recorder{})
	if data, err := getAll(t, c, srv.URL, 10); err != nil || string(data) != "0123456789" {
		t.Errorf("max 10: %q, %v", data, err)
	}
	if data, err := getAll(t, c, srv.URL, 9); !errors.Is(err, fetch.ErrTooLong) || string(data) != "012345678" {
		t.Errorf("max 9: %q, %v; want 9 bytes and ErrTooLong", data, err)
	}
}

func TestHugeMaximum(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "0123456789")
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{}, &recorder{})
	if data, err := getAll(t, c, srv.URL, math.MaxInt64); err != nil || string(data) != "0123456789" {
		t.Errorf("%q, %v", data, err)
	}
}

func TestEmptyBodyMaxZero(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := newClient(t, fetch.Config{}, &recorder{})
	if data, err := getAll(t, c, srv.URL, 0); err != nil || len(data) != 0 {
		t.Errorf("%q, %v", data, err)
	}
}

func TestStallDuringBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("0123456789"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(t, fetch.Config{StallTimeout: 100 * time.Millisecond}, &recorder{})
	data, err := getAll(t, c, srv.URL, 100)
	if !errors.Is(err, fetch.ErrStalled) || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("err = %v, want ErrStalled", err)
	}
	if string(data) != "0123456789" {
		t.Errorf("data before stall = %q", data)
	}
}

func TestSlowConsumerIsNotAStall(t *testing.T) {
	more := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "01234")
		w.(http.Flusher).Flush()
		<-more
		io.WriteString(w, "56789")
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{StallTimeout: 50 * time.Millisecond}, &recorder{})
	body, err := c.Get(context.Background(), srv.URL, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	first := make([]byte, 5)
	if _, err := io.ReadFull(body, first); err != nil {
		t.Fatal(err)
	}
	// The consumer dawdles for 4x the stall timeout between Reads (a slow
	// disk, say). The server is not stalling, it is waiting to be asked:
	// this must not count as a stall.
	time.Sleep(200 * time.Millisecond)
	close(more)
	if rest, err := io.ReadAll(body); err != nil || string(first)+string(rest) != "0123456789" {
		t.Errorf("%q+%q, %v", first, rest, err)
	}
}

func TestStallBeforeHeadersIsRetried(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	rec := &recorder{}
	c := newClient(t, fetch.Config{StallTimeout: 100 * time.Millisecond, MaxAttempts: 2}, rec)
	_, err := c.Get(context.Background(), srv.URL, 10)
	if !errors.Is(err, fetch.ErrStalled) || !strings.Contains(err.Error(), "giving up after 2 attempts") {
		t.Fatalf("err = %v, want ErrStalled after 2 attempts", err)
	}
	if hits.Load() != 2 {
		t.Errorf("requests = %d, want 2", hits.Load())
	}
}

func TestCheckURL(t *testing.T) {
	strict := newClient(t, fetch.Config{}, nil)
	lax := newClient(t, fetch.Config{AllowInsecureHTTP: true}, nil)
	for _, tc := range []struct {
		url             string
		strictOK, laxOK bool
	}{
		{"https://updates.example.com/repo/", true, true},
		{"http://updates.example.com/repo/", false, true},
		{"http://10.0.0.1/", false, true},
		{"http://127.0.0.1:8080/", true, true},
		{"http://127.9.8.7/", true, true},
		{"http://[::1]:80/", true, true},
		{"http://localhost:1/", true, true},
		{"http://LOCALHOST/", true, true},
		{"http://localhost.example.com/", false, true},
		{"http://user:pw@127.0.0.1/", false, false},
		{"ftp://127.0.0.1/", false, false},
		{"https:///nohost", false, false},
		{"::", false, false},
	} {
		if err := strict.CheckURL(tc.url); (err == nil) != tc.strictOK {
			t.Errorf("strict CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.strictOK)
		}
		if err := lax.CheckURL(tc.url); (err == nil) != tc.laxOK {
			t.Errorf("lax CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.laxOK)
		}
	}
	if err := strict.CheckURL("http://updates.example.com/"); !errors.Is(err, fetch.ErrInsecureURL) {
		t.Errorf("err = %v, want ErrInsecureURL", err)
	}
}

func TestGetRefusesPlainHTTPToRemoteHost(t *testing.T) {
	c := newClient(t, fetch.Config{}, &recorder{})
	// .invalid never resolves: if Get tried the network it would fail
	// differently.
	_, err := c.Get(context.Background(), "http://updates.invalid/x", 10)
	if !errors.Is(err, fetch.ErrInsecureURL) {
		t.Errorf("err = %v, want ErrInsecureURL", err)
	}
}

func TestRedirectToPlainHTTPRemoteRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://mirror.invalid/x", http.StatusFound)
	}))
	defer srv.Close()
	rec := &recorder{}
	c := newClient(t, fetch.Config{}, rec)
	_, err := c.Get(context.Background(), srv.URL, 10)
	if !errors.Is(err, fetch.ErrInsecureURL) {
		t.Errorf("err = %v, want ErrInsecureURL", err)
	}
	if len(rec.sleeps) != 0 {
		t.Errorf("refused redirect was retried %d times", len(rec.sleeps))
	}
}

func TestRequestsCarryNothingIdentifying(t *testing.T) {
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers = append(headers, r.Header.Clone())
		if r.URL.Path == "/start" {
			http.SetCookie(w, &http.Cookie{Name: "track", Value: "me", Path: "/"})
			http.Redirect(w, r, "/end", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{}, &recorder{})
	if _, err := getAll(t, c, srv.URL+"/start", 10); err != nil {
		t.Fatal(err)
	}
	if len(headers) != 2 {
		t.Fatalf("%d requests, want 2 (one redirect)", len(headers))
	}
	for i, h := range headers {
		if got := h.Get("User-Agent"); got != "uptrust-agent" {
			t.Errorf("request %d: User-Agent %q", i, got)
		}
		for k := range h {
			if k != "User-Agent" {
				t.Errorf("request %d sent header %s: %q", i, k, h[k])
			}
		}
	}
}

func writeCertPEM(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}))
	defer srv.Close()

	rec := &recorder{}
	untrusting := newClient(t, fetch.Config{}, rec)
	if _, err := untrusting.Get(context.Background(), srv.URL, 10); err == nil {
		t.Error("Get succeeded without trusting the test CA")
	}
	if len(rec.sleeps) != 0 {
		t.Errorf("certificate failure was retried %d times", len(rec.sleeps))
	}

	trusting := newClient(t, fetch.Config{CAFile: writeCertPEM(t, srv)}, &recorder{})
	if data, err := getAll(t, trusting, srv.URL, 10); err != nil || string(data) != "secure" {
		t.Errorf("with CAFile: %q, %v", data, err)
	}

	// A CA file trusts only its own CAs: a file holding another CA fails.
	if _, err := getAll(t, newClient(t, fetch.Config{CAFile: writeOtherCAPEM(t)}, &recorder{}), srv.URL, 10); err == nil {
		t.Error("Get succeeded with a CA file that does not hold the server's CA")
	}
}

// writeOtherCAPEM writes a fresh self-signed CA unrelated to httptest's
// (all httptest TLS servers share one certificate).
func writeOtherCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadCAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(path, []byte("not a certificate"), 0o600)
	if _, err := fetch.New(fetch.Config{CAFile: path}); err == nil {
		t.Error("New accepted a CA file without certificates")
	}
	if _, err := fetch.New(fetch.Config{CAFile: path + ".missing"}); err == nil {
		t.Error("New accepted a missing CA file")
	}
}

func TestTUFFetcher(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/1.root.json":
			io.WriteString(w, `{"signed":{}}`)
		case "/big":
			w.Write(make([]byte, 1000))
		case "/broken":
			w.WriteHeader(http.StatusBadGateway)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{MaxAttempts: 2}, &recorder{})
	f := c.TUFFetcher(context.Background())

	data, err := f.DownloadFile(srv.URL+"/1.root.json", 512, 0)
	if err != nil || string(data) != `{"signed":{}}` {
		t.Errorf("DownloadFile: %q, %v", data, err)
	}

	// go-tuf's updater stops its root walk on errors.As(*ErrDownloadHTTP)
	// with StatusCode 404.
	_, err = f.DownloadFile(srv.URL+"/2.root.json", 512, 0)
	var httpErr *metadata.ErrDownloadHTTP
	if !errors.As(err, &httpErr) || httpErr.StatusCode != http.StatusNotFound {
		t.Errorf("404: err = %#v, want *metadata.ErrDownloadHTTP{StatusCode: 404}", err)
	}
	_, err = f.DownloadFile(srv.URL+"/broken", 512, 0)
	if !errors.As(err, &httpErr) || httpErr.StatusCode != http.StatusBadGateway {
		t.Errorf("502: err = %#v, want *metadata.ErrDownloadHTTP{StatusCode: 502}", err)
	}

	_, err = f.DownloadFile(srv.URL+"/big", 999, 0)
	var lenErr *metadata.ErrDownloadLengthMismatch
	if !errors.As(err, &lenErr) || !errors.Is(err, &metadata.ErrDownload{}) {
		t.Errorf("too long: err = %#v, want *metadata.ErrDownloadLengthMismatch", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.TUFFetcher(ctx).DownloadFile(srv.URL+"/1.root.json", 512, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v, want context.Canceled", err)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
