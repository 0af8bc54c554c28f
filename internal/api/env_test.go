package api_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// matrixDevice and matrixEnrollToken are the ids of the pending device and
// the enrolment token the newest env holds (tests in this package do not
// run in parallel).
var matrixDevice, matrixEnrollToken, matrixRollout string

// matrixKey is a public key the matrix pre-authorises.
const matrixKey = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

// matrixBlob is a payload blob every env stores, for the blob routes.
const (
	matrixBlob    = "a payload blob\n"
	matrixBlobSHA = "1f78ae04b357ee3adc48c8738a3d92bda203cf3acb645fc00625575f4962e16b"
)

// Credentials the tests present: one valid token per role, and tokens that
// must not authenticate.
const (
	credNone      = ""
	credExpired   = "expired"
	credRevoked   = "revoked"
	credMalformed = "malformed"
	credUnknown   = "unknown"
)

type env struct {
	t      *testing.T
	url    string
	p      *project.Project
	clk    *clock.Fake
	api    *api.API
	tokens map[string]string // role or cred name -> token
	router routers.Router
}

// newEnv starts the API over a development project with the product
// thermostat, releases 1.1.0 and 1.2.0, a rollout of 1.1.0 at 10 % and a
// market declaration.
func newEnv(t *testing.T) *env {
	t.Helper()
	clk := clock.NewFake(t0)
	p, err := project.Init(t.Context(), t.TempDir(), project.InitOptions{Dev: true, Options: project.Options{Clock: clk}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	if err := p.AddProduct(ctx, project.ProductSpec{Name: "thermostat", Hardware: []string{"rev-a"}, SupportUntil: "2031-12-31"}); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1.1.0", "1.2.0"} {
		if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: "thermostat", Version: v, Payload: strings.NewReader("image " + v),
			Kind: release.KindSecurity, SecurityVersion: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.StartRollout(ctx, "thermostat", "1.1.0", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeclareMarket(ctx, project.MarketSpec{Product: "thermostat", PlacedOn: "2026-06-01", ExpectedUse: "5y"}); err != nil {
		t.Fatal(err)
	}
	if info, err := p.Blobs.Put(ctx, strings.NewReader(matrixBlob), 0); err != nil || info.SHA256 != matrixBlobSHA {
		t.Fatalf("storing the matrix blob: %+v, %v", info, err)
	}
	// Managed mode with one pending device and one enrolment token, for
	// the device routes.
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	et, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 5, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := p.Enroll(ctx, "thermostat", pub, et.Text)
	if err != nil {
		t.Fatal(err)
	}
	matrixDevice, matrixEnrollToken = dev.ID, et.Token.ID
	// A managed rollout in waves, for its routes.
	plan, err := rollout.ParsePlan(rollout.PlanFlags{Waves: "10%,100%", MaxFailure: "5%", MinSuccess: "1", Soak: "1h"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := p.StartManagedRollout(ctx, "thermostat", "1.2.0", "", plan)
	if err != nil {
		t.Fatal(err)
	}
	matrixRollout = mr.ID
	e := &env{t: t, p: p, clk: clk, tokens: map[string]string{}}
	// Real tokens, created through the project: one per role, one that
	// expires, one revoked, and t-spare for the revocation route.
	for _, name := range []string{"admin", "release-manager", "operator", "auditor", credExpired, credRevoked, "spare"} {
		role, ttl := access.Role(name), 90*24*time.Hour
		switch name {
		case credExpired:
			role, ttl = access.Operator, time.Minute
		case credRevoked, "spare":
			role = access.Operator
		}
		ct, err := p.CreateToken(ctx, project.TokenSpec{Name: "t-" + name, Role: role, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[name] = ct.Text
	}
	if _, err := p.RevokeToken(ctx, "t-"+credRevoked); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // t-expired is expired now
	e.tokens[credMalformed] = "not a token!"
	unknown, _, _, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	e.tokens[credUnknown] = unknown
	e.api, err = api.New(api.Config{Project: p,
		Settings: api.Settings{PublicListen: "127.0.0.1:8080", AdminListen: "127.0.0.1:9090", ReportK: 5, Retention: map[string]string{"audit": "730d"}}})
	if err != nil {
		t.Fatal(err)
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics\n") })
	srv := httptest.NewServer(api.AdminHandler(e.api, metrics))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.router = openAPIRouter(t)
	return e
}

// openAPIRouter loads the embedded OpenAPI document, checks it, and
// returns a router over it that matches any host.
func openAPIRouter(t *testing.T) routers.Router {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = nil
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// do sends a request with the credential cred ("" for none) and extra
// header pairs, and checks the answer against the OpenAPI document: a
// documented route's answer must be a documented status whose body
// validates; any error must be a problem document with the request id.
func (e *env) do(method, path, cred, body string, hdr ...string) (*http.Response, []byte) {
	t := e.t
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[cred])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	if resp.StatusCode >= 400 && method != http.MethodHead {
		checkProblem(t, method+" "+path, resp, b)
	}
	if resp.StatusCode >= 400 && method == http.MethodHead && resp.Header.Get("Content-Type") != api.ProblemType {
		t.Errorf("%s %s: %d with Content-Type %q, want %s", method, path, resp.StatusCode, resp.Header.Get("Content-Type"), api.ProblemType)
	}
	e.validate(req, resp, b)
	return resp, b
}

func checkProblem(t *testing.T, what string, resp *http.Response, b []byte) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != api.ProblemType {
		t.Errorf("%s: %d with Content-Type %q, want %s", what, resp.StatusCode, ct, api.ProblemType)
		return
	}
	var p api.Problem
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Errorf("%s: problem document %s: %v", what, b, err)
	}
	if p.Status != resp.StatusCode || p.Title == "" || p.Detail == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
		t.Errorf("%s: problem document %+v for status %d, request id %q", what, p, resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
}

// validate checks a response against the OpenAPI document when the
// request's route is documented.
func (e *env) validate(req *http.Request, resp *http.Response, body []byte) {
	t := e.t
	t.Helper()
	if err := e.validateErr(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("%s %s: %d answer does not match the OpenAPI document: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// validateErr returns why an answer does not match the OpenAPI document;
// an undocumented route is fine only for 404 and 405.
func (e *env) validateErr(req *http.Request, status int, header http.Header, body []byte) error {
	t := e.t
	vreq := req.Clone(t.Context())
	vreq.Body = nil
	route, params, err := e.router.FindRoute(vreq)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("not in the OpenAPI document: %w", err)
		}
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(t.Context(), in)
}

// state is what a refused request must not change: the rollouts and the
// served fleet and release metadata.
func (e *env) state() string {
	t := e.t
	t.Helper()
	ros, err := e.p.Store.Rollouts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	json.NewEncoder(&b).Encode(ros)
	for _, r := range []string{deviceapi.RepoFleet, deviceapi.RepoRelease} {
		for _, role := range []string{repo.RoleTargets, "snapshot", "timestamp"} {
			m, err := e.p.Store.LatestMetadata(t.Context(), r, role)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(r + "/" + role + ":" + string(m.Body) + "\n")
		}
	}
	// The fleet: policies, devices, enrolment tokens, pre-authorised keys.
	pol, _ := e.p.DevicePolicy(t.Context(), "thermostat")
	ds, _ := e.p.Store.Devices(t.Context(), store.DeviceFilter{})
	ets, _ := e.p.Store.EnrollmentTokens(t.Context(), "")
	pks, _ := e.p.Store.PreauthorizedKeys(t.Context(), "")
	json.NewEncoder(&b).Encode([]any{pol, ds, ets, pks})
	return b.String()
}

// etag returns the current ETag of a product's rollout.
func (e *env) etag(product string) string {
	e.t.Helper()
	resp, _ := e.do("GET", "/api/v1/rollouts/"+product, "auditor", "")
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
		e.t.Fatalf("GET rollout %s: %d, ETag %q", product, resp.StatusCode, resp.Header.Get("ETag"))
	}
	return resp.Header.Get("ETag")
}

// auditWith returns the audit entries of request id, each as "action
// object outcome actor (role) request: detail".
func (e *env) auditWith(id string) []string {
	e.t.Helper()
	es, err := e.p.Audit(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, x := range es {
		if x.RequestID == id {
			out = append(out, fmt.Sprintf("%s %s %s %s (%s) %s: %s", x.Action, x.Object, x.Outcome, x.Actor, x.Role, x.RequestID, x.Detail))
		}
	}
	return out
}

// settingsETag returns the current ETag of the settings.
func (e *env) settingsETag() string {
	e.t.Helper()
	resp, _ := e.do("GET", "/api/v1/settings", "auditor", "")
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
		e.t.Fatalf("GET settings: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	return resp.Header.Get("ETag")
}
