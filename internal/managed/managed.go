// Package managed serves the device side of managed mode on the public
// listener: enrolment, a device's state, its update events and its own
// view of the fleet repository (docs/device-protocol.md). The
// operator's side (accept, reject, decommission, export, erase) is the
// management API's; the rules (tokens, pre-authorised keys, declared
// inventory) are package project's.
//
// Invariants:
//   - Every request is verified with package devauth before anything is
//     read from or written to the store; an enrolment is signed by the key
//     its body carries (proof of possession), later requests by a key the
//     store holds.
//   - An inventory naming undeclared fields is refused before enrolment
//     writes anything, and is never stored.
//   - Refusals are problem documents with the `code` the agent acts on;
//     signature refusals say no more than devauth.Problem's code.
//   - No client address is read or kept.
//   - A signed /repo/ request (Gate) is answered from memory: the device
//     cache (refreshed by Poll at the server's poll interval, so an
//     operator's accept, reject or decommission reaches every replica
//     within it) and the device's own fleet view (package director),
//     computed when the store's generation or the device's record changed
//     and only then. The view served is the one of the key that verified
//     the signature, never one a path or parameter names.
package managed

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/devnonce"
	"github.com/uptrust/uptrust/internal/director"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// Paths of the device API of managed mode.
const (
	EnrollPath = "/api/device/v1/enroll"
	StatePath  = "/api/device/v1/state"
	EventsPath = "/api/device/v1/events"
)

// maxBody bounds an enrolment body: a key, a token and a few inventory
// strings.
const maxBody = 16 << 10

// actor is who the audit log names for enrolments: the device API, with
// the device's random id in the entry's object.
var actor = project.Actor{Name: "device-api"}

// Handler serves EnrollPath and StatePath. It is safe for concurrent use.
type Handler struct {
	p      *project.Project
	nonces devauth.NonceStore
	views  *views
	// Authority and PathPrefix are passed to devauth.Verifier (see there).
	Authority, PathPrefix string
}

// New returns the handler for project p. Nonces of requests that change
// state (POST: enrolment, events) are recorded in the table every server
// on p's database shares (package devnonce), so a replay to another
// replica is refused; those of GETs (state, /repo/) in this process's
// memory: a replayed GET only returns what the device was already sent.
// Its device cache is empty until the first Poll; the server calls Poll
// before serving and then at every poll of its content.
func New(p *project.Project) *Handler {
	return &Handler{p: p, nonces: devauth.ByMethod{Safe: devauth.NewMemoryNonces(0), Unsafe: devnonce.New(p.Store)}, views: newViews(p)}
}

// SetAssigner makes a decide what each managed device should run
// instead of the project's managed rollouts in waves
// (project.AssignDevice, the default); call it before serving. Assignments are
// recomputed when the store's generation or the device's record changes,
// and only then.
func (h *Handler) SetAssigner(a director.Assigner) { h.views.assigner = a }

// Poll refreshes the device cache and, when the store's generation
// changed, what the per-device fleet views are computed from (see
// pollMargin). A decision of the operator (accept, reject, decommission)
// reaches every replica's cache at its next Poll.
func (h *Handler) Poll(ctx context.Context) error { return h.views.poll(ctx) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case EnrollPath:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			problem(w, http.StatusMethodNotAllowed, "method-not-allowed", "enrol with POST", nil)
			return
		}
		h.enroll(w, r)
	case StatePath:
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			problem(w, http.StatusMethodNotAllowed, "method-not-allowed", "read the state with GET", nil)
			return
		}
		h.state(w, r)
	case EventsPath:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			problem(w, http.StatusMethodNotAllowed, "method-not-allowed", "send events with POST", nil)
			return
		}
		h.event(w, r)
	default:
		problem(w, http.StatusNotFound, "not-found", "no such device route", nil)
	}
}

