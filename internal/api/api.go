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
//   - Every route but /api/v1/openapi.json needs a bearer token the
//     project authenticates (project.Authenticate) whose role grants the
//     route's permission (package access); a refused request changes
//     nothing.
//   - Every mutation by an authenticated token leaves exactly one entry in
//     the project's audit log, naming the token, its role and the request
//     id: the project writes it with the change when it succeeds, the API
//     records it (project.RecordAudit) when it was refused or failed.
//     Exception: blob uploads (PUT /api/v1/blobs/{sha256}) write no audit
//     entry when permitted: a blob changes nothing devices see, and the
//     push that references it is audited; a refused one (no permission)
//     is audited like any refused mutation.
//   - Request bodies are at most MaxBody bytes, except blob uploads, which
//     stream (bounded by the project's max_payload_bytes) and take neither
//     the mutation lock nor the server's overall read timeout (an idle
//     timeout instead), and pushes (MaxPushBody).
//   - Rollout and settings changes need If-Match with the current ETag:
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

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// Prefix is the path prefix of every route.
const Prefix = "/api/v1"

// MaxBody is the largest request body accepted; larger is 413.
const MaxBody = 64 << 10

// Settings are the server settings shown by GET /api/v1/settings. The
// API fills ReportK, Retention and Overridden from the project at each
// request (project.Runtime): the values in effect, shared by the servers
// on one database; Config.Settings gives the rest.
type Settings struct {
	PublicListen string `json:"public_listen"`
	AdminListen  string `json:"admin_listen"`
	TLS          bool   `json:"tls"`
	ReportK      int    `json:"report_k"`
	// Retention maps each table that ages out to its retention.
	Retention map[string]string `json:"retention"`
	// Overridden names the settings changed at run time (PATCH), whose
	// value comes from the database rather than uptrust.json.
	Overridden []string `json:"overridden"`
}

// Config configures the API. Project is required: it authenticates the
// tokens (project.Authenticate), performs the changes and keeps the audit
// log.
type Config struct {
	Project  *project.Project
	Settings Settings
	// Ready reports whether the public server has content loaded; nil
	// means always ready.
	Ready func() (bool, string)
}

// API is the management API. It is safe for concurrent use.
type API struct {
	p        *project.Project
	settings Settings
	ready    func() (bool, string)
	mux      *http.ServeMux
	// mutate serialises mutations (see the package invariants).
	mutate sync.Mutex
}

// New returns the API.
func New(cfg Config) (*API, error) {
	if cfg.Project == nil {
		return nil, errors.New("api: config: Project is required")
	}
	a := &API{p: cfg.Project, settings: cfg.Settings, ready: cfg.Ready, mux: http.NewServeMux()}
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
	// Perm is the permission the route needs (package access decides
	// which roles grant it); "" means no token is needed.
	Perm    access.Permission
	handler func(w http.ResponseWriter, r *http.Request, who project.Principal)
}

// Roles returns the roles that may call the route, in access.Roles order;
// nil when no token is needed.
func (rt Route) Roles() []access.Role {
	if rt.Perm == "" {
		return nil
	}
	var out []access.Role
	for _, role := range access.Roles {
		if role.Allows(rt.Perm) {
			out = append(out, role)
		}
	}
	return out
}

// Routes returns the method, path and permission of every route, for the
// OpenAPI document's tests.
func (a *API) Routes() []Route {
	out := a.routes()
	for i := range out {
		out[i].handler = nil
	}
	return out
}

