package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
)

// concrete fills a route's path parameters with objects the env has.
func concrete(path string) string {
	path = strings.Replace(path, "/metadata/{repo}/{role}/{version}", "/metadata/release/targets/1", 1)
	return strings.NewReplacer("{product}", "thermostat", "{version}", "1.1.0", "{name}", "t-spare", "{item}", "CRA-II-5", "{sha256}", matrixBlobSHA,
		"{device}", matrixDevice, "{id}", matrixEnrollToken, "{rollout}", matrixRollout).Replace(path)
}

// rolePolicy is who may call each route, written out here rather than
// taken from the routes or package access so that a change of either
// fails the matrix: the roles are admin (tokens, settings),
// release-manager (push, products), operator (rollouts), auditor
// (read-only, including the audit log); everyone with a token reads
// products, releases, rollouts, reports, settings and health. admin does
// not imply the others' changes.
var rolePolicy = map[string]string{
	"GET /api/v1/openapi.json":                              "none",
	"GET /api/v1/health":                                    "admin,release-manager,operator,auditor",
	"GET /api/v1/settings":                                  "admin,release-manager,operator,auditor",
	"PATCH /api/v1/settings":                                "admin",
	"GET /api/v1/tokens":                                    "admin",
	"POST /api/v1/tokens":                                   "admin",
	"DELETE /api/v1/tokens/{name}":                          "admin",
	"GET /api/v1/products":                                  "admin,release-manager,operator,auditor",
	"GET /api/v1/products/{product}":                        "admin,release-manager,operator,auditor",
	"GET /api/v1/products/{product}/attestations":           "admin,release-manager,operator,auditor",
	"POST /api/v1/products/{product}/attestations":          "release-manager",
	"DELETE /api/v1/products/{product}/attestations/{item}": "release-manager",
	"GET /api/v1/products/{product}/market":                 "admin,release-manager,operator,auditor",
	"PUT /api/v1/products/{product}/market":                 "release-manager",
	"GET /api/v1/products/{product}/compliance":             "admin,release-manager,operator,auditor",
	"GET /api/v1/releases":                                  "admin,release-manager,operator,auditor",
	"GET /api/v1/releases/{product}/{version}":              "admin,release-manager,operator,auditor",
	"GET /api/v1/rollouts":                                  "admin,release-manager,operator,auditor",
	"POST /api/v1/rollouts":                                 "operator",
	"GET /api/v1/rollouts/{product}":                        "admin,release-manager,operator,auditor",
	"PATCH /api/v1/rollouts/{product}":                      "operator",
	"GET /api/v1/rollouts/{product}/history":                "admin,release-manager,operator,auditor",
	"GET /api/v1/reports":                                   "admin,release-manager,operator,auditor",
	"GET /api/v1/audit":                                     "admin,auditor",
	"GET /api/v1/audit/verify":                              "admin,auditor",
	"GET /api/v1/blobs/{sha256}":                            "release-manager",
	"HEAD /api/v1/blobs/{sha256}":                           "release-manager",
	"PUT /api/v1/blobs/{sha256}":                            "release-manager",
	"GET /api/v1/metadata":                                  "admin,release-manager,operator,auditor",
	"GET /api/v1/metadata/{repo}/{role}/{version}":          "admin,release-manager,operator,auditor",
	"POST /api/v1/push":                                     "release-manager",
	// Managed fleets: the operator runs the fleet (enrolment tokens are
	// fleet credentials, not people's); device data is read by the
	// operator, the auditor and the admin, not the release manager.
	"GET /api/v1/products/{product}/device-policy":       "admin,release-manager,operator,auditor",
	"PUT /api/v1/products/{product}/mode":                "operator",
	"PUT /api/v1/products/{product}/inventory":           "operator",
	"POST /api/v1/products/{product}/preauthorized-keys": "operator",
	"GET /api/v1/enrollment-tokens":                      "operator",
	"POST /api/v1/enrollment-tokens":                     "operator",
	"DELETE /api/v1/enrollment-tokens/{id}":              "operator",
	"GET /api/v1/devices":                                "admin,operator,auditor",
	"GET /api/v1/devices/{device}":                       "admin,operator,auditor",
	"GET /api/v1/devices/{device}/export":                "admin,operator,auditor",
	"POST /api/v1/devices/{device}/accept":               "operator",
	"POST /api/v1/devices/{device}/reject":               "operator",
	"POST /api/v1/devices/{device}/decommission":         "operator",
	"DELETE /api/v1/devices/{device}":                    "operator",
	// Managed rollouts in waves are the operator's, like rollouts; groups
	// and tags are device management.
	"GET /api/v1/managed-rollouts":                   "admin,release-manager,operator,auditor",
	"POST /api/v1/managed-rollouts":                  "operator",
	"GET /api/v1/managed-rollouts/{rollout}":         "admin,release-manager,operator,auditor",
	"POST /api/v1/managed-rollouts/{rollout}/pause":  "operator",
	"POST /api/v1/managed-rollouts/{rollout}/resume": "operator",
	"POST /api/v1/managed-rollouts/{rollout}/abort":  "operator",
	"GET /api/v1/products/{product}/device-labels":   "admin,operator,auditor",
	"PUT /api/v1/devices/{device}/groups/{name}":     "operator",
	"DELETE /api/v1/devices/{device}/groups/{name}":  "operator",
	"PUT /api/v1/devices/{device}/tags/{name}":       "operator",
	"DELETE /api/v1/devices/{device}/tags/{name}":    "operator",
}

