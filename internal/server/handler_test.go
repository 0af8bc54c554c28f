package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/deviceapi"
)

func TestMetadataGet(t *testing.T) {
	e := newTestEnv(t, Config{})
	for _, tc := range []struct {
		path  string
		body  []byte
		cache string
	}{
		{timestampPath, timestampBody, "no-cache"},
		{targetsPath, targetsBody, "public, max-age=31536000, immutable"},
	} {
		resp, body := e.do(t, http.MethodGet, tc.path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", tc.path, resp.StatusCode)
		}
		if !bytes.Equal(body, tc.body) {
			t.Errorf("GET %s: body %q, want %q", tc.path, body, tc.body)
		}
		wantHeader(t, resp, "Content-Type", "application/json")
		wantHeader(t, resp, "Content-Length", strconv.Itoa(len(tc.body)))
		wantHeader(t, resp, "ETag", etagOf(tc.body))
		wantHeader(t, resp, "Cache-Control", tc.cache)
		wantHeader(t, resp, "X-Content-Type-Options", "nosniff")
	}
}

func TestMetadataConditional(t *testing.T) {
	e := newTestEnv(t, Config{})
	etag := etagOf(timestampBody)
	for _, tc := range []struct {
		inm  string
		want int
	}{
		{etag, http.StatusNotModified},
		{"W/" + etag, http.StatusNotModified},
		{`"other", ` + etag, http.StatusNotModified},
		{"*", http.StatusNotModified},
		{`"other"`, http.StatusOK},
		{etag[:len(etag)-2] + `"`, http.StatusOK},
		{"garbage", http.StatusOK},
	} {
		resp, body := e.do(t, http.MethodGet, timestampPath, nil, "If-None-Match", tc.inm)
		if resp.StatusCode != tc.want {
			t.Errorf("If-None-Match %s: status %d, want %d", tc.inm, resp.StatusCode, tc.want)
			continue
		}
		if tc.want != http.StatusNotModified {
			continue
		}
		if len(body) != 0 {
			t.Errorf("If-None-Match %s: 304 with body %q", tc.inm, body)
		}
		wantHeader(t, resp, "ETag", etag)
		wantHeader(t, resp, "Cache-Control", "no-cache")
		wantHeader(t, resp, "Content-Type", "")
	}
}

func TestMetadataHead(t *testing.T) {
	e := newTestEnv(t, Config{})
	resp, body := e.do(t, http.MethodHead, targetsPath, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("HEAD: status %d, body %q", resp.StatusCode, body)
	}
	wantHeader(t, resp, "Content-Length", strconv.Itoa(len(targetsBody)))
	wantHeader(t, resp, "ETag", etagOf(targetsBody))
	wantHeader(t, resp, "Content-Type", "application/json")

	resp, _ = e.do(t, http.MethodPost, targetsPath, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST metadata: status %d, want 405", resp.StatusCode)
	}
	wantHeader(t, resp, "Allow", "GET, HEAD")
}

func TestPayload(t *testing.T) {
	e := newTestEnv(t, Config{})
	etag := etagOf(e.pbytes)

	resp, body := e.do(t, http.MethodGet, e.payload, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, e.pbytes) {
		t.Fatalf("GET payload: status %d, body %q", resp.StatusCode, body)
	}
	wantHeader(t, resp, "Content-Type", "application/octet-stream")
	wantHeader(t, resp, "ETag", etag)
	wantHeader(t, resp, "Cache-Control", "public, max-age=31536000, immutable")
	wantHeader(t, resp, "Accept-Ranges", "bytes")

	resp, body = e.do(t, http.MethodGet, e.payload, nil, "Range", "bytes=2-5")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("Range: status %d, want 206", resp.StatusCode)
	}
	if string(body) != "2345" {
		t.Errorf("Range: body %q, want %q", body, "2345")
	}
	wantHeader(t, resp, "Content-Range", "bytes 2-5/"+strconv.Itoa(len(e.pbytes)))

	// Resuming a download: If-Range with the current ETag honours Range,
	// a stale one sends the whole payload.
	resp, body = e.do(t, http.MethodGet, e.payload, nil, "Range", "bytes=30-", "If-Range", etag)
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(e.pbytes[30:]) {
		t.Errorf("If-Range current: status %d, body %q", resp.StatusCode, body)
	}
	resp, body = e.do(t, http.MethodGet, e.payload, nil, "Range", "bytes=30-", "If-Range", `"stale"`)
	if resp.StatusCode != http.StatusOK || len(body) != len(e.pbytes) {
		t.Errorf("If-Range stale: status %d, %d bytes", resp.StatusCode, len(body))
	}

	resp, _ = e.do(t, http.MethodGet, e.payload, nil, "Range", "bytes=1000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable Range: status %d, want 416", resp.StatusCode)
	}

	resp, body = e.do(t, http.MethodGet, e.payload, nil, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match payload: status %d, body %q", resp.StatusCode, body)
	}

	resp, body = e.do(t, http.MethodHead, e.payload, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD payload: status %d, body %q", resp.StatusCode, body)
	}
	wantHeader(t, resp, "Content-Length", strconv.Itoa(len(e.pbytes)))
}

