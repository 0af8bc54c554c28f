package api

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/access"
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

// AuditEntry is one entry of the audit log, as `uptrust audit --json`
// prints it (the CLI's AuditEntryJSON is this type).
type AuditEntry struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Role      string    `json:"role,omitempty"`
	Action    string    `json:"action"`
	Object    string    `json:"object"`
	Detail    string    `json:"detail"`
	Outcome   string    `json:"outcome"`
	RequestID string    `json:"request_id,omitempty"`
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

// AuditEntryOf returns e as the API and `uptrust audit --json` show it.
func AuditEntryOf(e store.AuditEntry) AuditEntry {
	j := AuditEntry(e)
	j.Time = e.Time.UTC()
	return j
}

// Token is a token as `uptrust token list --json` shows it (the CLI's
// TokenJSON is this type): never its secret's hash. Token (the secret) is
// set only in the answer that creates it.
type Token struct {
	Name     string     `json:"name"`
	Role     string     `json:"role"`
	ID       string     `json:"id"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"`
	Revoked  *time.Time `json:"revoked,omitempty"`
	LastUsed string     `json:"last_used,omitempty"`
	// State is active, expired or revoked.
	State string `json:"state"`
	Token string `json:"token,omitempty"`
}

// TokenOf returns t as of now.
func TokenOf(t store.Token, now time.Time) Token {
	j := Token{Name: t.Name, Role: t.Role, ID: t.ID, Created: t.Created.UTC(), Expires: t.Expires.UTC(), State: "active"}
	switch {
	case !t.Revoked.IsZero():
		j.State = "revoked"
	case !now.Before(t.Expires):
		j.State = "expired"
	}
	if !t.Revoked.IsZero() {
		r := t.Revoked.UTC()
		j.Revoked = &r
	}
	if !t.LastUsed.IsZero() {
		j.LastUsed = t.LastUsed.UTC().Format(time.DateOnly)
	}
	return j
}

// TokenCreate is the body of POST /api/v1/tokens.
type TokenCreate struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Expires is how long the token is valid, such as "90d" or "12h";
	// empty is project.DefaultTokenTTL.
	Expires string `json:"expires,omitempty"`
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

func (a *API) getOpenAPI(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(OpenAPI)
	}
}

func (a *API) getHealth(w http.ResponseWriter, r *http.Request, _ project.Principal) {
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

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor", "role") {
		return
	}
	role := r.URL.Query().Get("role")
	if role != "" {
		if _, err := access.ParseRole(role); err != nil {
			writeProblem(w, r, http.StatusBadRequest, err.Error())
			return
		}
	}
	all, err := a.p.Tokens(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.p.Clock.Now()
	out := make([]Token, 0, len(all))
	for _, t := range all {
		if role == "" || t.Role == role {
			out = append(out, TokenOf(t, now))
		}
	}
	paginate(w, r, "tokens", out)
}