// Event is the body of POST EventsPath: one step of an update on the
// device (store.DeviceEvent's kinds).
type Event struct {
	Kind       string `json:"kind"`
	Version    string `json:"version,omitempty"`
	Progress   int    `json:"progress,omitempty"`
	ErrorClass string `json:"error_class,omitempty"`
	Message    string `json:"message,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// eventKinds are the kinds a device may send.
var eventKinds = []string{store.EventOffered, store.EventDownloading, store.EventInstalling, store.EventRebooting,
	store.EventSucceeded, store.EventFailed, store.EventRolledBack, store.EventSkipped}

// event records one event of an accepted device (201); a refused, pending
// or unknown device gets the problem the agent acts on, a malformed event
// 422 bad-event.
func (h *Handler) event(w http.ResponseWriter, r *http.Request) {
	if !jsonBody(w, r) {
		return
	}
	d, ok := h.signedDevice(w, r)
	if !ok {
		return
	}
	var e Event
	if err := decodeStrict(r.Body, &e); err != nil {
		problem(w, http.StatusUnprocessableEntity, "bad-event", "event body: "+err.Error(), nil)
		return
	}
	if !slices.Contains(eventKinds, e.Kind) || e.Progress < 0 || e.Progress > 100 {
		problem(w, http.StatusUnprocessableEntity, "bad-event", fmt.Sprintf("event kind %q or progress %d: want one of %v and 0..100", e.Kind, e.Progress, eventKinds), nil)
		return
	}
	_, err := h.p.AddDeviceEvent(r.Context(), d.ID, store.DeviceEvent{Kind: e.Kind, Version: e.Version, Progress: e.Progress,
		ErrorClass: e.ErrorClass, Message: e.Message, Reason: e.Reason})
	switch {
	case err == nil:
		w.WriteHeader(http.StatusCreated)
	case errors.Is(err, project.ErrDevicePending):
		problem(w, http.StatusForbidden, "pending", "the operator has not accepted this device yet", nil)
	case errors.Is(err, project.ErrInvalid):
		problem(w, http.StatusUnprocessableEntity, "bad-event", err.Error(), nil)
	default:
		h.fail(w, err)
	}
}

// enrollRequest is the body of POST EnrollPath.
type enrollRequest struct {
	Product   string            `json:"product"`
	PublicKey string            `json:"public_key"`
	Token     string            `json:"token,omitempty"`
	Inventory map[string]string `json:"inventory"`
}

// DeviceAnswer is the answer of both routes.
type DeviceAnswer struct {
	DeviceID string `json:"device_id"`
	State    string `json:"state"`
	// InventoryFields are the fields the product declares (StatePath only).
	InventoryFields []string `json:"inventory_fields,omitempty"`
}

func (h *Handler) verifier(keys devauth.KeyStore) *devauth.Verifier {
	return &devauth.Verifier{Keys: keys, Nonces: h.nonces, Clock: h.p.Clock, MaxBody: maxBody,
		Authority: h.Authority, PathPrefix: h.PathPrefix}
}

func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) {
	if !jsonBody(w, r) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		problem(w, http.StatusBadRequest, "bad-request", "reading the body: "+err.Error(), nil)
		return
	}
	if len(body) > maxBody {
		problem(w, http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("an enrolment is at most %d bytes", maxBody), nil)
		return
	}
	var req enrollRequest
	if err := decodeStrict(bytes.NewReader(body), &req); err != nil {
		problem(w, http.StatusBadRequest, "bad-request", "enrolment body: "+err.Error(), nil)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		problem(w, http.StatusBadRequest, "bad-request", "public_key: want the standard base64 of a 32-byte Ed25519 key", nil)
		return
	}
	pub := ed25519.PublicKey(raw)
	// Proof of possession: the request must be signed by the key it
	// enrols. The verifier reads the body again from what was read here.
	r.Body = io.NopCloser(bytes.NewReader(body))
	if _, err := h.verifier(oneKey{devauth.KeyID(pub): pub}).Verify(r.Context(), r); err != nil {
		signatureProblem(w, err)
		return
	}
	ctx := project.WithActor(r.Context(), actor)
	pol, err := h.p.DevicePolicy(ctx, req.Product)
	if err != nil {
		h.fail(w, err)
		return
	}
	var undeclared []string
	for f := range req.Inventory {
		if !slices.Contains(pol.Inventory, f) {
			undeclared = append(undeclared, f)
		}
	}
	if len(undeclared) > 0 {
		sort.Strings(undeclared)
		problem(w, http.StatusUnprocessableEntity, "inventory-undeclared",
			fmt.Sprintf("product %s does not declare inventory fields %v", req.Product, undeclared), undeclared)
		return
	}
	_, err = h.p.Store.DeviceByKey(ctx, project.EncodePublicKey(pub))
	existed := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.fail(w, err)
		return
	}
	d, err := h.p.Enroll(ctx, req.Product, pub, req.Token)
	if err != nil {
		h.fail(w, err)
		return
	}
	if len(req.Inventory) > 0 || len(d.Inventory) > 0 {
		if d, err = h.p.UpdateInventory(ctx, d.ID, req.Inventory); err != nil {
			h.fail(w, err)
			return
		}
	}
	h.views.put(d)
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	writeJSON(w, status, DeviceAnswer{DeviceID: d.ID, State: d.State})
}

func (h *Handler) state(w http.ResponseWriter, r *http.Request) {
	d, ok := h.signedDevice(w, r)
	if !ok {
		return
	}
	pol, err := h.p.DevicePolicy(r.Context(), d.Product)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, DeviceAnswer{DeviceID: d.ID, State: d.State, InventoryFields: nonNil(pol.Inventory)})
}

// signedDevice verifies r's signature and returns the enrolled device whose
// key made it; otherwise it answers the problem (401 for the signature, 403
// not-enrolled, 403 with the state for a rejected or decommissioned device)
// and returns false. Pending devices are returned: each route decides what
// they may do. The record read replaces the device cache's.
func (h *Handler) signedDevice(w http.ResponseWriter, r *http.Request) (store.Device, bool) {
	res, err := h.verifier(h.views).Verify(r.Context(), r)
	if err != nil {
		signatureProblem(w, err)
		return store.Device{}, false
	}
	pub, _ := h.views.DeviceKey(r.Context(), res.KeyID)
	d, err := h.p.Store.DeviceByKey(r.Context(), project.EncodePublicKey(pub))
	switch {
	case errors.Is(err, store.ErrNotFound):
		problem(w, http.StatusForbidden, "not-enrolled", "this key is not enrolled: enrol again", nil)
		return d, false
	case err != nil:
		h.fail(w, err)
		return d, false
	case d.State == store.DeviceRejected || d.State == store.DeviceDecommissioned:
		h.views.putNewer(d)
		problem(w, http.StatusForbidden, d.State, "the operator "+d.State+" this device", nil)
		return d, false
	}
	// What the database says now is at least as fresh as the device cache:
	// a device that learns here of its acceptance is served by /repo/ at
	// once, not after the next poll.
	h.views.putNewer(d)
	return d, true
}

// fail answers a project error with the problem the agent acts on.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var refused *project.DeviceRefusedError
	switch {
	case errors.As(err, &refused):
		problem(w, http.StatusForbidden, refused.State, "the operator "+refused.State+" this device", nil)
	case errors.Is(err, project.ErrDeviceRefused):
		problem(w, http.StatusForbidden, "rejected", "this key may not enrol for this product", nil)
	case errors.Is(err, project.ErrEnrollToken):
		problem(w, http.StatusUnprocessableEntity, "token-invalid", "the enrolment token is unknown, used up, revoked or expired, or none was given", nil)
	case errors.Is(err, project.ErrNotManaged), errors.Is(err, store.ErrNotFound):
		problem(w, http.StatusUnprocessableEntity, "not-managed", "the product does not exist or is not in managed mode", nil)
	case errors.Is(err, project.ErrInvalid):
		problem(w, http.StatusBadRequest, "bad-request", err.Error(), nil)
	default:
		problem(w, http.StatusServiceUnavailable, "unavailable", "the server cannot answer now; try again later", nil)
	}
}

func signatureProblem(w http.ResponseWriter, err error) {
	status, code := devauth.Problem(err)
	problem(w, status, code, "the request's signature was refused ("+code+")", nil)
}

// problemDoc is an RFC 9457 problem document with the code devices act on.
type problemDoc struct {
	Type   string   `json:"type"`
	Title  string   `json:"title"`
	Status int      `json:"status"`
	Code   string   `json:"code"`
	Detail string   `json:"detail,omitempty"`
	Fields []string `json:"fields,omitempty"`
}

func problem(w http.ResponseWriter, status int, code, detail string, fields []string) {
	b, _ := json.Marshal(problemDoc{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail, Fields: fields})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// oneKey is the key store of an enrolment: the key the body carries.
type oneKey map[string]ed25519.PublicKey

func (k oneKey) DeviceKey(_ context.Context, id string) (ed25519.PublicKey, error) {
	if pub, ok := k[id]; ok {
		return pub, nil
	}
	return nil, fmt.Errorf("%w: the signature's keyid is not the enrolled key's", devauth.ErrUnknownKey)
}

// Gate checks a signed request for /repo/ from a managed device: it
// returns true when the request may be served from the shared content,
// and otherwise answers it: 401 for a refused signature, 403 for a key
// that is not enrolled or a device that is pending, rejected or
// decommissioned, and for an accepted device's request of the fleet's
// timestamp, snapshot or targets, the device's own view (200, or 304 when
// If-None-Match names its ETag; 404 for a version that is not its view's).
// Requests without a signature are not the gate's: anonymous devices never
// sign, and keep the shared view.
//
// The view is chosen by the key that verified the signature, never by the
// path or a parameter: a device can only read its own. Everything Gate
// reads is in memory (the device cache that Poll refreshes, the view
// computed when the generation or the device record changed), so an
// unchanged device's check never touches the database.
func (h *Handler) Gate(w http.ResponseWriter, r *http.Request) bool {
	res, err := h.verifier(h.views).Verify(r.Context(), r)
	if err != nil {
		signatureProblem(w, err)
		return false
	}
	e := h.views.lookup(res.KeyID)
	if e == nil {
		problem(w, http.StatusForbidden, "not-enrolled", "this key is not enrolled: enrol again", nil)
		return false
	}
	d := e.dev.Load()
	if d.State == store.DevicePending {
		d = h.views.recheck(r.Context(), e, d)
	}
	if refusal(w, d) {
		return false
	}
	if name, ok := isViewPath(r.URL.Path); ok {
		h.serveView(w, r, e, name)
		return false
	}
	return true
}