// matrixRequest is a well-formed body and headers for a route of the
// matrix, so that a role it allows succeeds.
func matrixRequest(e *env, method, path string) (string, []string) {
	body := ""
	var hdr []string
	switch {
	case method == "POST" && strings.HasSuffix(path, "/attestations"):
		body = `{"item":"CRA-II-5","url":"https://example.com/cvd","note":"the disclosure policy"}`
	case method == "PUT" && strings.HasSuffix(path, "/market"):
		body = `{"placed_on":"2027-03-01","expected_use":"7y"}`
	case method == "POST" && strings.HasSuffix(path, "/tokens"):
		body = `{"name":"matrix-new","role":"auditor","expires":"1d"}`
	case method == "POST" && strings.HasSuffix(path, "/push"):
		body = `{"metadata":[]}`
	case method == "PUT" && strings.HasSuffix(path, "/mode"):
		body = `{"mode":"managed"}`
	case method == "PUT" && strings.HasSuffix(path, "/inventory"):
		body = `{"fields":["version","hardware"]}`
	case method == "POST" && strings.HasSuffix(path, "/preauthorized-keys"):
		body = `{"public_key":"` + matrixKey + `"}`
	case method == "POST" && strings.HasSuffix(path, "/enrollment-tokens"):
		body = `{"product":"thermostat","uses":3,"expires":"2h"}`
	case method == "POST" && strings.Contains(path, "/devices/"):
		body = ""
	case method == "POST" && strings.HasSuffix(path, "/managed-rollouts"):
		body = `{"product":"thermostat","version":"1.1.0","waves":"50%,100%","max_failure":"5%","min_success":2,"soak":"30m"}`
	case method == "POST" && strings.Contains(path, "/managed-rollouts/"):
		body = ""
	case method == "PUT" && (strings.Contains(path, "/groups/") || strings.Contains(path, "/tags/")):
		body = ""
	case method == "POST" && path == "/api/v1/rollouts":
		body = `{"product":"lamp","version":"1.2.0","percent":20}`
	case method == "POST":
		body = `{"product":"thermostat","version":"1.2.0","percent":20}`
		hdr = []string{"If-Match", e.etag("thermostat")}
	case method == "PATCH" && strings.HasSuffix(path, "/settings"):
		body = `{"report_k":6}`
		hdr = []string{"If-Match", e.settingsETag()}
	case method == "PATCH":
		body = `{"percent":30}`
		hdr = []string{"If-Match", e.etag("thermostat")}
	case method == "PUT":
		body = matrixBlob
		hdr = []string{"Content-Type", "application/octet-stream", "Upload-Length", fmt.Sprint(len(matrixBlob))}
	}
	return body, hdr
}

// isRead says whether a method only reads.
func isRead(method string) bool { return method == "GET" || method == "HEAD" }

// isRole says whether a test credential is a valid token of a role.
func isRole(cred string) bool {
	_, err := access.ParseRole(cred)
	return err == nil
}