func TestPayloadFileProblems(t *testing.T) {
	e := newTestEnv(t, Config{})
	file := e.srv.snap.Load().payloads[e.payload].file.Path

	// A blob that does not match the promised size is not served.
	if err := os.WriteFile(file, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(t, http.MethodGet, e.payload, nil)
	if resp.StatusCode != http.StatusInternalServerError || bytes.Contains(body, []byte("short")) {
		t.Errorf("size mismatch: status %d, body %q", resp.StatusCode, body)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	resp, _ = e.do(t, http.MethodGet, e.payload, nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("missing blob: status %d", resp.StatusCode)
	}
	if !strings.Contains(e.logs.String(), "payload size mismatch") {
		t.Errorf("size mismatch not logged: %s", e.logs.String())
	}
}

func TestNotFound(t *testing.T) {
	e := newTestEnv(t, Config{})
	for _, p := range []string{
		"/repo/fleet/metadata/8.root.json",
		"/repo/fleet/metadata/../metadata/timestamp.json",
		"/repo/",
		"/repo",
		"/",
		"/api/device/v1/reportsx",
	} {
		resp, body := e.do(t, http.MethodGet, p, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
			continue
		}
		wantHeader(t, resp, "Content-Type", "text/plain; charset=utf-8")
		if string(body) != "404 page not found\n" {
			t.Errorf("GET %s: body %q", p, body)
		}
	}
	// Escaped slashes are decoded before lookup; an escaped dot-dot does
	// not reach another document.
	resp, _ := e.do(t, http.MethodGet, "/repo/fleet/metadata/%2e%2e/metadata/timestamp.json", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("escaped dot-dot: status %d", resp.StatusCode)
	}
}

func TestNoContentYet(t *testing.T) {
	s, err := New(Config{Source: &fakeSource{genErr: errors.New("db down")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "db down") {
		t.Fatalf("Reload: err %v, want the source's error", err)
	}
	ts := newLoopbackServer(t, s.Handler())
	for p, want := range map[string]int{readyzPath: 503, timestampPath: 503, healthzPath: 200} {
		resp, err := ts.Client().Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s before load: status %d, want %d", p, resp.StatusCode, want)
		}
	}
}

// TestReadyz: /readyz is 200 only for content with a root and a timestamp,
// and says what is missing otherwise; /healthz stays 200 (liveness).
func TestReadyz(t *testing.T) {
	e := newTestEnv(t, Config{})
	resp, body := e.do(t, http.MethodGet, readyzPath, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no root.json published") {
		t.Errorf("readyz without root: %d %q", resp.StatusCode, body)
	}
	if !strings.Contains(e.logs.String(), "not ready: no root.json published") {
		t.Errorf("no not-ready warning logged:\n%s", e.logs.String())
	}
	c, _, _ := testContent(t)
	c.Metadata["/repo/fleet/metadata/1.root.json"] = []byte(`{"signed":{"_type":"root","version":1}}`)
	e.source.set(2, c)
	if err := e.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, body := e.do(t, http.MethodGet, readyzPath, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("readyz with root and timestamp: %d %q", resp.StatusCode, body)
	}
	e.source.set(3, &Content{Metadata: map[string][]byte{}})
	if err := e.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, body = e.do(t, http.MethodGet, readyzPath, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no metadata published") {
		t.Errorf("readyz with empty content: %d %q", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, http.MethodGet, healthzPath, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("healthz with empty content: %d, want 200", resp.StatusCode)
	}
}

// TestReloadLogsOnlyChanges: a new generation with the same content (as
// after a re-signing pass that changed nothing) is not logged as loaded.
func TestReloadLogsOnlyChanges(t *testing.T) {
	e := newTestEnv(t, Config{})
	count := func() int { return strings.Count(e.logs.String(), `msg="content loaded"`) }
	if n := count(); n != 1 {
		t.Fatalf("%d content loaded lines after the first load", n)
	}
	c, _, _ := testContent(t)
	c.Payloads = e.source.content.Payloads
	e.source.set(2, c)
	if err := e.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("unchanged content logged again: %d lines\n%s", n, e.logs.String())
	}
	c2, _, _ := testContent(t)
	c2.Payloads = c.Payloads
	c2.Metadata[timestampPath] = []byte(`{"signed":{"_type":"timestamp","version":8}}`)
	e.source.set(3, c2)
	if err := e.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Errorf("changed content: %d content loaded lines, want 2", n)
	}
}

func TestHealthz(t *testing.T) {
	e := newTestEnv(t, Config{})
	resp, body := e.do(t, http.MethodGet, healthzPath, nil)
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("healthz: status %d, body %q", resp.StatusCode, body)
	}
}

func TestReportsDisabled(t *testing.T) {
	s, err := New(Config{Source: &fakeSource{}})
	if err != nil {
		t.Fatal(err)
	}
	ts := newLoopbackServer(t, s.Handler())
	resp, err := ts.Client().Post(ts.URL+deviceapi.ReportsPath, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("reports without sink: status %d, want 404", resp.StatusCode)
	}
}

// sampleLine is one sample of the Prometheus text format 0.0.4.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (\S+)$`)

// parseExposition checks the text format line by line and returns every
// sample keyed by name and labels as written.
func parseExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("exposition does not end with a newline")
	}
	types := map[string]string{}
	samples := map[string]float64{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if typ != "counter" && typ != "gauge" && typ != "histogram" {
				t.Fatalf("line %d: unknown type %q", i+1, typ)
			}
			if _, dup := types[name]; dup {
				t.Fatalf("line %d: second TYPE for %s", i+1, name)
			}
			types[name] = typ
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %d: not a sample: %q", i+1, line)
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			t.Fatalf("line %d: value %q: %v", i+1, m[4], err)
		}
		family := m[1]
		if _, ok := types[family]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(family, suffix); ok && types[base] == "histogram" {
					family = base
				}
			}
		}
		if _, ok := types[family]; !ok {
			t.Fatalf("line %d: sample %s without TYPE", i+1, m[1])
		}
		key := m[1] + m[2]
		if _, dup := samples[key]; dup {
			t.Fatalf("line %d: duplicate sample %s", i+1, key)
		}
		samples[key] = v
	}
	return samples
}

