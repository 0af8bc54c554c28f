package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

// postFrom sends a report through the handler as if from addr.
func postFrom(s *Server, addr, body string) int {
	req := httptest.NewRequest(http.MethodPost, deviceapi.ReportsPath, strings.NewReader(body))
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec.Code
}

// A flood from one address takes its own share only: afterwards a fleet of
// other addresses, in the same instant, gets every report in.
func TestReportFloodLeavesFleetItsShare(t *testing.T) {
	e := newTestEnv(t, Config{ReportRate: 100, ReportBurst: 200})
	const good = `{"product":"p","version":"1","outcome":"installed"}`
	flooded := 0
	for range 1000 {
		if postFrom(e.srv, "192.0.2.66:4000", good) == http.StatusAccepted {
			flooded++
		}
	}
	if flooded != DefaultReportClientBurst {
		t.Errorf("flooder got %d reports in, want its burst %d", flooded, DefaultReportClientBurst)
	}
	for i := range 150 {
		addr := fmt.Sprintf("198.51.100.%d:5000", i)
		if code := postFrom(e.srv, addr, good); code != http.StatusAccepted {
			t.Fatalf("fleet report %d from %s: status %d during the flood", i, addr, code)
		}
	}
	if n := len(e.sink.got()); n != flooded+150 {
		t.Errorf("sink got %d reports, want %d", n, flooded+150)
	}
}

// Only products and versions of the release repository are counted; a
// failure or refusal about another version of a known product is counted
// as version "unknown"; the rest is refused with 422 and never reaches the
// sink.
func TestReportUnknownRelease(t *testing.T) {
	e := newTestEnv(t, Config{})
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"product":"invented","version":"1","outcome":"installed"}`, http.StatusUnprocessableEntity},
		{`{"product":"p","version":"9.9.9","outcome":"installed"}`, http.StatusUnprocessableEntity},
		{`{"product":"thermostat","version":"1","outcome":"installed"}`, http.StatusUnprocessableEntity},
		{`{"product":"thermostat","version":"1.1.0","outcome":"installed"}`, http.StatusAccepted},
		{`{"product":"p","version":"unknown","outcome":"failed","error_class":"network"}`, http.StatusAccepted},
		{`{"product":"p","version":"forged-9","outcome":"rejected","error_class":"repository-mismatch"}`, http.StatusAccepted},
		{`{"product":"p","version":"9.9.9","outcome":"rolled_back","error_class":"health-check"}`, http.StatusUnprocessableEntity},
		{`{"product":"invented","version":"unknown","outcome":"failed","error_class":"network"}`, http.StatusUnprocessableEntity},
	} {
		resp, body := postReport(t, e, tc.body)
		if tc.status != http.StatusAccepted {
			if d := checkProblem(t, resp, body, tc.status); !strings.HasPrefix(d, "unknown report: ") {
				t.Errorf("%s: detail %q", tc.body, d)
			}
		} else if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.body, resp.StatusCode, tc.status)
		}
	}
	want := []report.Report{{Product: "thermostat", Version: "1.1.0", Outcome: report.OutcomeInstalled},
		{Product: "p", Version: report.VersionUnknown, Outcome: report.OutcomeFailed, ErrorClass: report.ClassNetwork},
		{Product: "p", Version: report.VersionUnknown, Outcome: report.OutcomeRejected, ErrorClass: report.ClassRepoMismatch}}
	if got := e.sink.got(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sink got %+v, want %+v", got, want)
	}
}

// A sink at its daily cap makes the server answer 503 with a Retry-After
// that reaches the next UTC day; nothing is logged per report.
func TestReportsFull(t *testing.T) {
	e := newTestEnv(t, Config{})
	e.sink.err = fmt.Errorf("project: %w", ErrReportsFull)
	resp, body := postReport(t, e, `{"product":"p","version":"1","outcome":"installed"}`)
	checkProblem(t, resp, body, http.StatusServiceUnavailable)
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	if strings.Contains(e.logs.String(), "report sink failed") {
		t.Errorf("a full day was logged as a sink failure: %s", e.logs.String())
	}
}

func TestReportLimiterBoundsClients(t *testing.T) {
	l := newReportLimiter(1000, 1000, 1, 2, 2)
	now := testStart
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	for _, x := range []netip.Addr{a, a, b} {
		if !l.allow(x, now) {
			t.Fatalf("%v refused within its burst", x)
		}
	}
	if l.allow(a, now) {
		t.Fatal("a went over its burst")
	}
	// The table is full and no bucket has refilled: c is admitted by the
	// total alone and not tracked.
	if !l.allow(c, now) || l.tracked() != 2 {
		t.Fatalf("untracked client: tracked %d", l.tracked())
	}
	// Two seconds later every bucket is full: the sweep forgets them.
	now = now.Add(2 * time.Second)
	if !l.allow(c, now) || l.tracked() != 1 {
		t.Fatalf("after the sweep: tracked %d, want 1", l.tracked())
	}
}

func TestClientAddr(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote, xff string
		proxies     []netip.Prefix
		want        string
	}{
		{"192.0.2.1:4000", "", nil, "192.0.2.1"},
		{"192.0.2.1:4000", "203.0.113.9", nil, "192.0.2.1"}, // header of an untrusted peer
		{"[2001:db8:1:2:3:4:5:6]:443", "", nil, "2001:db8:1:2::"},
		{"[::ffff:192.0.2.1]:1", "", nil, "192.0.2.1"},
		{"10.1.2.3:80", "203.0.113.9, 10.9.9.9", proxy, "203.0.113.9"},
		{"10.1.2.3:80", "198.51.100.1, 203.0.113.9", proxy, "203.0.113.9"}, // the left entry is the client's own claim
		{"10.1.2.3:80", "", proxy, "10.1.2.3"},
		{"10.1.2.3:80", "garbage", proxy, "10.1.2.3"},
		{"not an address", "", nil, "invalid IP"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.RemoteAddr = tc.remote
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientAddr(req, tc.proxies).String(); got != tc.want {
			t.Errorf("%s %q: client %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}
