package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
)

// TestSettingsChanges: an admin changes report_k and a retention period
// with a merge patch and If-Match; the values in effect change for the
// project (reports use them) and the change is audited once, old -> new;
// null goes back to uptrust.json; bad input, unknown and read-only fields,
// a missing or stale If-Match are refused, audited as refused, and change
// nothing.
func TestSettingsChanges(t *testing.T) {
	e := newEnv(t)
	get := func() api.Settings {
		t.Helper()
		resp, b := e.do("GET", "/api/v1/settings", "auditor", "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET settings: %d %s", resp.StatusCode, b)
		}
		var s api.Settings
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s0 := get()
	if s0.ReportK != 5 || s0.Retention["audit"] != "730d" || s0.Retention["tokens"] != "730d" || len(s0.Overridden) != 0 || s0.PublicListen != "127.0.0.1:8080" {
		t.Fatalf("settings of a new project: %+v", s0)
	}
	etag := e.settingsETag()
	for _, tc := range []struct {
		body, ifMatch string
		status        int
		want          string
	}{
		{`{"report_k":0}`, etag, 400, "report_k"},
		{`{"report_k":"7"}`, etag, 400, "report_k"},
		{`{"report_k":2.5}`, etag, 400, "report_k"},
		{`{"retention":{"audit":"12h"}}`, etag, 400, "retention.audit"},
		{`{"retention":{"audit":"forever"}}`, etag, 400, "retention.audit"},
		{`{"retention":{"releases":"10d"}}`, etag, 400, "retention.releases"},
		{`{"retention":"10d"}`, etag, 400, "retention"},
		{`{"public_listen":":80"}`, etag, 400, "public_listen: unknown or read-only field"},
		{`{"tls":true,"report_k":6}`, etag, 400, "tls"},
		{`{}`, etag, 400, "nothing to change"},
		{`[1]`, etag, 400, "JSON object"},
		{`{"report_k":6}`, "", 428, "If-Match is required"},
		{`{"report_k":6}`, `"stale"`, 412, "changed since you read them"},
	} {
		id := "settings-bad-" + strings.NewReplacer("{", "", "}", "", `"`, "", ":", "-", ",", "-", "[", "", "]", "").Replace(tc.body) + tc.ifMatch[min(1, len(tc.ifMatch)):min(4, len(tc.ifMatch))]
		hdr := []string{"X-Request-Id", id}
		if tc.ifMatch != "" {
			hdr = append(hdr, "If-Match", tc.ifMatch)
		}
		resp, b := e.do("PATCH", "/api/v1/settings", "admin", tc.body, hdr...)
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("PATCH %s (If-Match %q): %d %s, want %d naming %q", tc.body, tc.ifMatch, resp.StatusCode, b, tc.status, tc.want)
		}
		if got := e.auditWith(id); len(got) != 1 || !strings.HasPrefix(got[0], "settings.change settings refused t-admin (admin) "+id) {
			t.Errorf("PATCH %s: audit %q, want one refused entry", tc.body, got)
		}
	}
	if s := get(); s.ReportK != 5 || len(s.Overridden) != 0 {
		t.Fatalf("refused patches changed the settings: %+v", s)
	}
	if got, _ := e.p.Store.Settings(t.Context()); len(got) != 0 {
		t.Fatalf("refused patches stored %+v", got)
	}

	resp, b := e.do("PATCH", "/api/v1/settings", "admin", `{"report_k":8,"retention":{"audit":"400d"}}`,
		"If-Match", etag, "X-Request-Id", "settings-ok", "Content-Type", "application/merge-patch+json")
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag || resp.Header.Get("ETag") == "" {
		t.Fatalf("PATCH settings: %d ETag %q %s", resp.StatusCode, resp.Header.Get("ETag"), b)
	}
	var s1 api.Settings
	if err := json.Unmarshal(b, &s1); err != nil {
		t.Fatal(err)
	}
	if s1.ReportK != 8 || s1.Retention["audit"] != "400d" || s1.Retention["tokens"] != "730d" || strings.Join(s1.Overridden, ",") != "report_k,retention.audit" {
		t.Errorf("settings after PATCH: %+v", s1)
	}
	if got, want := e.auditWith("settings-ok"), "settings.change settings ok t-admin (admin) settings-ok: report_k 5 -> 8, retention.audit 730d -> 400d"; len(got) != 1 || got[0] != want {
		t.Errorf("audit of the change: %q, want %q", got, want)
	}
	// The project applies it: reports refuse k below the new report_k.
	if resp, b := e.do("GET", "/api/v1/reports?k=6", "auditor", ""); resp.StatusCode != 422 || !strings.Contains(string(b), "report_k 8") {
		t.Errorf("reports with k 6 under report_k 8: %d %s", resp.StatusCode, b)
	}
	if rs, err := e.p.Runtime(t.Context()); err != nil || rs.ReportK != 8 || rs.Retention.Audit != project.Period(400*24*60*60*1e9) {
		t.Errorf("project runtime settings: %+v, %v", rs, err)
	}
	// The old ETag is stale now.
	if resp, _ := e.do("PATCH", "/api/v1/settings", "admin", `{"report_k":9}`, "If-Match", etag); resp.StatusCode != http.StatusPreconditionFailed || resp.Header.Get("ETag") != e.settingsETag() {
		t.Errorf("PATCH with the old ETag: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	// null goes back to uptrust.json.
	resp, b = e.do("PATCH", "/api/v1/settings", "admin", `{"report_k":null,"retention":null}`, "If-Match", e.settingsETag(), "X-Request-Id", "settings-reset")
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH null: %d %s", resp.StatusCode, b)
	}
	if s := get(); s.ReportK != 5 || s.Retention["audit"] != "730d" || len(s.Overridden) != 0 {
		t.Errorf("settings after reset: %+v", s)
	}
	if got := e.auditWith("settings-reset"); len(got) != 1 || !strings.HasSuffix(got[0], "report_k 8 -> 5 (uptrust.json), retention.audit 400d -> 730d (uptrust.json)") {
		t.Errorf("audit of the reset: %q", got)
	}
}
