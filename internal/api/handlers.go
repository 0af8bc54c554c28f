package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// OpenAPI is the OpenAPI 3.1 document of the API, served at
// /api/v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// The JSON shapes below are those of the CLI's --json output for the same
// objects (internal/cli), so `uptrust --server` prints what --dir prints.

// Product is a product in a list.
type Product struct {
	Name     string    `json:"name"`
	Model    string    `json:"model"`
	Hardware []string  `json:"hardware"`
	Created  time.Time `json:"created"`
}

// ProductSupport is a product's signed support declaration and policy.
type ProductSupport struct {
	Product         string    `json:"product"`
	Model           string    `json:"model"`
	Hardware        []string  `json:"hardware"`
	SupportUntil    string    `json:"support_until"`
	Contact         string    `json:"contact"`
	AutoInstall     []string  `json:"auto_install"`
	MaxPostponeDays int       `json:"max_postpone_days"`
	Issued          time.Time `json:"issued"`
}

// Release is a published release with the rollout offering it.
type Release struct {
	Product         string    `json:"product"`
	Version         string    `json:"version"`
	Kind            string    `json:"kind"`
	SecurityVersion uint64    `json:"security_version"`
	Bytes           int64     `json:"bytes"`
	SHA256          string    `json:"sha256"`
	Published       time.Time `json:"published"`
	Offered         *Offered  `json:"offered"`
	// Manifest is the signed release manifest; only in GET of one release.
	Manifest json.RawMessage `json:"manifest,omitempty"`
}

// Offered is the rollout offering a release.
type Offered struct {
	Percent int  `json:"percent"`
	Halted  bool `json:"halted"`
}

// Rollout is the offer of one release to a product's devices.
type Rollout struct {
	Product string    `json:"product"`
	Version string    `json:"version"`
	Percent int       `json:"percent"`
	Halted  bool      `json:"halted"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	Object string    `json:"object"`
	Detail string    `json:"detail"`
}

// Page is a page of a list: Next is the cursor of the next page, "" on
// the last.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next_cursor"`
}

// Health is GET /api/v1/health.
type Health struct {
	Status string `json:"status"` // "ok" or "not ready"
	Reason string `json:"reason"`
}

// RolloutStart is the body of POST /api/v1/rollouts.
type RolloutStart struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Percent *int   `json:"percent"`
}

// RolloutPatch is the body of PATCH /api/v1/rollouts/{product}; at least one
// field must be present.
type RolloutPatch struct {
	Percent *int  `json:"percent,omitempty"`
	Halted  *bool `json:"halted,omitempty"`
}

// DefaultLimit and MaxLimit bound a page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// paginate answers a page of items after the request's cursor. The cursor
// is opaque to clients: it names the list and the offset, so a cursor of
// another list is refused. Lists are ordered stably, so offsets hold
// between pages of an unchanged list.
func paginate[T any](w http.ResponseWriter, r *http.Request, list string, items []T) {
	paginateAs(w, r, list, items, func(t T) T { return t })
}

// paginateAs is paginate for items converted by conv, which runs for the
// items of the page only.
func paginateAs[S, T any](w http.ResponseWriter, r *http.Request, list string, items []S, conv func(S) T) {
	q := r.URL.Query()
	limit := DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", s, MaxLimit))
			return
		}
		limit = n
	}
	off := 0
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		rest, ok := strings.CutPrefix(string(b), "v1:"+list+":")
		n, aerr := strconv.Atoi(rest)
		if err != nil || !ok || aerr != nil || n < 0 {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("cursor %q is not a cursor of this list", c))
			return
		}
		off = n
	}
	page := Page[T]{Items: []T{}}
	if off < len(items) {
		end := min(off+limit, len(items))
		page.Items = make([]T, 0, end-off)
		for _, it := range items[off:end] {
			page.Items = append(page.Items, conv(it))
		}
		if end < len(items) {
			page.Next = base64.RawURLEncoding.EncodeToString([]byte("v1:" + list + ":" + strconv.Itoa(end)))
		}
	}
	writeJSON(w, r, http.StatusOK, page)
}

// checkQuery refuses query parameters other than allowed (and limit and
// cursor for lists).
func checkQuery(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for k := range r.URL.Query() {
		if !slices.Contains(allowed, k) {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q (known: %s)", k, strings.Join(allowed, ", ")))
			return false
		}
	}
	return true
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeProblem(w, r, http.StatusNotFound, err.Error())
		return
	}
	writeProblem(w, r, http.StatusInternalServerError, "the server could not answer: "+err.Error())
}

