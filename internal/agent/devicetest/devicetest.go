// Package devicetest is a minimal server side of the managed-device
// protocol (docs/device-protocol.md) for the agent's tests: enrolment,
// device state, and a pass-through for everything else. Every signed
// request is checked with devauth.Verifier (real Ed25519 verification,
// skew window and nonces), and every request is recorded, so tests can
// assert on what the server saw. It is not the uptrust server: no store,
// no persistence; tests only.
package devicetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/devauth"
)

// Device is a device the server knows.
type Device struct {
	ID, KeyID, State string
	Product          string
	Inventory        map[string]string
	// Enrolments counts the enrolment requests accepted for it.
	Enrolments int
}

// Request is what the server saw of one request.
type Request struct {
	Method, Path string
	// Signed: the request carried any of Signature, Signature-Input or
	// Content-Digest.
	Signed bool
	// KeyID is the key that signed it, once verified.
	KeyID string
	// VerifyErr is why verification failed ("" when it passed or the
	// request was not signed).
	VerifyErr string
	// Token and Inventory are an enrolment's.
	Token     string
	Inventory map[string]string
}

// Server implements the contract minimally. Set its fields before the
// first request.
type Server struct {
	URL string
	// Fields are the inventory fields the product declares.
	Fields []string
	// Tokens maps enrolment tokens to their remaining uses; nil: no token
	// is needed.
	Tokens map[string]int
	// Initial is the state of a newly enrolled device (default pending).
	Initial string
	// Next serves every request outside /api/device/v1/ once its
	// signature, if any, verified (nil: 404).
	Next http.Handler
	// EventStatus, when not 0, is the status every event request is
	// answered with, without recording the event (a failing server);
	// EventHang, when set, holds event requests until it is closed or the
	// client gives up (a server that never answers).
	EventStatus int
	EventHang   chan struct{}
	// Clock is the server's time for the signatures' window (nil: the
	// real clock); tests give it the device's fake clock.
	Clock clock.Clock

	nonces  *devauth.MemoryNonces
	mu      sync.Mutex
	devices map[string]*Device // by keyid
	pub     map[string]ed25519.PublicKey
	reqs    []Request
	events  []Event
}

