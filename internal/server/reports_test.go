package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

func TestReportAccepted(t *testing.T) {
	e := newTestEnv(t, Config{})
	resp, body := postReport(t, e, `{"product":"thermostat","version":"1.1.0+b7","outcome":"rolled_back","error_class":"health_check"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	got := e.sink.got()
	want := report.Report{Product: "thermostat", Version: "1.1.0+b7", Outcome: "rolled_back", ErrorClass: "health_check"}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("sink got %+v, want [%+v]", got, want)
	}
	if at := e.sink.times[0]; !at.Equal(testStart) || at.Location() != time.UTC {
		t.Errorf("report time %v, want %v UTC from the clock", at, testStart)
	}

	// No Content-Type is accepted (tiny clients); a wrong one is not.
	resp, _ = e.do(t, http.MethodPost, deviceapi.ReportsPath,
		strings.NewReader(`{"product":"p","version":"1","outcome":"installed"}`))
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("no Content-Type: status %d", resp.StatusCode)
	}
	resp, body = e.do(t, http.MethodPost, deviceapi.ReportsPath,
		strings.NewReader(`{"product":"p","version":"1","outcome":"installed"}`), "Content-Type", "text/plain")
	checkProblem(t, resp, body, http.StatusUnsupportedMediaType)
}

// checkProblem checks an RFC 9457 problem answer and returns its detail.
func checkProblem(t *testing.T, resp *http.Response, body []byte, status int) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %s)", resp.StatusCode, status, body)
		return ""
	}
	wantHeader(t, resp, "Content-Type", "application/problem+json")
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("problem body %q: %v", body, err)
		return ""
	}
	if p.Type != "about:blank" || p.Title != http.StatusText(status) || p.Status != status || p.Detail == "" {
		t.Errorf("problem %+v does not match status %d", p, status)
	}
	return p.Detail
}

func TestReportRejected(t *testing.T) {
	e := newTestEnv(t, Config{})
	long := strings.Repeat("a", report.MaxFieldLen+1)
	for _, tc := range []struct {
		name, body string
		status     int
		detail     string
	}{
		{"malformed", `{"product":`, http.StatusBadRequest, "malformed"},
		{"not an object", `["installed"]`, http.StatusBadRequest, "malformed"},
		{"unknown field", `{"product":"p","version":"1","outcome":"installed","device_id":"x"}`, http.StatusBadRequest, "unknown field"},
		{"trailing data", `{"product":"p","version":"1","outcome":"installed"} {}`, http.StatusBadRequest, "after the JSON object"},
		{"oversized", `{"product":"p","version":"1","outcome":"installed","error_class":"` + strings.Repeat("x", MaxReportBytes) + `"}`, http.StatusRequestEntityTooLarge, "exceeds"},
		{"bad outcome", `{"product":"p","version":"1","outcome":"exploded"}`, http.StatusBadRequest, "outcome must be one of"},
		{"no outcome", `{"product":"p","version":"1"}`, http.StatusBadRequest, "outcome is required"},
		{"no product", `{"version":"1","outcome":"installed"}`, http.StatusBadRequest, "product is required"},
		{"no version", `{"product":"p","outcome":"installed"}`, http.StatusBadRequest, "version is required"},
		{"long product", `{"product":"` + long + `","version":"1","outcome":"installed"}`, http.StatusBadRequest, "longer than"},
		{"bad charset", `{"product":"p q","version":"1","outcome":"installed"}`, http.StatusBadRequest, "outside its allowed set"},
		{"free text error", `{"product":"p","version":"1","outcome":"failed","error_class":"disk full at /home/alice"}`, http.StatusBadRequest, "outside its allowed set"},
		{"leading dot", `{"product":".p","version":"1","outcome":"installed"}`, http.StatusBadRequest, "must start with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postReport(t, e, tc.body)
			detail := checkProblem(t, resp, body, tc.status)
			if !strings.Contains(detail, tc.detail) {
				t.Errorf("detail %q does not mention %q", detail, tc.detail)
			}
		})
	}
	if got := e.sink.got(); len(got) != 0 {
		t.Errorf("sink got rejected reports: %+v", got)
	}

	resp, body := e.do(t, http.MethodGet, deviceapi.ReportsPath, nil)
	checkProblem(t, resp, body, http.StatusMethodNotAllowed)
	wantHeader(t, resp, "Allow", "POST")
}

func TestReportSinkError(t *testing.T) {
	e := newTestEnv(t, Config{})
	e.sink.err = errors.New("database is locked at /var/lib/uptrust/db")
	resp, body := postReport(t, e, `{"product":"p","version":"1","outcome":"installed"}`)
	detail := checkProblem(t, resp, body, http.StatusInternalServerError)
	if strings.Contains(detail, "database") {
		t.Errorf("internal error leaked to the client: %q", detail)
	}
	if !strings.Contains(e.logs.String(), "database is locked") {
		t.Errorf("sink error not logged: %s", e.logs.String())
	}
}

func TestReportRateLimit(t *testing.T) {
	e := newTestEnv(t, Config{ReportRate: 1, ReportBurst: 2})
	const good = `{"product":"p","version":"1","outcome":"installed"}`
	for i := range 2 {
		if resp, body := postReport(t, e, good); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("report %d within burst: status %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := postReport(t, e, good)
	checkProblem(t, resp, body, http.StatusTooManyRequests)
	wantHeader(t, resp, "Retry-After", "1")

	e.clock.Advance(time.Second)
	if resp, body := postReport(t, e, good); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after refill: status %d %s", resp.StatusCode, body)
	}
	resp, body = postReport(t, e, good)
	checkProblem(t, resp, body, http.StatusTooManyRequests)
	if n := len(e.sink.got()); n != 3 {
		t.Errorf("sink got %d reports, want 3", n)
	}
}

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(2, 3)
	now := testStart
	for i := range 3 {
		if !b.allow(now) {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	if b.allow(now) {
		t.Fatal("empty bucket allowed a request")
	}
	if b.allow(now.Add(-time.Hour)) {
		t.Fatal("a clock going backwards refilled the bucket")
	}
	now = now.Add(500 * time.Millisecond) // one token at 2/s
	if !b.allow(now) || b.allow(now) {
		t.Fatal("half a second at 2/s should give exactly one token")
	}
	now = now.Add(time.Hour) // refill caps at burst
	for i := range 3 {
		if !b.allow(now) {
			t.Fatalf("refilled token %d refused", i)
		}
	}
	if b.allow(now) {
		t.Fatal("bucket exceeded its burst")
	}
}