// createToken creates a token through the project, which audits it; the
// answer carries the token's text, shown this once.
func (a *API) createToken(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionTokenCreate
	var body TokenCreate
	if !decodeBody(w, r, &body) {
		a.noteRefusal(r, action, "", "bad request body")
		return
	}
	refuse := func(status int, detail string) {
		if err := a.refused(r, action, body.Name, detail); err != nil {
			writeProblem(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		writeProblem(w, r, status, detail)
	}
	if err := access.CheckName(body.Name); err != nil {
		refuse(http.StatusUnprocessableEntity, err.Error())
		return
	}
	role, err := access.ParseRole(body.Role)
	if err != nil {
		refuse(http.StatusUnprocessableEntity, err.Error())
		return
	}
	var ttl time.Duration
	if body.Expires != "" {
		per, err := project.ParsePeriod(body.Expires)
		if err != nil || per <= 0 {
			refuse(http.StatusUnprocessableEntity, fmt.Sprintf("expires %q: want a positive period such as 90d or 12h", body.Expires))
			return
		}
		ttl = time.Duration(per)
	}
	a.mutate.Lock()
	defer a.mutate.Unlock()
	ct, err := a.p.CreateToken(r.Context(), project.TokenSpec{Name: body.Name, Role: role, TTL: ttl})
	if errors.Is(err, store.ErrConflict) {
		refuse(http.StatusConflict, fmt.Sprintf("a token named %s exists; revoke it first or choose another name", body.Name))
		return
	}
	if err != nil {
		_ = a.failed(r, action, body.Name, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	out := TokenOf(ct.Token, ct.Token.Created)
	out.Token = ct.Text
	w.Header().Set("Location", Prefix+"/tokens/"+ct.Token.Name)
	writeJSON(w, r, http.StatusCreated, out)
}

// revokeToken revokes the token named in the path that is not revoked yet.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	const action = project.ActionTokenRevoke
	if !checkQuery(w, r) {
		a.noteRefusal(r, action, r.PathValue("name"), "unknown query parameter")
		return
	}
	name := r.PathValue("name")
	a.mutate.Lock()
	defer a.mutate.Unlock()
	tk, err := a.p.RevokeToken(r.Context(), name)
	var status int
	switch {
	case err == nil:
		writeJSON(w, r, http.StatusOK, TokenOf(tk, a.p.Clock.Now()))
		return
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		status = http.StatusConflict
	default:
		_ = a.failed(r, action, name, err.Error())
		writeProblem(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	if rerr := a.refused(r, action, name, err.Error()); rerr != nil {
		writeProblem(w, r, http.StatusInternalServerError, rerr.Error())
		return
	}
	writeProblem(w, r, status, err.Error())
}

// noteRefusal records a refusal after the answer was already written
// (by decodeBody or checkQuery); a failure to record is lost with the
// answer gone, but the refusal changed nothing.
func (a *API) noteRefusal(r *http.Request, action, object, detail string) {
	_ = a.refused(r, action, object, detail)
}

func (a *API) listProducts(w http.ResponseWriter, r *http.Request, _ project.Principal) {
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

func (a *API) getProduct(w http.ResponseWriter, r *http.Request, _ project.Principal) {
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

func (a *API) listReleases(w http.ResponseWriter, r *http.Request, _ project.Principal) {
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

func (a *API) getRelease(w http.ResponseWriter, r *http.Request, _ project.Principal) {
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

func (a *API) getReports(w http.ResponseWriter, r *http.Request, _ project.Principal) {
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
		if errors.Is(err, project.ErrBelowReportK) {
			writeProblem(w, r, http.StatusUnprocessableEntity, err.Error())
			return
		}
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, sum)
}

// listAudit pages through the audit log with the store's filters. The
// cursor is the sequence number of the last entry of the page, so pages
// hold even while entries are appended or purged.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r, "limit", "cursor", "action", "object", "actor", "outcome", "since", "until", "newest") {
		return
	}
	q := r.URL.Query()
	f := store.AuditFilter{Action: q.Get("action"), Object: q.Get("object"), Actor: q.Get("actor"), Outcome: q.Get("outcome"), Limit: DefaultLimit}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if s := q.Get(name); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, s))
				return
			}
			*t = v
		}
	}
	switch f.Outcome {
	case "", store.OutcomeOK, store.OutcomeRefused, store.OutcomeFailed:
	default:
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("outcome %q: want ok, refused or failed", f.Outcome))
		return
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		writeProblem(w, r, http.StatusBadRequest, "until must be after since")
		return
	}
	if s := q.Get("newest"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("newest %q: want true or false", s))
			return
		}
		f.Newest = b
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", s, MaxLimit))
			return
		}
		f.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		rest, ok := strings.CutPrefix(string(b), "v1:audit-seq:")
		n, aerr := strconv.ParseInt(rest, 10, 64)
		if err != nil || !ok || aerr != nil || n < 1 {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("cursor %q is not a cursor of this list", c))
			return
		}
		f.AfterSeq = n
	}
	// One more than the page tells whether there is a next page.
	limit := f.Limit
	f.Limit++
	es, err := a.p.AuditQuery(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := Page[AuditEntry]{Items: make([]AuditEntry, 0, min(len(es), limit))}
	for _, e := range es[:min(len(es), limit)] {
		page.Items = append(page.Items, AuditEntryOf(e))
	}
	if len(es) > limit {
		last := page.Items[len(page.Items)-1].Seq
		page.Next = base64.RawURLEncoding.EncodeToString([]byte("v1:audit-seq:" + strconv.FormatInt(last, 10)))
	}
	writeJSON(w, r, http.StatusOK, page)
}

// verifyAudit checks the audit log's hash chain: 200 with intact false
// when it is broken (the check worked; its result is bad news).
func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	if !checkQuery(w, r) {
		return
	}
	v, err := a.p.VerifyAudit(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, v)
}