func (a *API) routes() []Route {
	return append([]Route{
		{"GET", Prefix + "/openapi.json", "", a.getOpenAPI},
		{"GET", Prefix + "/health", access.Read, a.getHealth},
		{"GET", Prefix + "/settings", access.Read, a.getSettings},
		{"PATCH", Prefix + "/settings", access.Settings, a.patchSettings},
		{"GET", Prefix + "/tokens", access.Tokens, a.listTokens},
		{"POST", Prefix + "/tokens", access.Tokens, a.createToken},
		{"DELETE", Prefix + "/tokens/{name}", access.Tokens, a.revokeToken},
		{"GET", Prefix + "/products", access.Read, a.listProducts},
		{"GET", Prefix + "/products/{product}", access.Read, a.getProduct},
		{"GET", Prefix + "/products/{product}/attestations", access.Read, a.listAttestations},
		{"POST", Prefix + "/products/{product}/attestations", access.Products, a.createAttestation},
		{"DELETE", Prefix + "/products/{product}/attestations/{item}", access.Products, a.withdrawAttestation},
		{"GET", Prefix + "/products/{product}/market", access.Read, a.getMarket},
		{"PUT", Prefix + "/products/{product}/market", access.Products, a.putMarket},
		{"GET", Prefix + "/products/{product}/compliance", access.Read, a.getCompliance},
		{"GET", Prefix + "/releases", access.Read, a.listReleases},
		{"GET", Prefix + "/releases/{product}/{version}", access.Read, a.getRelease},
		{"GET", Prefix + "/rollouts", access.Read, a.listRollouts},
		{"POST", Prefix + "/rollouts", access.Rollouts, a.startRollout},
		{"GET", Prefix + "/rollouts/{product}", access.Read, a.getRollout},
		{"PATCH", Prefix + "/rollouts/{product}", access.Rollouts, a.patchRollout},
		{"GET", Prefix + "/rollouts/{product}/history", access.Read, a.rolloutHistory},
		{"GET", Prefix + "/reports", access.Read, a.getReports},
		{"GET", Prefix + "/audit", access.ReadAudit, a.listAudit},
		{"GET", Prefix + "/audit/verify", access.ReadAudit, a.verifyAudit},
		{"GET", Prefix + "/metadata", access.Read, a.metadataState},
		{"GET", Prefix + "/metadata/{repo}/{role}/{version}", access.Read, a.getMetadata},
		{"POST", Prefix + "/push", access.Push, a.push},
		{"GET", Prefix + "/blobs/{sha256}", access.Push, a.getBlob},
		{"HEAD", Prefix + "/blobs/{sha256}", access.Push, a.headBlob},
		{"PUT", Prefix + "/blobs/{sha256}", access.Push, a.putBlob},
	}, append(a.wavesRoutes(), a.deviceRoutes()...)...)
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
	hasHead := false
	for i := range rts {
		hasHead = hasHead || rts[i].Method == "HEAD"
	}
	for i := range rts {
		allow = append(allow, rts[i].Method)
		if rts[i].Method == "GET" && !hasHead {
			allow = append(allow, "HEAD")
		}
		// HEAD is served by GET unless the path has a HEAD route.
		if rts[i].Method == r.Method || r.Method == "HEAD" && rts[i].Method == "GET" && !hasHead {
			rt = &rts[i]
		}
	}
	if rt == nil {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not allow %s (allowed: %s)", r.URL.Path, r.Method, strings.Join(allow, ", ")))
		return
	}
	var who project.Principal
	if rt.Perm != "" {
		var ok bool
		if who, ok = a.authenticate(w, r); !ok {
			return
		}
		// Every project operation the request causes is audited as done
		// by the token, with the request id.
		r = r.WithContext(project.WithActor(r.Context(), who.Actor(RequestID(r.Context()))))
		if !who.Allows(rt.Perm) {
			msg := fmt.Sprintf("role %s may not %s %s (it needs permission %s, which %s grant)", who.Role, rt.Method, rt.Path, rt.Perm, joinRoles(rt.Roles()))
			if r.Method != "GET" && r.Method != "HEAD" {
				object := r.PathValue("product") + r.PathValue("name") + r.PathValue("sha256") + r.PathValue("device") + r.PathValue("id")
				if item := r.PathValue("item"); item != "" {
					object += "/" + item
				}
				if strings.HasSuffix(rt.Path, "/settings") {
					object = settingsObject
				}
				if err := a.refused(r, auditAction(rt), object, "role "+string(who.Role)+" lacks permission "+string(rt.Perm)); err != nil {
					writeProblem(w, r, http.StatusInternalServerError, err.Error())
					return
				}
			}
			writeProblem(w, r, http.StatusForbidden, msg)
			return
		}
	}
	rt.handler(w, r, who)
}

