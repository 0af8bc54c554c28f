// Package api is uptrust's management REST API under /api/v1: products,
// releases, rollouts, report counts, the audit log, health and settings of
// a running server. It is served on the admin listener only (uptrust serve
// --admin-listen), never on the public /repo/ listener.
//
// Invariants:
//   - Every answer carries an X-Request-Id: the client's when it sent a
//     well-formed one, else a fresh random one.
//   - Every error is an application/problem+json document (RFC 9457) with
//     the request id, including 404 and 405.
//   - Every route but /api/v1/openapi.json needs a bearer token whose role
//     the route allows; a refused request changes nothing.
//   - Every mutation is recorded by the Auditor with the caller, the
//     outcome (ok, refused, failed) and the request id, whatever the
//     outcome.
//   - Rollout changes need If-Match with the rollout's current ETag:
//     missing is 428, stale is 412. Mutations are serialised in the
//     process, so the check and the change cannot interleave with another
//     API mutation.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// Prefix is the path prefix of every route.
const Prefix = "/api/v1"

// MaxBody is the largest request body accepted; larger is 413.
const MaxBody = 64 << 10

// Role is what a token may do.
type Role string

// The roles. admin manages tokens and settings, release-manager pushes and
// manages products, operator runs rollouts, auditor reads everything
// including the audit log. Every role may read products, releases,
// rollouts, reports and health.
const (
	RoleAdmin          Role = "admin"
	RoleReleaseManager Role = "release-manager"
	RoleOperator       Role = "operator"
	RoleAuditor        Role = "auditor"
)

// Roles lists every role.
var Roles = []Role{RoleAdmin, RoleReleaseManager, RoleOperator, RoleAuditor}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("api: unknown role %q (want admin, release-manager, operator or auditor)", s)
}

// Principal is who presented a token.
type Principal struct {
	Name string
	Role Role
}

// ErrUnauthenticated is wrapped by an Authenticator's error for a token that
// is missing, malformed, unknown, expired or revoked.
var ErrUnauthenticated = errors.New("api: unauthenticated")

// Authenticator finds who presented a bearer token.
type Authenticator interface {
	// Authenticate returns the token's principal, or an error wrapping
	// ErrUnauthenticated when the token does not authenticate anyone.
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// Outcomes of an audited action.
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// Record is one audited API action.
type Record struct {
	Actor     Principal
	Action    string // such as "api.rollout.start"
	Object    string // such as "thermostat/1.1.0"
	Outcome   string // OutcomeOK, OutcomeRefused or OutcomeFailed
	RequestID string
	Detail    string
}

// Auditor records API actions.
type Auditor interface {
	Record(ctx context.Context, r Record) error
}

// TokenInfo describes a token without its secret or hash.
type TokenInfo struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Expires time.Time `json:"expires"`
	Revoked bool      `json:"revoked"`
}

// TokenLister lists the tokens an Authenticator knows.
type TokenLister interface {
	Tokens(ctx context.Context) ([]TokenInfo, error)
}

// Settings are the server settings shown by GET /api/v1/settings.
type Settings struct {
	PublicListen string `json:"public_listen"`
	AdminListen  string `json:"admin_listen"`
	TLS          bool   `json:"tls"`
	ReportK      int    `json:"report_k"`
	// Retention maps each table that ages out to its retention, as in
	// uptrust.json.
	Retention map[string]string `json:"retention"`
}

// Config configures the API. Project, Auth and Audit are required.
type Config struct {
	Project  *project.Project
	Auth     Authenticator
	Audit    Auditor
	Settings Settings
	// Ready reports whether the public server has content loaded; nil
	// means always ready.
	Ready func() (bool, string)
	// Tokens lists the tokens for GET /api/v1/tokens; nil answers 501.
	Tokens TokenLister
}