// TestAuthMatrix: every route × every role and every credential that must
// not authenticate (none, expired, revoked, malformed, unknown), with real
// tokens the project created: 401 or 403 with a problem document and
// nothing changed; the roles a route allows get past authorisation; every
// mutation by a role leaves exactly one audit entry with its request id,
// naming the token, its role and the outcome.
func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	// Percent rollouts are for anonymous products (thermostat is managed):
	// the matrix starts one of lamp, which has none yet (no If-Match).
	addLamp(t, e, false)
	creds := []string{credNone, credExpired, credRevoked, credMalformed, credUnknown, "admin", "release-manager", "operator", "auditor"}
	for _, rt := range e.api.Routes() {
		for _, cred := range creds {
			before := e.state()
			body, hdr := matrixRequest(e, rt.Method, rt.Path)
			id := fmt.Sprintf("matrix-%s-%s-%s", rt.Method, strings.ReplaceAll(strings.TrimPrefix(rt.Path, "/api/v1/"), "/", "."), cred)
			id = strings.NewReplacer("{", "", "}", "").Replace(id)
			hdr = append(hdr, "X-Request-Id", id)
			resp, b := e.do(rt.Method, concrete(rt.Path), cred, body, hdr...)
			what := fmt.Sprintf("%s %s as %q", rt.Method, rt.Path, cred)
			if resp.Header.Get("X-Request-Id") != id {
				t.Errorf("%s: X-Request-Id %q, want the client's %q", what, resp.Header.Get("X-Request-Id"), id)
			}
			policy, ok := rolePolicy[rt.Method+" "+rt.Path]
			if !ok {
				t.Errorf("%s %s: no role policy in this test", rt.Method, rt.Path)
				continue
			}
			allowed := policy == "none" || slices.Contains(strings.Split(policy, ","), cred)
			switch {
			case policy == "none":
				if resp.StatusCode != 200 {
					t.Errorf("%s: %d, want 200 (no token needed)", what, resp.StatusCode)
				}
			case !isRole(cred):
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s: %d, want 401\n%s", what, resp.StatusCode, b)
				}
			case !allowed:
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s: %d, want 403\n%s", what, resp.StatusCode, b)
				}
			default:
				if resp.StatusCode >= 300 {
					t.Errorf("%s: %d, want success\n%s", what, resp.StatusCode, b)
				}
			}
			if !allowed || isRead(rt.Method) {
				if after := e.state(); after != before {
					t.Errorf("%s: answered %d but changed the state", what, resp.StatusCode)
				}
			}
			// A refused mutation by a known role is audited as refused,
			// a permitted one as ok, but for blob uploads (the push that
			// references the blob is audited); reads and unauthenticated
			// requests are not audited.
			got := e.auditWith(id)
			who := fmt.Sprintf("t-%s (%s) %s", cred, cred, id)
			switch {
			case !isRead(rt.Method) && !allowed && isRole(cred):
				if len(got) != 1 || !strings.Contains(got[0], " refused "+who) {
					t.Errorf("%s: audit entries %q, want one refused entry by %s", what, got, who)
				}
			case !isRead(rt.Method) && allowed && !strings.Contains(rt.Path, "/blobs/"):
				if len(got) != 1 || !strings.Contains(got[0], " ok "+who) {
					t.Errorf("%s: audit entries %q, want one ok entry by %s", what, got, who)
				}
			default:
				if len(got) != 0 {
					t.Errorf("%s: audit entries %q, want none", what, got)
				}
			}
		}
	}
}