// auditAction is the project's audit action of a mutating route.
func auditAction(rt *Route) string {
	if act := complianceAction(rt.Method, rt.Path); act != "" {
		return act
	}
	if act := wavesAuditAction(rt.Method, rt.Path); act != "" {
		return act
	}
	switch {
	case rt.Method == "POST" && strings.HasSuffix(rt.Path, "/rollouts"):
		return project.ActionRolloutStart
	case rt.Method == "PATCH" && strings.Contains(rt.Path, "/rollouts/"):
		return project.ActionRolloutChange
	case rt.Method == "POST" && strings.HasSuffix(rt.Path, "/tokens"):
		return project.ActionTokenCreate
	case rt.Method == "DELETE" && strings.Contains(rt.Path, "/tokens/"):
		return project.ActionTokenRevoke
	case rt.Method == "PATCH" && strings.HasSuffix(rt.Path, "/settings"):
		return project.ActionSettingsChange
	case rt.Method == "POST" && strings.HasSuffix(rt.Path, "/push"):
		return project.ActionPush
	case rt.Method == "PUT" && strings.Contains(rt.Path, "/blobs/"):
		return "blob.upload"
	}
	if act := deviceAuditAction(rt.Method, rt.Path); act != "" {
		return act
	}
	return "api." + strings.ToLower(rt.Method)
}

func joinRoles(rs []access.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// authenticate checks the bearer token with the project; on failure it
// answers 401 (503 when the store cannot be read) and returns false.
// Unauthenticated requests are not audited: they name no one, and
// recording them would let anyone fill the log.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (project.Principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="uptrust"`)
		msg := "missing bearer token (Authorization: Bearer TOKEN)"
		if h != "" {
			msg = "malformed Authorization header: want Bearer TOKEN"
		}
		writeProblem(w, r, http.StatusUnauthorized, msg)
		return project.Principal{}, false
	}
	who, err := a.p.Authenticate(r.Context(), token)
	if err != nil {
		if errors.Is(err, project.ErrTokenMalformed) || errors.Is(err, project.ErrTokenUnknown) ||
			errors.Is(err, project.ErrTokenRevoked) || errors.Is(err, project.ErrTokenExpired) {
			// One answer for all four: the state of a token is not
			// told to whoever presents it.
			w.Header().Set("WWW-Authenticate", `Bearer realm="uptrust", error="invalid_token"`)
			writeProblem(w, r, http.StatusUnauthorized, "the token is not valid: unknown, expired, revoked or malformed")
			return project.Principal{}, false
		}
		writeProblem(w, r, http.StatusServiceUnavailable, "tokens cannot be checked now")
		return project.Principal{}, false
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
	return decodeBodyUpTo(w, r, v, MaxBody)
}

// decodeBodyUpTo is decodeBody with another size limit.
func decodeBodyUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("request body must be application/json, not %q", r.Header.Get("Content-Type")))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
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
		writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
		return false
	}
	writeProblem(w, r, http.StatusBadRequest, "request body: "+err.Error())
	return false
}

// refused records a mutation that was refused (bad input, no permission,
// stale If-Match) in the project's audit log, by the actor the request's
// context carries. detail is written by uptrust, never copied from the
// request body.
func (a *API) refused(r *http.Request, action, object, detail string) error {
	return a.p.RecordAudit(r.Context(), action, object, store.OutcomeRefused, detail)
}

// failed records a permitted mutation that went wrong.
func (a *API) failed(r *http.Request, action, object, detail string) error {
	return a.p.RecordAudit(r.Context(), action, object, store.OutcomeFailed, detail)
}