// API is the management API. It is safe for concurrent use.
type API struct {
	p        *project.Project
	auth     Authenticator
	audit    Auditor
	settings Settings
	ready    func() (bool, string)
	tokens   TokenLister
	mux      *http.ServeMux
	// mutate serialises mutations (see the package invariants).
	mutate sync.Mutex
	// auditMu guards the cached audit log (see auditLog).
	auditMu    sync.Mutex
	auditGen   int64
	auditAt    time.Time
	auditCache []store.AuditEntry
}

// auditTTL bounds how long a cached audit log is used: the generation
// changes with every audit entry added, but not when retention purges old
// ones, so a purged entry can be listed for at most this long.
const auditTTL = 5 * time.Second

// auditLog returns the audit log, oldest first. It is read again when the
// store's generation changed or the cached copy is older than auditTTL; the
// returned slice must not be modified.
func (a *API) auditLog(ctx context.Context) ([]store.AuditEntry, error) {
	gen, err := a.p.Store.Generation(ctx)
	if err != nil {
		return nil, err
	}
	a.auditMu.Lock()
	defer a.auditMu.Unlock()
	if a.auditCache != nil && gen == a.auditGen && time.Since(a.auditAt) < auditTTL {
		return a.auditCache, nil
	}
	es, err := a.p.Audit(ctx)
	if err != nil {
		return nil, err
	}
	a.auditCache, a.auditGen, a.auditAt = es, gen, time.Now()
	return es, nil
}

// New returns the API.
func New(cfg Config) (*API, error) {
	if cfg.Project == nil || cfg.Auth == nil || cfg.Audit == nil {
		return nil, errors.New("api: config: Project, Auth and Audit are required")
	}
	a := &API{p: cfg.Project, auth: cfg.Auth, audit: cfg.Audit, settings: cfg.Settings, ready: cfg.Ready, tokens: cfg.Tokens, mux: http.NewServeMux()}
	byPath := map[string][]Route{}
	var order []string
	for _, rt := range a.routes() {
		if _, ok := byPath[rt.Path]; !ok {
			order = append(order, rt.Path)
		}
		byPath[rt.Path] = append(byPath[rt.Path], rt)
	}
	for _, path := range order {
		rts := byPath[path]
		a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { a.dispatch(w, r, rts) })
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such route: "+r.URL.Path)
	})
	return a, nil
}

// Route is one method on one path pattern ({name} segments as in both
// net/http and OpenAPI).
type Route struct {
	Method string
	Path   string
	// Roles may call the route; nil means no token is needed.
	Roles   []Role
	handler func(w http.ResponseWriter, r *http.Request, who Principal)
}

// Routes returns the method and path of every route, for the OpenAPI
// document's tests.
func (a *API) Routes() []Route {
	out := a.routes()
	for i := range out {
		out[i].handler = nil
	}
	return out
}

var (
	readers  = []Role{RoleAdmin, RoleReleaseManager, RoleOperator, RoleAuditor}
	auditors = []Role{RoleAdmin, RoleAuditor}
	// operators may change rollouts, and no one else.
	operators = []Role{RoleOperator}
)