// Event is an update event the server accepted, with the keyid that
// signed it. The body's fields are the protocol's (internal/managed).
type Event struct {
	KeyID      string `json:"-"`
	Kind       string `json:"kind"`
	Version    string `json:"version,omitempty"`
	Progress   int    `json:"progress,omitempty"`
	ErrorClass string `json:"error_class,omitempty"`
	Message    string `json:"message,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// eventKinds and skipReasons are what the server accepts
// (internal/managed, project.SkipReasons).
// (The agent's packages may not import the server's, so the lists are
// copied here; keep them equal.)
var (
	eventKinds  = []string{"offered", "downloading", "installing", "rebooting", "succeeded", "failed", "rolled_back", "skipped"}
	skipReasons = []string{"incompatible_hardware", "owner_consent_missing", "postponed_by_owner", "support_ended", "outside_maintenance_window"}
)

// SkipReasons are the skip reasons the server accepts.
func SkipReasons() []string { return slices.Clone(skipReasons) }

// Events returns the accepted events, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// New starts a server on 127.0.0.1, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{nonces: devauth.NewMemoryNonces(1 << 12), devices: map[string]*Device{}, pub: map[string]ed25519.PublicKey{}}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// Devices returns copies of the known devices, by keyid.
func (s *Server) Devices() map[string]Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Device{}
	for k, d := range s.devices {
		c := *d
		c.Inventory = maps(d.Inventory)
		out[k] = c
	}
	return out
}

// SetState changes a device's state (the operator's accept, reject or
// decommission).
func (s *Server) SetState(keyID, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devices[keyID]; d != nil {
		d.State = state
	}
}

// Requests returns what the server saw so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func maps(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DeviceKey implements devauth.KeyStore over the enrolled devices.
func (s *Server) DeviceKey(_ context.Context, keyID string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pub, ok := s.pub[keyID]; ok {
		return pub, nil
	}
	return nil, devauth.ErrUnknownKey
}

type oneKey struct {
	id  string
	pub ed25519.PublicKey
}

func (k oneKey) DeviceKey(_ context.Context, keyID string) (ed25519.PublicKey, error) {
	if keyID == k.id {
		return k.pub, nil
	}
	return nil, devauth.ErrUnknownKey
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

func signed(r *http.Request) bool {
	return r.Header.Get("Signature") != "" || r.Header.Get("Signature-Input") != "" || r.Header.Get("Content-Digest") != ""
}

func problem(w http.ResponseWriter, status int, code, detail string, fields []string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status,
		"code": code, "detail": detail, "fields": fields})
}

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Signed: signed(r)}
	defer func() { s.record(rec) }()
	switch {
	case r.URL.Path == "/api/device/v1/enroll" && r.Method == http.MethodPost:
		s.enroll(w, r, &rec)
	case r.URL.Path == "/api/device/v1/state" && r.Method == http.MethodGet:
		d, ok := s.verify(w, r, &rec, s)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		answer(w, http.StatusOK, map[string]any{"device_id": d.ID, "state": d.State, "inventory_fields": s.Fields})
	case r.URL.Path == "/api/device/v1/events" && r.Method == http.MethodPost:
		s.event(w, r, &rec)
	default:
		if rec.Signed {
			d, ok := s.verify(w, r, &rec, s)
			if !ok {
				return
			}
			if d.State == "rejected" || d.State == "decommissioned" {
				problem(w, http.StatusForbidden, d.State, "the operator "+d.State+" this device", nil)
				return
			}
		}
		if s.Next == nil {
			http.NotFound(w, r)
			return
		}
		s.Next.ServeHTTP(w, r)
	}
}

// verify checks the signature with keys and answers a refusal itself.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, rec *Request, keys devauth.KeyStore) (Device, bool) {
	v := &devauth.Verifier{Keys: keys, Nonces: s.nonces, Clock: s.Clock}
	res, err := v.Verify(r.Context(), r)
	if err != nil {
		rec.VerifyErr = err.Error()
		status, code := devauth.Problem(err)
		problem(w, status, code, "", nil)
		return Device{}, false
	}
	rec.KeyID = res.KeyID
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[res.KeyID]
	if d == nil {
		// Only the enrolment's one-key store lets an unknown key through.
		return Device{KeyID: res.KeyID}, true
	}
	return *d, true
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request, rec *Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		problem(w, http.StatusBadRequest, "bad-request", err.Error(), nil)
		return
	}
	var req struct {
		Product   string            `json:"product"`
		PublicKey string            `json:"public_key"`
		Token     string            `json:"token"`
		Inventory map[string]string `json:"inventory"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, "bad-request", err.Error(), nil)
		return
	}
	rec.Token, rec.Inventory = req.Token, req.Inventory
	pub, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		problem(w, http.StatusBadRequest, "bad-request", "public_key is not a base64 Ed25519 public key", nil)
		return
	}
	// Proof of possession: the enrolment is signed by the key it carries.
	r.Body = io.NopCloser(bytes.NewReader(body))
	id := devauth.KeyID(pub)
	if _, ok := s.verify(w, r, rec, oneKey{id: id, pub: pub}); !ok {
		return
	}
	var undeclared []string
	for f := range req.Inventory {
		if !slices.Contains(s.Fields, f) {
			undeclared = append(undeclared, f)
		}
	}
	if len(undeclared) > 0 {
		sort.Strings(undeclared)
		problem(w, http.StatusUnprocessableEntity, "inventory-undeclared", fmt.Sprintf("fields %v are not declared by product %s", undeclared, req.Product), undeclared)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devices[id]; d != nil {
		if d.State == "rejected" || d.State == "decommissioned" {
			problem(w, http.StatusForbidden, d.State, "the operator "+d.State+" this device", nil)
			return
		}
		d.Inventory, d.Enrolments = req.Inventory, d.Enrolments+1
		answer(w, http.StatusOK, map[string]any{"device_id": d.ID, "state": d.State})
		return
	}
	if s.Tokens != nil {
		if s.Tokens[req.Token] <= 0 {
			problem(w, http.StatusUnprocessableEntity, "token-invalid", "unknown, used up or expired enrolment token", nil)
			return
		}
		s.Tokens[req.Token]--
	}
	state := s.Initial
	if state == "" {
		state = "pending"
	}
	d := &Device{ID: fmt.Sprintf("dev-%d", len(s.devices)+1), KeyID: id, State: state, Product: req.Product, Inventory: req.Inventory, Enrolments: 1}
	s.devices[id] = d
	s.pub[id] = pub
	answer(w, http.StatusCreated, map[string]any{"device_id": d.ID, "state": d.State})
}

// event records an accepted device's update event (201) after the checks
// of the real server: a signed, accepted device, a known kind, progress
// 0..100, a failed event's error class, a skip reason of
// project.SkipReasons.
func (s *Server) event(w http.ResponseWriter, r *http.Request, rec *Request) {
	d, ok := s.verify(w, r, rec, s)
	if !ok {
		return
	}
	if s.EventHang != nil {
		select {
		case <-s.EventHang:
		case <-r.Context().Done():
			return
		}
	}
	if s.EventStatus != 0 {
		problem(w, s.EventStatus, "test", "event refused by the test", nil)
		return
	}
	if d.State != "accepted" {
		problem(w, http.StatusForbidden, "pending", "the device is "+d.State, nil)
		return
	}
	var e Event
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		problem(w, http.StatusUnprocessableEntity, "bad-event", err.Error(), nil)
		return
	}
	switch {
	case !slices.Contains(eventKinds, e.Kind) || e.Progress < 0 || e.Progress > 100:
		problem(w, http.StatusUnprocessableEntity, "bad-event", fmt.Sprintf("kind %q, progress %d", e.Kind, e.Progress), nil)
		return
	case e.Kind == "failed" && e.ErrorClass == "":
		problem(w, http.StatusUnprocessableEntity, "bad-event", "a failed event needs an error class", nil)
		return
	case e.Kind == "skipped" && !slices.Contains(skipReasons, e.Reason):
		problem(w, http.StatusUnprocessableEntity, "bad-event", fmt.Sprintf("skip reason %q", e.Reason), nil)
		return
	}
	e.KeyID = d.KeyID
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}