func (a *API) getOpenAPI(w http.ResponseWriter, r *http.Request, _ Principal) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(OpenAPI)
	}
}

func (a *API) getHealth(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r) {
		return
	}
	h := Health{Status: "ok"}
	if a.ready != nil {
		if ok, why := a.ready(); !ok {
			h = Health{Status: "not ready", Reason: why}
		}
	}
	if _, err := a.p.Store.Generation(r.Context()); err != nil {
		h = Health{Status: "not ready", Reason: "the database does not answer"}
	}
	code := http.StatusOK
	if h.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, r, code, h)
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r) {
		return
	}
	writeJSON(w, r, http.StatusOK, a.settings)
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r, "limit", "cursor", "role") {
		return
	}
	if a.tokens == nil {
		writeProblem(w, r, http.StatusNotImplemented, "this server's authenticator cannot list its tokens")
		return
	}
	all, err := a.tokens.Tokens(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	role := r.URL.Query().Get("role")
	out := make([]TokenInfo, 0, len(all))
	for _, t := range all {
		if role == "" || string(t.Role) == role {
			out = append(out, t)
		}
	}
	paginate(w, r, "tokens", out)
}

func (a *API) listProducts(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r, "limit", "cursor", "hardware") {
		return
	}
	all, err := a.p.Store.Products(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	hw := r.URL.Query().Get("hardware")
	out := make([]Product, 0, len(all))
	for _, p := range all {
		if hw != "" && !slices.Contains(p.Hardware, hw) {
			continue
		}
		out = append(out, Product{Name: p.Name, Model: p.Model, Hardware: nonNil(p.Hardware), Created: p.Created.UTC()})
	}
	paginate(w, r, "products", out)
}

func (a *API) getProduct(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r) {
		return
	}
	sup, err := a.p.Support(r.Context(), r.PathValue("product"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pol := sup.EffectivePolicy()
	out := ProductSupport{Product: sup.Product, Model: sup.Model, Hardware: nonNil(sup.Hardware), SupportUntil: sup.Until,
		Contact: sup.Contact, AutoInstall: []string{}, MaxPostponeDays: pol.MaxPostponeDays, Issued: sup.Issued.UTC()}
	for _, k := range pol.AutoInstall {
		out.AutoInstall = append(out.AutoInstall, string(k))
	}
	writeJSON(w, r, http.StatusOK, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *API) releaseJSON(rel store.Release, ros map[string]store.Rollout) Release {
	out := Release{Product: rel.Product, Version: rel.Version, Kind: rel.Kind, SecurityVersion: rel.SecurityVersion,
		Bytes: rel.Length, SHA256: rel.SHA256, Published: rel.Created.UTC()}
	if ro, ok := ros[rel.Product]; ok && ro.Version == rel.Version {
		out.Offered = &Offered{Percent: ro.Percent, Halted: ro.Halted}
	}
	return out
}

func (a *API) rolloutMap(r *http.Request) (map[string]store.Rollout, error) {
	all, err := a.p.Store.Rollouts(r.Context())
	m := map[string]store.Rollout{}
	for _, ro := range all {
		m[ro.Product] = ro
	}
	return m, err
}

func (a *API) listReleases(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r, "limit", "cursor", "product", "kind") {
		return
	}
	q := r.URL.Query()
	if err := a.p.CheckProduct(r.Context(), q.Get("product")); err != nil {
		a.fail(w, r, err)
		return
	}
	rels, err := a.p.Store.Releases(r.Context(), q.Get("product"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ros, err := a.rolloutMap(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]Release, 0, len(rels))
	for _, rel := range rels {
		if k := q.Get("kind"); k != "" && rel.Kind != k {
			continue
		}
		out = append(out, a.releaseJSON(rel, ros))
	}
	paginate(w, r, "releases", out)
}

func (a *API) getRelease(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r) {
		return
	}
	rel, err := a.p.Store.Release(r.Context(), r.PathValue("product"), r.PathValue("version"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("release %s %s: %w", r.PathValue("product"), r.PathValue("version"), err))
		return
	}
	ros, err := a.rolloutMap(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := a.releaseJSON(rel, ros)
	out.Manifest = rel.Manifest
	writeJSON(w, r, http.StatusOK, out)
}

func rolloutJSON(ro store.Rollout) Rollout {
	return Rollout{Product: ro.Product, Version: ro.Version, Percent: ro.Percent, Halted: ro.Halted, Started: ro.Start.UTC(), Updated: ro.Updated.UTC()}
}

// ETag is the entity tag of a rollout's current state: it changes with
// every change of the rollout.
func ETag(ro store.Rollout) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%v\x00%d\x00%d", ro.Product, ro.Version, ro.Percent, ro.Halted,
		ro.Start.UnixNano(), ro.Updated.UnixNano()))
	return `"` + hex.EncodeToString(h[:12]) + `"`
}

