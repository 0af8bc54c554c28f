package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/uptrust/uptrust/internal/api"
)

// concrete fills a route's path parameters with objects the env has.
func concrete(path string) string {
	return strings.NewReplacer("{product}", "thermostat", "{version}", "1.1.0").Replace(path)
}

// rolePolicy is who may call each route, written out here rather than
// taken from the routes so that a change of the routes' roles fails the
// matrix: the roles are admin (tokens, settings), release-manager
// (push, products), operator (rollouts), auditor (read-only, including the
// audit log); everyone with a token reads products, releases, rollouts,
// reports and health.
var rolePolicy = map[string]string{
	"GET /api/v1/openapi.json":                 "none",
	"GET /api/v1/health":                       "admin,release-manager,operator,auditor",
	"GET /api/v1/settings":                     "admin,auditor",
	"GET /api/v1/tokens":                       "admin,auditor",
	"GET /api/v1/products":                     "admin,release-manager,operator,auditor",
	"GET /api/v1/products/{product}":           "admin,release-manager,operator,auditor",
	"GET /api/v1/releases":                     "admin,release-manager,operator,auditor",
	"GET /api/v1/releases/{product}/{version}": "admin,release-manager,operator,auditor",
	"GET /api/v1/rollouts":                     "admin,release-manager,operator,auditor",
	"POST /api/v1/rollouts":                    "operator",
	"GET /api/v1/rollouts/{product}":           "admin,release-manager,operator,auditor",
	"PATCH /api/v1/rollouts/{product}":         "operator",
	"GET /api/v1/rollouts/{product}/history":   "admin,release-manager,operator,auditor",
	"GET /api/v1/reports":                      "admin,release-manager,operator,auditor",
	"GET /api/v1/audit":                        "admin,auditor",
}