// TestBadInput: malformed JSON, unknown fields, an oversized body, a wrong
// content type, a missing or stale If-Match and out-of-range values get a
// 4xx problem document, an audit entry with outcome refused, and change
// nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	good := e.etag("thermostat")
	big := `{"percent":1,"halted":false` + strings.Repeat(" ", api.MaxBody) + `}`
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		want                     int
	}{
		{"malformed JSON", "PATCH", "/api/v1/rollouts/thermostat", `{"percent":`, []string{"If-Match", good}, 400},
		{"unknown field", "PATCH", "/api/v1/rollouts/thermostat", `{"percent":20,"percnt":30}`, []string{"If-Match", good}, 400},
		{"two values", "PATCH", "/api/v1/rollouts/thermostat", `{"percent":20} {}`, []string{"If-Match", good}, 400},
		{"empty change", "PATCH", "/api/v1/rollouts/thermostat", `{}`, []string{"If-Match", good}, 400},
		{"oversized", "PATCH", "/api/v1/rollouts/thermostat", big, []string{"If-Match", good}, 413},
		{"content type", "PATCH", "/api/v1/rollouts/thermostat", `{"percent":20}`, []string{"If-Match", good, "Content-Type", "text/plain"}, 415},
		{"no If-Match", "PATCH", "/api/v1/rollouts/thermostat", `{"percent":20}`, nil, 428},
		{"stale If-Match", "PATCH", "/api/v1/rollouts/thermostat", `{"percent":20}`, []string{"If-Match", `"0123"`}, 412},
		{"percent 101", "PATCH", "/api/v1/rollouts/thermostat", `{"percent":101}`, []string{"If-Match", good}, 422},
		{"no such rollout", "PATCH", "/api/v1/rollouts/nope", `{"percent":20}`, []string{"If-Match", good}, 404},
		{"start without If-Match", "POST", "/api/v1/rollouts", `{"product":"thermostat","version":"1.2.0","percent":5}`, nil, 428},
		{"start stale", "POST", "/api/v1/rollouts", `{"product":"thermostat","version":"1.2.0","percent":5}`, []string{"If-Match", `"x"`}, 412},
		{"start unknown release", "POST", "/api/v1/rollouts", `{"product":"thermostat","version":"9.9.9","percent":5}`, []string{"If-Match", good}, 404},
		{"start unknown product", "POST", "/api/v1/rollouts", `{"product":"toaster","version":"1.0.0","percent":5}`, nil, 404},
		{"start missing percent", "POST", "/api/v1/rollouts", `{"product":"thermostat","version":"1.2.0"}`, []string{"If-Match", good}, 400},
		{"start negative percent", "POST", "/api/v1/rollouts", `{"product":"thermostat","version":"1.2.0","percent":-1}`, []string{"If-Match", good}, 422},
	} {
		before := e.state()
		id := "bad-" + strings.ReplaceAll(tc.name, " ", "-")
		resp, b := e.do(tc.method, tc.path, "operator", tc.body, append(tc.hdr, "X-Request-Id", id)...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.name, resp.StatusCode, tc.want, b)
		}
		if e.state() != before {
			t.Errorf("%s: the state changed", tc.name)
		}
		if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], " refused t-operator (operator) "+id) {
			t.Errorf("%s: audit %q, want one refused entry by t-operator", tc.name, got)
		}
	}
	// Queries too.
	for _, q := range []string{"/api/v1/rollouts?halted=maybe", "/api/v1/audit?since=yesterday", "/api/v1/audit?limit=0",
		"/api/v1/audit?limit=1001", "/api/v1/audit?cursor=zzz", "/api/v1/releases?colour=red", "/api/v1/reports?k=x", "/api/v1/reports?k=2"} {
		resp, b := e.do("GET", q, "auditor", "")
		if resp.StatusCode != 400 && !(strings.HasSuffix(q, "k=2") && resp.StatusCode == 422) {
			t.Errorf("GET %s: %d\n%s", q, resp.StatusCode, b)
		}
	}
}