func (a *API) listRollouts(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r, "limit", "cursor", "product", "halted") {
		return
	}
	q := r.URL.Query()
	var halted *bool
	if s := q.Get("halted"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("halted %q: want true or false", s))
			return
		}
		halted = &b
	}
	all, err := a.p.Store.Rollouts(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]Rollout, 0, len(all))
	for _, ro := range all {
		if p := q.Get("product"); p != "" && ro.Product != p || halted != nil && ro.Halted != *halted {
			continue
		}
		out = append(out, rolloutJSON(ro))
	}
	paginate(w, r, "rollouts", out)
}

func (a *API) getRollout(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r) {
		return
	}
	ro, err := a.p.Store.Rollout(r.Context(), r.PathValue("product"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("rollout of %s: %w", r.PathValue("product"), err))
		return
	}
	w.Header().Set("ETag", ETag(ro))
	writeJSON(w, r, http.StatusOK, rolloutJSON(ro))
}

// checkIfMatch compares If-Match with the current rollout's ETag: 428 when
// missing, 412 when stale. On failure it answers and returns false.
func checkIfMatch(w http.ResponseWriter, r *http.Request, cur store.Rollout) (string, bool) {
	im := r.Header.Get("If-Match")
	if im == "" {
		writeProblem(w, r, http.StatusPreconditionRequired, "If-Match is required: send the rollout's ETag from GET "+Prefix+"/rollouts/"+cur.Product)
		return "missing If-Match", false
	}
	if im != ETag(cur) {
		w.Header().Set("ETag", ETag(cur))
		writeProblem(w, r, http.StatusPreconditionFailed, "the rollout of "+cur.Product+" changed since you read it: read it again and retry")
		return "stale If-Match", false
	}
	return "", true
}

