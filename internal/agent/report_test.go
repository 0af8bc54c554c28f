package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/report"
)

// testAgent builds an agent for server with a file slot backend that is
// never touched and a fresh, provisioned data dir.
func testAgent(t *testing.T, server string, reports bool) *Agent {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{Server: server, Product: "thermostat", Hardware: "rev-a", DataDir: filepath.Join(dir, "data"),
		ReleaseRoot: filepath.Join(dir, "release.json"), FleetRoot: filepath.Join(dir, "fleet.json"),
		Slot: SlotConfig{Backend: "file", Dir: filepath.Join(dir, "slots")}, Reports: &reports}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Provision(cfg.DataDir, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		HTTP: &fetch.Config{ConnectTimeout: time.Second, StallTimeout: 2 * time.Second, MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func queued(t *testing.T, q *reportQueue) []report.Report {
	t.Helper()
	files, err := q.pending()
	if err != nil {
		t.Fatal(err)
	}
	var out []report.Report
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r report.Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, r)
	}
	return out
}

func TestReportQueueDeduplicates(t *testing.T) {
	q := &reportQueue{dir: filepath.Join(t.TempDir(), "reports")}
	r := report.Report{Product: "thermostat", Version: "1.1.0", Outcome: "rolled_back", ErrorClass: report.ClassHealthCheck}
	for range 2 {
		if err := q.add(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := queued(t, q); len(got) != 1 || got[0] != r {
		t.Fatalf("queue after adding the same report twice: %+v", got)
	}
	// A different class is a different report.
	r2 := r
	r2.ErrorClass = report.ClassBootFallback
	if err := q.add(r2); err != nil {
		t.Fatal(err)
	}
	if got := queued(t, q); len(got) != 2 {
		t.Fatalf("queue: %+v, want 2 reports", got)
	}
}

// TestReportQueueNamesAreSafe: whatever a version or class holds (they come
// from signed metadata, but a name is still a name), the file stays inside
// the queue directory.
func TestReportQueueNamesAreSafe(t *testing.T) {
	q := &reportQueue{dir: filepath.Join(t.TempDir(), "reports")}
	if err := q.add(report.Report{Product: "../../etc", Version: "../passwd", Outcome: "failed"}); err != nil {
		t.Fatal(err)
	}
	files, err := q.pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || filepath.Dir(files[0]) != q.dir {
		t.Fatalf("queued files %v, want one inside %s", files, q.dir)
	}
}

func TestReportQueueTrimsOldest(t *testing.T) {
	q := &reportQueue{dir: filepath.Join(t.TempDir(), "reports")}
	report := func(i int) report.Report {
		return report.Report{Product: "thermostat", Version: fmt.Sprintf("1.0.%d", i), Outcome: "installed"}
	}
	// File times can be coarser than the loop is fast: give each queued
	// report a distinct age, oldest first.
	base := time.Now().Add(-time.Hour)
	seen := map[string]bool{}
	for i := range maxQueued {
		if err := q.add(report(i)); err != nil {
			t.Fatal(err)
		}
		files, err := q.pending()
		if err != nil {
			t.Fatal(err)
		}
		aged := 0
		for _, f := range files {
			if !seen[f] {
				seen[f] = true
				mt := base.Add(time.Duration(i) * time.Second)
				if err := os.Chtimes(f, mt, mt); err != nil {
					t.Fatal(err)
				}
				aged++
			}
		}
		if aged != 1 {
			t.Fatalf("adding report %d created %d files, want 1", i, aged)
		}
	}
	if got := queued(t, q); len(got) != maxQueued {
		t.Fatalf("%d queued, want %d", len(got), maxQueued)
	}
	for i := maxQueued; i < maxQueued+3; i++ {
		if err := q.add(report(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := queued(t, q)
	if len(got) != maxQueued {
		t.Fatalf("%d queued after overflow, want %d", len(got), maxQueued)
	}
	have := map[string]bool{}
	for _, r := range got {
		have[r.Version] = true
	}
	for i := range 3 {
		if have[report(i).Version] {
			t.Errorf("oldest report %s kept", report(i).Version)
		}
	}
	for i := 3; i < maxQueued+3; i++ {
		if !have[report(i).Version] {
			t.Errorf("report %s dropped, but it is not among the oldest", report(i).Version)
		}
	}
}

// reportServer records POSTs and answers with status().
type reportServer struct {
	mu       sync.Mutex
	status   int
	requests []*http.Request
	bodies   [][]byte
	srv      *httptest.Server
}

func newReportServer(t *testing.T, status int) *reportServer {
	rs := &reportServer{status: status}
	rs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.requests = append(rs.requests, r.Clone(context.Background()))
		rs.bodies = append(rs.bodies, b)
		status := rs.status
		rs.mu.Unlock()
		// A server (or a box in the path) that tries to track devices.
		http.SetCookie(w, &http.Cookie{Name: "track", Value: "device-123", Path: "/"})
		w.WriteHeader(status)
	}))
	t.Cleanup(rs.srv.Close)
	return rs
}

func (rs *reportServer) count() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.requests)
}

func (rs *reportServer) snapshot() ([]*http.Request, [][]byte) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]*http.Request(nil), rs.requests...), append([][]byte(nil), rs.bodies...)
}