// TestAuthMatrix: every route × every role and every credential that must
// not authenticate (none, expired, revoked, malformed, unknown): 401 or 403
// with a problem document and nothing changed; the roles a route allows
// get past authorisation.
func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	creds := []string{credNone, credExpired, credRevoked, credMalformed, credUnknown, "admin", "release-manager", "operator", "auditor"}
	for _, rt := range e.api.Routes() {
		for _, cred := range creds {
			before := e.state()
			body := ""
			var hdr []string
			switch {
			case rt.Method == "POST":
				body = `{"product":"thermostat","version":"1.2.0","percent":20}`
				hdr = []string{"If-Match", e.etag("thermostat")}
			case rt.Method == "PATCH":
				body = `{"percent":30}`
				hdr = []string{"If-Match", e.etag("thermostat")}
			}
			id := fmt.Sprintf("matrix-%s-%s-%s", rt.Method, strings.ReplaceAll(strings.Trim(rt.Path, "/"), "/", "."), cred)
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
			case !slices.Contains(api.Roles, api.Role(cred)):
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
			if !allowed || rt.Method == "GET" {
				if after := e.state(); after != before {
					t.Errorf("%s: answered %d but changed the state", what, resp.StatusCode)
				}
			}
			// A refused mutation by a known role is audited as refused.
			if rt.Method != "GET" && !allowed && slices.Contains(api.Roles, api.Role(cred)) {
				if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], "outcome refused") || !strings.Contains(got[0], "by t-"+cred) {
					t.Errorf("%s: audit entries %q, want one refused entry naming t-%s", what, got, cred)
				}
			}
			if rt.Method != "GET" && allowed {
				if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], "outcome ok") {
					t.Errorf("%s: audit entries %q, want one ok entry", what, got)
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
		if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], "outcome refused") {
			t.Errorf("%s: audit %q, want one refused entry", tc.name, got)
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
// audit log has the project's entry and the API's, with the request id,
// and the history lists the changes.
func TestRolloutChanges(t *testing.T) {
	e := newEnv(t)
	etag := e.etag("thermostat")
	steps := []struct{ method, path, body, check string }{
		{"POST", "/api/v1/rollouts", `{"product":"thermostat","version":"1.2.0","percent":5}`, `"version":"1.2.0","percent":5,"halted":false`},
		{"PATCH", "/api/v1/rollouts/thermostat", `{"percent":50}`, `"percent":50,"halted":false`},
		{"PATCH", "/api/v1/rollouts/thermostat", `{"halted":true}`, `"percent":50,"halted":true`},
		{"PATCH", "/api/v1/rollouts/thermostat", `{"halted":false,"percent":100}`, `"percent":100,"halted":false`},
	}
	for i, s := range steps {
		e.clk.Advance(60e9)
		id := fmt.Sprintf("step-%d", i)
		resp, b := e.do(s.method, s.path, "operator", s.body, "If-Match", etag, "X-Request-Id", id)
		if resp.StatusCode >= 300 || !strings.Contains(string(b), s.check) {
			t.Fatalf("step %d: %d %s, want %s", i, resp.StatusCode, b, s.check)
		}
		next := resp.Header.Get("ETag")
		if next == "" || next == etag || next != e.etag("thermostat") {
			t.Errorf("step %d: ETag %q (before %q, now %q)", i, next, etag, e.etag("thermostat"))
		}
		if got := e.auditWith(id); len(got) != 1 || !strings.Contains(got[0], "by t-operator (operator); outcome ok") {
			t.Errorf("step %d: audit %q", i, got)
		}
		// The old ETag is stale now.
		if resp, _ := e.do("PATCH", "/api/v1/rollouts/thermostat", "operator", `{"percent":1}`, "If-Match", etag); resp.StatusCode != 412 {
			t.Errorf("step %d: the previous ETag: %d, want 412", i, resp.StatusCode)
		}
		etag = next
	}
	ro, err := e.p.Store.Rollout(t.Context(), "thermostat")
	if err != nil || ro.Version != "1.2.0" || ro.Percent != 100 || ro.Halted {
		t.Errorf("stored rollout %+v, %v", ro, err)
	}
	var hist api.Page[api.AuditEntry]
	_, b := e.do("GET", "/api/v1/rollouts/thermostat/history", "auditor", "")
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatal(err)
	}
	// The setup's start, and the four steps.
	if len(hist.Items) != 5 || hist.Items[1].Action != "rollout.start" || !strings.Contains(hist.Items[4].Detail, "resumed") {
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
	changes := get("/api/v1/audit?action=rollout.change")
	apiChanges := get("/api/v1/audit?action=api.")
	if len(changes.Items) != 7 || len(apiChanges.Items) != 7 {
		t.Errorf("action filters: %d rollout.change, %d api.*; want 7 each", len(changes.Items), len(apiChanges.Items))
	}
	if objs := get("/api/v1/audit?object=thermostat"); len(objs.Items) < 10 {
		t.Errorf("object filter: %d", len(objs.Items))
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
	var toks api.Page[api.TokenInfo]
	if err := json.Unmarshal(b, &toks); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tokens: %d %s", resp.StatusCode, b)
	}
	if len(toks.Items) != 3 || toks.Items[0].Name != "t-expired" || toks.Items[2].Name != "t-revoked" || !toks.Items[2].Revoked ||
		strings.Contains(string(b), "sha256") || strings.Contains(string(b), e.tokens["operator"][:12]) {
		t.Errorf("tokens of role operator: %s", b)
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
		for _, r := range rt.Roles {
			roles = append(roles, string(r))
		}
		want := "Roles: " + strings.Join(roles, ", ")
		if rt.Roles == nil {
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

// TestTokenFileErrors: a token file with an unknown role, a bad hash or an
// unknown field is refused naming the problem.
func TestTokenFileErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"tokens":[{"name":"a","role":"root","sha256":"` + strings.Repeat("0", 64) + `","expires":"2030-01-01T00:00:00Z"}]}`: `unknown role "root"`,
		`{"tokens":[{"name":"a","role":"admin","sha256":"abc","expires":"2030-01-01T00:00:00Z"}]}`:                            "sha256 must be 64 hex digits",
		`{"tokens":[{"name":"a","role":"admin","sha":"abc","expires":"2030-01-01T00:00:00Z"}]}`:                               `unknown field "sha"`,
	} {
		path := t.TempDir() + "/tokens.json"
		if err := writeFile(path, body); err != nil {
			t.Fatal(err)
		}
		if _, err := api.NewFileAuthenticator(path, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
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