func (a *API) startRollout(w http.ResponseWriter, r *http.Request, who Principal) {
	const action = "api.rollout.start"
	var body RolloutStart
	if !decodeBody(w, r, &body) {
		a.record(r, who, action, "", OutcomeRefused, "bad request body")
		return
	}
	object := body.Product + "/" + body.Version
	refuse := func(status int, detail string) {
		a.record(r, who, action, object, OutcomeRefused, detail)
		writeProblem(w, r, status, detail)
	}
	if body.Product == "" || body.Version == "" || body.Percent == nil {
		refuse(http.StatusBadRequest, "product, version and percent are required")
		return
	}
	if *body.Percent < 0 || *body.Percent > 100 {
		refuse(http.StatusUnprocessableEntity, fmt.Sprintf("percent %d is not in 0..100", *body.Percent))
		return
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	ctx := r.Context()
	if err := a.p.CheckProduct(ctx, body.Product); err != nil {
		refuse(http.StatusNotFound, err.Error())
		return
	}
	if _, err := a.p.Store.Release(ctx, body.Product, body.Version); err != nil {
		refuse(http.StatusNotFound, fmt.Sprintf("no release %s of %s", body.Version, body.Product))
		return
	}
	if cur, err := a.p.Store.Rollout(ctx, body.Product); err == nil {
		if why, ok := checkIfMatch(w, r, cur); !ok {
			a.record(r, who, action, object, OutcomeRefused, why+": replacing the rollout of "+cur.Version)
			return
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		a.record(r, who, action, object, OutcomeFailed, "reading the rollout failed")
		a.fail(w, r, err)
		return
	}
	ro, err := a.p.StartRollout(ctx, body.Product, body.Version, *body.Percent)
	if err != nil {
		a.record(r, who, action, object, OutcomeFailed, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	a.done(w, r, who, action, object, fmt.Sprintf("percent %d", ro.Percent), http.StatusCreated, ro)
}

// done records a successful mutation and answers the rollout.
func (a *API) done(w http.ResponseWriter, r *http.Request, who Principal, action, object, detail string, status int, ro store.Rollout) {
	if err := a.record(r, who, action, object, OutcomeOK, detail); err != nil {
		writeProblem(w, r, http.StatusInternalServerError, "the change is made and in the project's audit log, but its API record failed: "+err.Error())
		return
	}
	w.Header().Set("ETag", ETag(ro))
	w.Header().Set("Location", Prefix+"/rollouts/"+ro.Product)
	writeJSON(w, r, status, rolloutJSON(ro))
}

func (a *API) patchRollout(w http.ResponseWriter, r *http.Request, who Principal) {
	const action = "api.rollout.change"
	product := r.PathValue("product")
	var body RolloutPatch
	if !decodeBody(w, r, &body) {
		a.record(r, who, action, product, OutcomeRefused, "bad request body")
		return
	}
	refuse := func(status int, detail string) {
		a.record(r, who, action, product, OutcomeRefused, detail)
		writeProblem(w, r, status, detail)
	}
	if body.Percent == nil && body.Halted == nil {
		refuse(http.StatusBadRequest, "nothing to change: give percent, halted or both")
		return
	}
	if body.Percent != nil && (*body.Percent < 0 || *body.Percent > 100) {
		refuse(http.StatusUnprocessableEntity, fmt.Sprintf("percent %d is not in 0..100", *body.Percent))
		return
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	ctx := r.Context()
	cur, err := a.p.Store.Rollout(ctx, product)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			refuse(http.StatusNotFound, "no rollout of "+product)
			return
		}
		a.record(r, who, action, product, OutcomeFailed, "reading the rollout failed")
		a.fail(w, r, err)
		return
	}
	if why, ok := checkIfMatch(w, r, cur); !ok {
		a.record(r, who, action, product+"/"+cur.Version, OutcomeRefused, why)
		return
	}
	var parts []string
	if body.Percent != nil {
		parts = append(parts, fmt.Sprintf("percent %d", *body.Percent))
	}
	if body.Halted != nil {
		parts = append(parts, fmt.Sprintf("halted %v", *body.Halted))
	}
	ro, err := a.p.ChangeRollout(ctx, product, func(ro *store.Rollout) {
		if body.Percent != nil {
			ro.Percent = *body.Percent
		}
		if body.Halted != nil {
			ro.Halted = *body.Halted
		}
	})
	if err != nil {
		a.record(r, who, action, product+"/"+cur.Version, OutcomeFailed, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	a.done(w, r, who, action, product+"/"+ro.Version, strings.Join(parts, "; "), http.StatusOK, ro)
}

func auditJSON(e store.AuditEntry) AuditEntry {
	return AuditEntry{Time: e.Time.UTC(), Action: e.Action, Object: e.Object, Detail: e.Detail}
}

func (a *API) rolloutHistory(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r, "limit", "cursor") {
		return
	}
	product := r.PathValue("product")
	if err := a.p.CheckProduct(r.Context(), product); err != nil {
		a.fail(w, r, err)
		return
	}
	es, err := a.auditLog(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var hist []store.AuditEntry
	for _, e := range es {
		if (e.Action == project.ActionRolloutStart || e.Action == project.ActionRolloutChange) &&
			strings.HasPrefix(e.Object, product+"/") {
			hist = append(hist, e)
		}
	}
	paginateAs(w, r, "history:"+product, hist, auditJSON)
}

func (a *API) getReports(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r, "product", "k") {
		return
	}
	q := r.URL.Query()
	k := 0
	if s := q.Get("k"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("k %q: want a positive number", s))
			return
		}
		k = n
	}
	if err := a.p.CheckProduct(r.Context(), q.Get("product")); err != nil {
		a.fail(w, r, err)
		return
	}
	sum, err := a.p.Reports(r.Context(), q.Get("product"), k)
	if err != nil {
		if k != 0 && k < a.p.Config.ReportK {
			writeProblem(w, r, http.StatusUnprocessableEntity, err.Error())
			return
		}
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, sum)
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !checkQuery(w, r, "limit", "cursor", "action", "object", "since", "until") {
		return
	}
	q := r.URL.Query()
	var since, until time.Time
	for name, t := range map[string]*time.Time{"since": &since, "until": &until} {
		if s := q.Get(name); s != "" {
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, s))
				return
			}
			*t = v
		}
	}
	es, err := a.auditLog(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	action, object := q.Get("action"), q.Get("object")
	if action == "" && object == "" && since.IsZero() && until.IsZero() {
		// The cached log as it is: paginateAs only reads it.
		paginateAs(w, r, "audit", es, auditJSON)
		return
	}
	out := make([]store.AuditEntry, 0, len(es))
	for _, e := range es {
		if action != "" && e.Action != action && !(strings.HasSuffix(action, ".") && strings.HasPrefix(e.Action, action)) ||
			object != "" && e.Object != object && !strings.HasPrefix(e.Object, object+"/") ||
			!since.IsZero() && e.Time.Before(since) || !until.IsZero() && !e.Time.Before(until) {
			continue
		}
		out = append(out, e)
	}
	paginateAs(w, r, "audit", out, auditJSON)
}