// TestRolloutChanges: start, set percent, halt and resume through the API;
// each answer's ETag is the new one and the old one is then stale; the
// audit log has one entry per change, the project's, naming the token,
// its role and the request id; and the history lists the changes.
// addLamp adds the anonymous product lamp with releases 1.1.0 and 1.2.0,
// and a percent rollout of 1.1.0 at 10 % when rollout is true.
func addLamp(t *testing.T, e *env, rollout bool) {
	t.Helper()
	ctx := t.Context()
	if err := e.p.AddProduct(ctx, project.ProductSpec{Name: "lamp", Hardware: []string{"v1"}, SupportUntil: "2031-12-31"}); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1.1.0", "1.2.0"} {
		if _, err := e.p.AddRelease(ctx, project.ReleaseSpec{Product: "lamp", Version: v, Payload: strings.NewReader("lamp " + v),
			Kind: release.KindSecurity, SecurityVersion: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if rollout {
		if _, err := e.p.StartRollout(ctx, "lamp", "1.1.0", 10); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPercentRolloutRefusedForManaged: POST /api/v1/rollouts (a percent
// rollout) on a managed product is a 409 naming the wave flags, audited as
// refused, and changes nothing.
func TestPercentRolloutRefusedForManaged(t *testing.T) {
	e := newEnv(t)
	before := e.state()
	resp, b := e.do("POST", "/api/v1/rollouts", "operator", `{"product":"thermostat","version":"1.2.0","percent":5}`,
		"If-Match", e.etag("thermostat"), "X-Request-Id", "percent-managed")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "--waves") || !strings.Contains(string(b), "managed") {
		t.Errorf("percent rollout of a managed product: %d %s, want 409 naming --waves", resp.StatusCode, b)
	}
	if after := e.state(); after != before {
		t.Error("the refused percent rollout changed the state")
	}
	if got := e.auditWith("percent-managed"); len(got) != 1 || !strings.Contains(got[0], " refused t-operator (operator) percent-managed") {
		t.Errorf("audit %q, want one refused entry", got)
	}
}

func TestRolloutChanges(t *testing.T) {
	e := newEnv(t)
	addLamp(t, e, true)
	etag := e.etag("lamp")
	steps := []struct{ method, path, body, check string }{
		{"POST", "/api/v1/rollouts", `{"product":"lamp","version":"1.2.0","percent":5}`, `"version":"1.2.0","percent":5,"halted":false`},
		{"PATCH", "/api/v1/rollouts/lamp", `{"percent":50}`, `"percent":50,"halted":false`},
		{"PATCH", "/api/v1/rollouts/lamp", `{"halted":true}`, `"percent":50,"halted":true`},
		{"PATCH", "/api/v1/rollouts/lamp", `{"halted":false,"percent":100}`, `"percent":100,"halted":false`},
	}
	for i, s := range steps {
		e.clk.Advance(60e9)
		id := fmt.Sprintf("step-%d", i)
		resp, b := e.do(s.method, s.path, "operator", s.body, "If-Match", etag, "X-Request-Id", id)
		if resp.StatusCode >= 300 || !strings.Contains(string(b), s.check) {
			t.Fatalf("step %d: %d %s, want %s", i, resp.StatusCode, b, s.check)
		}
		next := resp.Header.Get("ETag")
		if next == "" || next == etag || next != e.etag("lamp") {
			t.Errorf("step %d: ETag %q (before %q, now %q)", i, next, etag, e.etag("lamp"))
		}
		if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], " ok t-operator (operator) "+id) {
			t.Errorf("step %d: audit %q", i, got)
		}
		// The old ETag is stale now.
		if resp, _ := e.do("PATCH", "/api/v1/rollouts/lamp", "operator", `{"percent":1}`, "If-Match", etag); resp.StatusCode != 412 {
			t.Errorf("step %d: the previous ETag: %d, want 412", i, resp.StatusCode)
		}
		etag = next
	}
	ro, err := e.p.Store.Rollout(t.Context(), "lamp")
	if err != nil || ro.Version != "1.2.0" || ro.Percent != 100 || ro.Halted {
		t.Errorf("stored rollout %+v, %v", ro, err)
	}
	var hist api.Page[api.AuditEntry]
	_, b := e.do("GET", "/api/v1/rollouts/lamp/history", "auditor", "")
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatal(err)
	}
	// The setup's start, and the four steps.
	if len(hist.Items) != 5 || hist.Items[1].Action != "rollout.start" || !strings.Contains(hist.Items[4].Detail, "resumed") ||
		hist.Items[0].Actor != "cli" || hist.Items[4].Actor != "t-operator" || hist.Items[4].RequestID != "step-3" {
		t.Errorf("history %+v", hist.Items)
	}
}

// TestListsPaginateAndFilter: following next_cursor with a small limit
// gives the same items as one page; filters select; a cursor of another
// list is refused.
func TestListsPaginateAndFilter(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		e.clk.Advance(60e9)
		if resp, b := e.do("PATCH", "/api/v1/rollouts/thermostat", "operator", fmt.Sprintf(`{"percent":%d}`, 20+i), "If-Match", e.etag("thermostat")); resp.StatusCode != 200 {
			t.Fatalf("PATCH: %d %s", resp.StatusCode, b)
		}
	}
	get := func(path string) api.Page[api.AuditEntry] {
		t.Helper()
		resp, b := e.do("GET", path, "auditor", "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		var p api.Page[api.AuditEntry]
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	all := get("/api/v1/audit?limit=1000")
	if all.Next != "" || len(all.Items) < 15 {
		t.Fatalf("one page: %d items, next %q", len(all.Items), all.Next)
	}
	var paged []api.AuditEntry
	pages := 0
	for cur := ""; ; pages++ {
		p := get("/api/v1/audit?limit=3&cursor=" + cur)
		paged = append(paged, p.Items...)
		if p.Next == "" {
			break
		}
		cur = p.Next
	}
	if !slices.Equal(paged, all.Items) || pages < 5 {
		t.Errorf("paged %d items in %d pages, want the %d of one page", len(paged), pages, len(all.Items))
	}
	for i := 1; i < len(all.Items); i++ {
		if all.Items[i].Seq != all.Items[i-1].Seq+1 || all.Items[i].PrevHash != all.Items[i-1].Hash {
			t.Fatalf("entries %d and %d do not chain: %+v %+v", i-1, i, all.Items[i-1], all.Items[i])
		}
	}
	// A refused change, for the outcome filter.
	if resp, _ := e.do("PATCH", "/api/v1/rollouts/thermostat", "operator", `{"percent":101}`, "If-Match", e.etag("thermostat")); resp.StatusCode != 422 {
		t.Fatalf("percent 101: %d", resp.StatusCode)
	}
	for q, want := range map[string]int{
		"action=rollout.change":                     8, // 7 ok, 1 refused
		"actor=t-operator":                          8,
		"actor=t-operator&outcome=refused":          1,
		"actor=t-operator&outcome=ok":               7,
		"object=thermostat/1.1.0&actor=t-operator":  7,
		"object=thermostat&outcome=refused":         1, // refused before the rollout was read
		"action=rollout.change&limit=2&newest=true": 2,
		"actor=nobody":                              0,
	} {
		if got := get("/api/v1/audit?" + q); len(got.Items) != want {
			t.Errorf("audit?%s: %d entries, want %d", q, len(got.Items), want)
		}
	}
	if newest := get("/api/v1/audit?limit=2&newest=true"); len(newest.Items) != 2 || newest.Items[0].Seq <= newest.Items[1].Seq || newest.Next == "" {
		t.Errorf("newest first: %+v", newest)
	} else if older := get("/api/v1/audit?limit=2&newest=true&cursor=" + newest.Next); len(older.Items) != 2 || older.Items[0].Seq != newest.Items[1].Seq-1 {
		t.Errorf("newest first, next page: %+v after %+v", older.Items, newest.Items)
	}
	since := all.Items[len(all.Items)-1].Time.Format("2006-01-02T15:04:05Z")
	if late := get("/api/v1/audit?since=" + since); len(late.Items) == 0 || len(late.Items) >= len(all.Items) {
		t.Errorf("since filter: %d", len(late.Items))
	}
	// A cursor of the audit list is not one of the releases list.
	p := get("/api/v1/audit?limit=1")
	if resp, _ := e.do("GET", "/api/v1/releases?cursor="+p.Next, "auditor", ""); resp.StatusCode != 400 {
		t.Errorf("foreign cursor: %d", resp.StatusCode)
	}
	resp, b := e.do("GET", "/api/v1/releases?product=thermostat&limit=1", "auditor", "")
	var rels api.Page[api.Release]
	if err := json.Unmarshal(b, &rels); err != nil || resp.StatusCode != 200 || len(rels.Items) != 1 || rels.Next == "" {
		t.Errorf("releases page: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do("GET", "/api/v1/releases?product=toaster", "auditor", ""); resp.StatusCode != 404 {
		t.Errorf("releases of an unknown product: %d", resp.StatusCode)
	}
}

// TestReadRoutes: products, releases with manifests, settings, health,
// reports and the OpenAPI document answer what the project holds.
func TestReadRoutes(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"/api/v1/products":                   `"name":"thermostat"`,
		"/api/v1/products?hardware=rev-b":    `"items":[]`,
		"/api/v1/products/thermostat":        `"support_until":"2031-12-31"`,
		"/api/v1/releases/thermostat/1.1.0":  `"manifest":{`,
		"/api/v1/releases":                   `"offered":{"percent":10,"halted":false}`,
		"/api/v1/rollouts?halted=false":      `"version":"1.1.0"`,
		"/api/v1/rollouts?halted=true":       `"items":[]`,
		"/api/v1/settings":                   `"admin_listen":"127.0.0.1:9090"`,
		"/api/v1/health":                     `"status":"ok"`,
		"/api/v1/reports?product=thermostat": `"k":5`,
	} {
		resp, b := e.do("GET", path, "admin", "")
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %s, want %s", path, resp.StatusCode, b, want)
		}
	}
	// Tokens: names, roles, expiry and revocation, never a hash.
	resp, b := e.do("GET", "/api/v1/tokens?role=operator", "admin", "")
	var toks api.Page[api.Token]
	if err := json.Unmarshal(b, &toks); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tokens: %d %s", resp.StatusCode, b)
	}
	var states []string
	for _, tk := range toks.Items {
		states = append(states, tk.Name+" "+tk.State)
	}
	if want := []string{"t-expired expired", "t-operator active", "t-revoked revoked", "t-spare active"}; !slices.Equal(states, want) ||
		strings.Contains(string(b), "hash") || strings.Contains(string(b), e.tokens["operator"][20:]) || strings.Contains(string(b), `"token"`) {
		t.Errorf("tokens of role operator: %q, want %q\n%s", states, want, b)
	}
	if resp, _ := e.do("GET", "/api/v1/tokens?role=root", "admin", ""); resp.StatusCode != 400 {
		t.Errorf("tokens of role root: %d, want 400", resp.StatusCode)
	}
	for _, path := range []string{"/api/v1/products/toaster", "/api/v1/releases/thermostat/9.9.9", "/api/v1/rollouts/toaster", "/api/v1/nope", "/elsewhere"} {
		if resp, _ := e.do("GET", path, "admin", ""); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, _ = e.do("DELETE", "/api/v1/rollouts/thermostat", "admin", "")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD, PATCH" {
		t.Errorf("DELETE: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, b = e.do("GET", "/api/v1/openapi.json", "", "")
	if resp.StatusCode != 200 || string(b) != string(api.OpenAPI) {
		t.Errorf("openapi.json: %d", resp.StatusCode)
	}
	mresp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if mresp.StatusCode != 200 || string(mb) != "metrics\n" {
		t.Errorf("/metrics on the admin handler: %d %q", mresp.StatusCode, mb)
	}
}

// TestOpenAPIMatchesRoutes: every documented operation is a route of the
// API and every route is documented, with the roles it allows.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	documented := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = op.Description
		}
	}
	for _, rt := range e.api.Routes() {
		key := rt.Method + " " + rt.Path
		desc, ok := documented[key]
		if !ok {
			t.Errorf("route %s is not documented", key)
			continue
		}
		delete(documented, key)
		var roles []string
		for _, r := range rt.Roles() {
			roles = append(roles, string(r))
		}
		want := "Roles: " + strings.Join(roles, ", ")
		if rt.Perm == "" {
			want = "Roles: none (no token needed)"
		}
		if desc != want {
			t.Errorf("%s: documented %q, routes say %q", key, desc, want)
		}
	}
	for key := range documented {
		t.Errorf("documented %s is not a route", key)
	}
}