func TestFlushReports(t *testing.T) {
	for _, tc := range []struct {
		status    int
		delivered bool // removed from the queue
	}{
		{http.StatusAccepted, true},
		{http.StatusBadRequest, true},
		{http.StatusServiceUnavailable, false},
		{http.StatusTooManyRequests, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			rs := newReportServer(t, tc.status)
			a := testAgent(t, rs.srv.URL, true)
			ctx := context.Background()
			a.enqueue(ctx, "thermostat", "1.1.0", "rolled_back", report.ClassHealthCheck)
			a.enqueue(ctx, "thermostat", "1.1.0", "installed", "")
			a.FlushReports(ctx)
			left := queued(t, a.queue)
			if tc.delivered {
				if len(left) != 0 || rs.count() != 2 {
					t.Fatalf("after %d: %d requests, queue %+v; want 2 requests and an empty queue", tc.status, rs.count(), left)
				}
			} else {
				if len(left) != 2 {
					t.Fatalf("after %d: queue %+v, want both reports kept", tc.status, left)
				}
				// The first failure ends the flush: no hammering.
				if rs.count() != 1 {
					t.Fatalf("after %d: %d requests, want 1", tc.status, rs.count())
				}
				// They go out once the server is back.
				rs.mu.Lock()
				rs.status = http.StatusAccepted
				rs.mu.Unlock()
				a.FlushReports(ctx)
				if left := queued(t, a.queue); len(left) != 0 {
					t.Fatalf("after recovery: queue %+v", left)
				}
			}
		})
	}
}

func TestFlushReportsConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	a := testAgent(t, url, true)
	ctx := context.Background()
	a.enqueue(ctx, "thermostat", "1.1.0", "failed", report.ClassNetwork)
	a.FlushReports(ctx)
	if left := queued(t, a.queue); len(left) != 1 {
		t.Fatalf("queue after connection refused: %+v, want the report kept", left)
	}
}

func TestReportRequestIsAnonymous(t *testing.T) {
	rs := newReportServer(t, http.StatusAccepted)
	a := testAgent(t, rs.srv.URL, true)
	ctx := context.Background()
	a.enqueue(ctx, "thermostat", "1.1.0", "rolled_back", report.ClassHealthCheck)
	a.FlushReports(ctx)
	// A second flush after the server set a cookie must not send it back.
	a.enqueue(ctx, "thermostat", "1.2.0", "installed", "")
	a.FlushReports(ctx)
	requests, bodies := rs.snapshot()
	if len(requests) != 2 {
		t.Fatalf("%d requests, want 2", len(requests))
	}
	for i, r := range requests {
		if r.Method != http.MethodPost || r.URL.Path != "/api/device/v1/reports" {
			t.Errorf("request %d: %s %s", i, r.Method, r.URL.Path)
		}
		if c := r.Header.Get("Cookie"); c != "" {
			t.Errorf("request %d sent Cookie %q", i, c)
		}
		if ua := r.Header.Get("User-Agent"); ua != "uptrust-agent" {
			t.Errorf("request %d User-Agent %q, want uptrust-agent", i, ua)
		}
		for _, h := range []string{"Authorization", "Referer", "X-Forwarded-For", "From"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("request %d sent %s: %q", i, h, v)
			}
		}
		var body map[string]any
		if err := json.Unmarshal(bodies[i], &body); err != nil {
			t.Fatalf("request %d body %q: %v", i, bodies[i], err)
		}
		for k := range body {
			switch k {
			case "product", "version", "outcome", "error_class":
			default:
				t.Errorf("request %d body has key %q: %s", i, k, bodies[i])
			}
		}
		if body["product"] != "thermostat" || body["outcome"] == nil || body["version"] == nil {
			t.Errorf("request %d body %s lacks product, version or outcome", i, bodies[i])
		}
	}
	var first map[string]string
	json.Unmarshal(bodies[0], &first)
	want := map[string]string{"product": "thermostat", "version": "1.1.0", "outcome": "rolled_back", "error_class": string(report.ClassHealthCheck)}
	if len(first) != len(want) {
		t.Fatalf("first body %v, want %v", first, want)
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("first body %s=%q, want %q", k, first[k], v)
		}
	}
}

func TestReportsDisabled(t *testing.T) {
	rs := newReportServer(t, http.StatusAccepted)
	a := testAgent(t, rs.srv.URL, false)
	ctx := context.Background()
	a.enqueue(ctx, "thermostat", "1.1.0", "installed", "")
	a.FlushReports(ctx)
	if left := queued(t, a.queue); len(left) != 0 {
		t.Fatalf("reports: false queued %+v", left)
	}
	if rs.count() != 0 {
		t.Fatalf("reports: false sent %d requests", rs.count())
	}
}

// TestReportDelay: Run sends reports between a minute after a check and a
// minute before the next one, or anywhere in a shorter wait.
func TestReportDelay(t *testing.T) {
	for _, wait := range []time.Duration{6 * time.Hour, 3 * time.Minute, 90 * time.Second, time.Second, 0} {
		lo, hi := time.Minute, wait-time.Minute
		if hi <= lo {
			lo, hi = 0, wait
		}
		for range 200 {
			if d := reportDelay(wait); d < lo || d > hi || d > wait {
				t.Fatalf("reportDelay(%v) = %v, want within [%v, %v]", wait, d, lo, hi)
			}
		}
	}
}