func TestMetrics(t *testing.T) {
	e := newTestEnv(t, Config{})
	e.do(t, http.MethodGet, timestampPath, nil)
	e.do(t, http.MethodGet, timestampPath, nil, "If-None-Match", etagOf(timestampBody))
	e.do(t, http.MethodGet, timestampPath, nil, "If-None-Match", etagOf(timestampBody))
	e.do(t, http.MethodGet, e.payload, nil)
	e.do(t, http.MethodGet, "/nope", nil)
	postReport(t, e, `{"product":"thermostat","version":"1.1.0","outcome":"installed"}`)
	postReport(t, e, `{"product":"thermostat","version":"1.1.0","outcome":"bogus"}`)

	resp, body := e.do(t, http.MethodGet, metricsPath, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: status %d", resp.StatusCode)
	}
	wantHeader(t, resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	samples := parseExposition(t, string(body))
	for key, want := range map[string]float64{
		`uptrust_http_requests_total{route="metadata",code="200"}`:                   1,
		`uptrust_http_requests_total{route="metadata",code="304"}`:                   2,
		`uptrust_http_requests_total{route="payload",code="200"}`:                    1,
		`uptrust_http_requests_total{route="notfound",code="404"}`:                   1,
		`uptrust_http_requests_total{route="reports",code="202"}`:                    1,
		`uptrust_http_requests_total{route="reports",code="400"}`:                    1,
		`uptrust_http_request_duration_seconds_count{route="metadata"}`:              3,
		`uptrust_http_request_duration_seconds_bucket{route="metadata",le="+Inf"}`:   3,
		`uptrust_http_request_duration_seconds_bucket{route="metadata",le="0.0001"}`: 3, // fake clock: zero latency
		`uptrust_http_request_duration_seconds_count{route="reports"}`:               2,
		`uptrust_repo_metadata_bytes_total`:                                          float64(len(timestampBody)),
		`uptrust_repo_payload_bytes_total`:                                           float64(len(e.pbytes)),
		`uptrust_reports_total{outcome="installed"}`:                                 1,
		`uptrust_reports_total{outcome="failed"}`:                                    0,
		`uptrust_content_generation`:                                                 1,
		`uptrust_content_loaded`:                                                     1,
		`uptrust_content_reloads_total{result="ok"}`:                                 1,
	} {
		got, ok := samples[key]
		if !ok {
			t.Errorf("missing sample %s", key)
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	checkHistograms(t, samples)
}

// checkHistograms checks that every route's buckets are cumulative and
// that its count equals both the +Inf bucket and the route's requests.
func checkHistograms(t *testing.T, samples map[string]float64) {
	t.Helper()
	for _, rt := range routeNames {
		prev := 0.0
		for i := range numBuckets {
			le := "+Inf"
			if i < len(latencyBuckets) {
				le = strconv.FormatFloat(latencyBuckets[i].Seconds(), 'g', -1, 64)
			}
			key := `uptrust_http_request_duration_seconds_bucket{route="` + rt + `",le="` + le + `"}`
			v, ok := samples[key]
			if !ok {
				t.Fatalf("missing %s", key)
			}
			if v < prev {
				t.Errorf("%s = %v, below the previous bucket %v", key, v, prev)
			}
			prev = v
		}
		count := samples[`uptrust_http_request_duration_seconds_count{route="`+rt+`"}`]
		if count != prev {
			t.Errorf("route %s: count %v, +Inf bucket %v", rt, count, prev)
		}
		var requests float64
		for key, v := range samples {
			if strings.HasPrefix(key, `uptrust_http_requests_total{route="`+rt+`",`) {
				requests += v
			}
		}
		if requests != count {
			t.Errorf("route %s: %v requests counted, histogram count %v", rt, requests, count)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	var m metrics
	m.done(routePayload, http.StatusOK, 0)
	m.done(routePayload, http.StatusOK, latencyBuckets[0])   // on the bound: same bucket
	m.done(routePayload, http.StatusOK, latencyBuckets[0]+1) // just above: next
	m.done(routePayload, http.StatusTeapot, latencyBuckets[len(latencyBuckets)-1]*2)
	h := &m.latency[routePayload]
	if got := h.buckets[0].Load(); got != 2 {
		t.Errorf("first bucket = %d, want 2", got)
	}
	if got := h.buckets[1].Load(); got != 1 {
		t.Errorf("second bucket = %d, want 1", got)
	}
	if got := h.buckets[numBuckets-1].Load(); got != 1 {
		t.Errorf("+Inf bucket = %d, want 1", got)
	}
	if got := m.requests[routePayload][numCodes-1].Load(); got != 1 {
		t.Errorf("other code count = %d, want 1", got)
	}
	samples := parseExposition(t, string(m.appendExposition(nil, 0, false)))
	if got := samples[`uptrust_http_requests_total{route="payload",code="other"}`]; got != 1 {
		t.Errorf("other code sample = %v, want 1", got)
	}
}

// TestMetadata304NoAllocs guards the hot path: answering a conditional
// GET must not allocate in the handler.
func TestMetadata304NoAllocs(t *testing.T) {
	s, req, w := benchSetup(t)
	h := s.Handler()
	allocs := testing.AllocsPerRun(1000, func() {
		clear(w.h)
		h.ServeHTTP(w, req)
	})
	if w.code != http.StatusNotModified {
		t.Fatalf("status %d, want 304", w.code)
	}
	if allocs != 0 {
		t.Errorf("handler allocates %v times per 304", allocs)
	}
}

// discardWriter is a ResponseWriter that keeps one header map.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func benchSetup(t testing.TB) (*Server, *http.Request, *discardWriter) {
	c, _, _ := testContent(t)
	s, err := New(Config{Source: &fakeSource{gen: 1, content: c}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Path: timestampPath},
		Header: http.Header{"If-None-Match": {etagOf(timestampBody)}},
	}
	return s, req, &discardWriter{h: http.Header{}}
}

func BenchmarkMetadata304(b *testing.B) {
	s, req, w := benchSetup(b)
	h := s.Handler()
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if w.code != http.StatusNotModified {
		b.Fatalf("status %d, want 304", w.code)
	}
}

func BenchmarkMetadata200(b *testing.B) {
	s, req, w := benchSetup(b)
	req.Header = http.Header{}
	h := s.Handler()
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if w.code != http.StatusOK {
		b.Fatalf("status %d, want 200", w.code)
	}
}

// BenchmarkMetadata304Parallel runs the handler on every P to show counter
// contention on the shared metrics.
func BenchmarkMetadata304Parallel(b *testing.B) {
	s, req, _ := benchSetup(b)
	h := s.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

// TestNoPublicMetrics: with NoPublicMetrics the handler answers 404 for
// /metrics, and MetricsHandler serves them instead.
func TestNoPublicMetrics(t *testing.T) {
	e := newTestEnv(t, Config{NoPublicMetrics: true})
	if resp, _ := e.do(t, http.MethodGet, metricsPath, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /metrics: status %d, want 404", resp.StatusCode)
	}
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "uptrust_http_requests_total") {
		t.Errorf("MetricsHandler: %d %q", rec.Code, rec.Body.String())
	}
	// The test content has no root: Ready says so, as /readyz does.
	if ok, why := e.srv.Ready(); ok || !strings.Contains(why, "root.json") {
		t.Errorf("Ready: %v %q, want not ready for want of a root", ok, why)
	}
}