func (a *API) routes() []Route {
	return []Route{
		{"GET", Prefix + "/openapi.json", nil, a.getOpenAPI},
		{"GET", Prefix + "/health", readers, a.getHealth},
		{"GET", Prefix + "/settings", auditors, a.getSettings},
		{"GET", Prefix + "/tokens", auditors, a.listTokens},
		{"GET", Prefix + "/products", readers, a.listProducts},
		{"GET", Prefix + "/products/{product}", readers, a.getProduct},
		{"GET", Prefix + "/releases", readers, a.listReleases},
		{"GET", Prefix + "/releases/{product}/{version}", readers, a.getRelease},
		{"GET", Prefix + "/rollouts", readers, a.listRollouts},
		{"POST", Prefix + "/rollouts", operators, a.startRollout},
		{"GET", Prefix + "/rollouts/{product}", readers, a.getRollout},
		{"PATCH", Prefix + "/rollouts/{product}", operators, a.patchRollout},
		{"GET", Prefix + "/rollouts/{product}/history", readers, a.rolloutHistory},
		{"GET", Prefix + "/reports", readers, a.getReports},
		{"GET", Prefix + "/audit", auditors, a.listAudit},
	}
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", id)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	a.mux.ServeHTTP(w, r)
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type requestIDKey struct{}

// RequestID returns the request id of a request served by the API.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func (a *API) dispatch(w http.ResponseWriter, r *http.Request, rts []Route) {
	var rt *Route
	allow := make([]string, 0, len(rts)+1)
	for i := range rts {
		allow = append(allow, rts[i].Method)
		if rts[i].Method == "GET" {
			allow = append(allow, "HEAD")
		}
		if rts[i].Method == r.Method || r.Method == "HEAD" && rts[i].Method == "GET" {
			rt = &rts[i]
		}
	}
	if rt == nil {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not allow %s (allowed: %s)", r.URL.Path, r.Method, strings.Join(allow, ", ")))
		return
	}
	var who Principal
	if rt.Roles != nil {
		var ok bool
		if who, ok = a.authenticate(w, r); !ok {
			return
		}
		allowed := false
		for _, role := range rt.Roles {
			allowed = allowed || role == who.Role
		}
		if !allowed {
			if r.Method != "GET" && r.Method != "HEAD" {
				a.record(r, who, auditAction(rt), r.PathValue("product"), OutcomeRefused, "role "+string(who.Role)+" may not do this")
			}
			writeProblem(w, r, http.StatusForbidden, fmt.Sprintf("role %s may not %s %s (allowed: %s)", who.Role, rt.Method, rt.Path, joinRoles(rt.Roles)))
			return
		}
	}
	rt.handler(w, r, who)
}

func auditAction(rt *Route) string {
	switch {
	case rt.Method == "POST" && strings.HasSuffix(rt.Path, "/rollouts"):
		return "api.rollout.start"
	case rt.Method == "PATCH":
		return "api.rollout.change"
	}
	return "api." + strings.ToLower(rt.Method)
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// authenticate checks the bearer token; on failure it answers 401 and
// returns false.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="uptrust"`)
		msg := "missing bearer token (Authorization: Bearer TOKEN)"
		if h != "" {
			msg = "malformed Authorization header: want Bearer TOKEN"
		}
		writeProblem(w, r, http.StatusUnauthorized, msg)
		return Principal{}, false
	}
	who, err := a.auth.Authenticate(r.Context(), token)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="uptrust", error="invalid_token"`)
			writeProblem(w, r, http.StatusUnauthorized, "the token is not valid: unknown, expired, revoked or malformed")
			return Principal{}, false
		}
		writeProblem(w, r, http.StatusServiceUnavailable, "tokens cannot be checked now")
		return Principal{}, false
	}
	return who, true
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
}

// ProblemType is the media type of error answers.
const ProblemType = "application/problem+json"

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail,
		Instance: r.URL.Path, RequestID: RequestID(r.Context())}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", ProblemType)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, r, http.StatusInternalServerError, "encoding the answer failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}

// decodeBody decodes a JSON request body into v: application/json only
// (415), at most MaxBody bytes (413), no unknown fields and one value only
// (400). On failure it answers and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("request body must be application/json, not %q", r.Header.Get("Content-Type")))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBody))
		return false
	}
	writeProblem(w, r, http.StatusBadRequest, "request body: "+err.Error())
	return false
}

// record audits a mutation; a failure to record is logged in the answer's
// absence only by the caller's outcome.
func (a *API) record(r *http.Request, who Principal, action, object, outcome, detail string) error {
	return a.audit.Record(r.Context(), Record{Actor: who, Action: action, Object: object, Outcome: outcome,
		RequestID: RequestID(r.Context()), Detail: detail})
}
