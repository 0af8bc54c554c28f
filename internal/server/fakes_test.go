package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

// fakeSource is an in-memory Source whose generation and content tests
// change at will. Safe for concurrent use.
type fakeSource struct {
	mu           sync.Mutex
	gen          int64
	content      *Content
	genErr       error
	genHang      bool // Generation waits for its context to end
	contentErr   error
	contentCalls int
}

func (f *fakeSource) Generation(ctx context.Context) (int64, error) {
	f.mu.Lock()
	hang := f.genHang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, f.genErr
}

func (f *fakeSource) Content(ctx context.Context) (*Content, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contentCalls++
	return f.content, f.contentErr
}

func (f *fakeSource) set(gen int64, c *Content) {
	f.mu.Lock()
	f.gen, f.content = gen, c
	f.mu.Unlock()
}

func (f *fakeSource) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.contentCalls
}

// fakeSink records reports. When block is non-nil AddReport signals entered
// and waits for block to be closed.
type fakeSink struct {
	mu      sync.Mutex
	reports []report.Report
	times   []time.Time
	err     error
	entered chan struct{}
	block   chan struct{}
}

func (f *fakeSink) AddReport(ctx context.Context, r report.Report, at time.Time) error {
	if f.block != nil {
		f.entered <- struct{}{}
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.reports = append(f.reports, r)
	f.times = append(f.times, at)
	return nil
}

func (f *fakeSink) got() []report.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]report.Report(nil), f.reports...)
}

// fakeResigner reports a change on its first call and none afterwards; it
// signals every call on called (buffered, never blocks).
type fakeResigner struct {
	mu     sync.Mutex
	n      int
	called chan int
	onCall func(n int)
}

func (f *fakeResigner) ResignDue(ctx context.Context) (bool, error) {
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	if f.onCall != nil {
		f.onCall(n)
	}
	select {
	case f.called <- n:
	default:
	}
	return n == 1, nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var testStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const (
	timestampPath = "/repo/fleet/metadata/timestamp.json"
	targetsPath   = "/repo/release/metadata/3.targets.json"
)

var (
	timestampBody = []byte(`{"signed":{"_type":"timestamp","version":7}}`)
	targetsBody   = []byte(`{"signed":{"_type":"targets","version":3}}`)
)

// testContent returns content with two metadata documents and one payload
// written to a temporary file, and the payload's URL path and bytes.
func testContent(t testing.TB) (*Content, string, []byte) {
	t.Helper()
	payload := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	sum := sha256.Sum256(payload)
	digest := hex.EncodeToString(sum[:])
	file := filepath.Join(t.TempDir(), digest)
	if err := os.WriteFile(file, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	urlPath := "/repo/release/targets/thermostat/" + digest + ".1.1.0"
	return &Content{
		Metadata: map[string][]byte{
			timestampPath: timestampBody,
			targetsPath:   targetsBody,
		},
		Payloads: map[string]PayloadFile{
			urlPath: {Path: file, Size: int64(len(payload)), SHA256: digest},
		},
		Releases: map[string][]string{"thermostat": {"1.1.0", "1.1.0+b7"}, "p": {"1"}},
	}, urlPath, payload
}

type testEnv struct {
	srv     *Server
	source  *fakeSource
	sink    *fakeSink
	clock   *clock.Fake
	logs    *syncBuffer
	http    *httptest.Server
	payload string
	pbytes  []byte
}

// newTestEnv builds a server with test content loaded, served by an
// httptest server on loopback. cfg's Source, Reports, Clock and Logger are
// filled in when unset.
func newTestEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	c, payload, pbytes := testContent(t)
	env := &testEnv{
		source:  &fakeSource{gen: 1, content: c},
		sink:    &fakeSink{},
		clock:   clock.NewFake(testStart),
		logs:    &syncBuffer{},
		payload: payload,
		pbytes:  pbytes,
	}
	if cfg.Source == nil {
		cfg.Source = env.source
	}
	if cfg.Reports == nil {
		cfg.Reports = env.sink
	}
	if cfg.Clock == nil {
		cfg.Clock = env.clock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	env.srv = s
	env.http = httptest.NewServer(s.Handler())
	t.Cleanup(env.http.Close)
	return env
}

// do sends a request and returns the response with its body read.
func (e *testEnv) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.http.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func wantHeader(t *testing.T, resp *http.Response, key, want string) {
	t.Helper()
	if got := resp.Header.Get(key); got != want {
		t.Errorf("%s %s: header %s = %q, want %q", resp.Request.Method, resp.Request.URL.Path, key, got, want)
	}
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func postReport(t *testing.T, e *testEnv, body string) (*http.Response, []byte) {
	t.Helper()
	return e.do(t, http.MethodPost, deviceapi.ReportsPath, strings.NewReader(body), "Content-Type", "application/json")
}

// newLoopbackServer serves h on a loopback port for the test's duration.
func newLoopbackServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}