// TestTokenRoutes: an admin creates a token (its text is in the answer
// only, and it authenticates), lists it, revokes it (it no longer
// authenticates); bad names, roles, expiries, a name in use, an unknown or
// already revoked token are refused with one refused audit entry each.
func TestTokenRoutes(t *testing.T) {
	e := newEnv(t)
	resp, b := e.do("POST", "/api/v1/tokens", "admin", `{"name":"ci","role":"operator","expires":"12h"}`, "X-Request-Id", "mk-ci")
	var tk api.Token
	if err := json.Unmarshal(b, &tk); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	if tk.Name != "ci" || tk.Role != "operator" || tk.State != "active" || !tk.Expires.Equal(e.clk.Now().Add(12*time.Hour)) || !strings.HasPrefix(tk.Token, "uptrust_") {
		t.Errorf("created %+v", tk)
	}
	if got := e.auditWith("mk-ci"); len(got) != 1 || !strings.HasPrefix(got[0], "token.create ci ok t-admin (admin) mk-ci") || strings.Contains(got[0], tk.Token[20:]) {
		t.Errorf("create audit %q", got)
	}
	e.tokens["ci"] = tk.Token
	if resp, _ := e.do("GET", "/api/v1/rollouts", "ci", ""); resp.StatusCode != 200 {
		t.Errorf("the new token: %d", resp.StatusCode)
	}
	_, b = e.do("GET", "/api/v1/tokens", "admin", "")
	if !strings.Contains(string(b), `"name":"ci"`) || strings.Contains(string(b), tk.Token[20:]) {
		t.Errorf("list after create: %s", b)
	}
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"bad name", "POST", "/api/v1/tokens", `{"name":"Bad Name","role":"auditor"}`, 422},
		{"reserved name", "POST", "/api/v1/tokens", `{"name":"cli","role":"auditor"}`, 422},
		{"bad role", "POST", "/api/v1/tokens", `{"name":"x","role":"root"}`, 422},
		{"bad expiry", "POST", "/api/v1/tokens", `{"name":"x","role":"auditor","expires":"soon"}`, 422},
		{"name in use", "POST", "/api/v1/tokens", `{"name":"ci","role":"auditor"}`, 409},
		{"unknown field", "POST", "/api/v1/tokens", `{"name":"x","role":"auditor","secret":"x"}`, 400},
		{"unknown token", "DELETE", "/api/v1/tokens/nobody", "", 404},
		{"revoked already", "DELETE", "/api/v1/tokens/t-revoked", "", 409},
	} {
		id := "tok-" + strings.ReplaceAll(tc.name, " ", "-")
		before, err := e.p.Tokens(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		resp, b := e.do(tc.method, tc.path, "admin", tc.body, "X-Request-Id", id)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.name, resp.StatusCode, tc.want, b)
		}
		if after, _ := e.p.Tokens(t.Context()); len(after) != len(before) {
			t.Errorf("%s: %d tokens, before %d", tc.name, len(after), len(before))
		}
		if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], " refused t-admin (admin) "+id) {
			t.Errorf("%s: audit %q, want one refused entry", tc.name, got)
		}
	}
	resp, b = e.do("DELETE", "/api/v1/tokens/ci", "admin", "", "X-Request-Id", "rm-ci")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"state":"revoked"`) {
		t.Errorf("revoke: %d %s", resp.StatusCode, b)
	}
	if got := e.auditWith("rm-ci"); len(got) != 1 || !strings.HasPrefix(got[0], "token.revoke ci ok t-admin (admin) rm-ci") {
		t.Errorf("revoke audit %q", got)
	}
	if resp, _ := e.do("GET", "/api/v1/rollouts", "ci", ""); resp.StatusCode != 401 {
		t.Errorf("the revoked token: %d, want 401", resp.StatusCode)
	}
}

// TestAuditVerifyRoute: the verification names the chain's head, which is
// the last entry listed.
func TestAuditVerifyRoute(t *testing.T) {
	e := newEnv(t)
	resp, b := e.do("GET", "/api/v1/audit/verify", "auditor", "")
	var v struct {
		Intact   bool   `json:"intact"`
		Entries  int    `json:"entries"`
		HeadSeq  int64  `json:"head_seq"`
		HeadHash string `json:"head_hash"`
	}
	if err := json.Unmarshal(b, &v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("verify: %d %s", resp.StatusCode, b)
	}
	es, err := e.p.Audit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	if !v.Intact || v.Entries != len(es) || v.HeadSeq != last.Seq || v.HeadHash != last.Hash {
		t.Errorf("verification %s; the log has %d entries ending at seq %d %s", b, len(es), last.Seq, last.Hash)
	}
}

// TestOpenAPIValidationBites: answers that break the document are caught —
// a percent out of range, an unknown field, an undocumented status, a
// problem sent as plain JSON — so the validation of every answer in the
// other tests is not vacuous.
func TestOpenAPIValidationBites(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.url+"/api/v1/rollouts/thermostat", nil)
	good := `{"product":"thermostat","version":"1.1.0","percent":10,"halted":false,"started":"2026-03-01T12:00:00Z","updated":"2026-03-01T12:00:00Z"}`
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	if err := e.validateErr(req, 200, jsonHdr, []byte(good)); err != nil {
		t.Fatalf("a good answer: %v", err)
	}
	for name, tc := range map[string]struct {
		status int
		hdr    http.Header
		body   string
	}{
		"percent 200":      {200, jsonHdr, strings.Replace(good, `"percent":10`, `"percent":200`, 1)},
		"unknown field":    {200, jsonHdr, strings.Replace(good, `"halted":false`, `"halted":false,"paused":true`, 1)},
		"undocumented 418": {418, http.Header{"Content-Type": {api.ProblemType}}, `{"type":"about:blank","title":"x","status":418,"detail":"x","instance":"/","request_id":"x"}`},
		"problem as JSON":  {404, jsonHdr, `{"type":"about:blank","title":"x","status":404,"detail":"x","instance":"/","request_id":"x"}`},
		"missing time":     {200, jsonHdr, strings.Replace(good, `,"updated":"2026-03-01T12:00:00Z"`, "", 1)},
	} {
		if err := e.validateErr(req, tc.status, tc.hdr, []byte(tc.body)); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}
