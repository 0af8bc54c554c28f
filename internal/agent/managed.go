package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/devauth"
)

// Managed mode (Config.Mode "managed"; contract in docs/device-protocol.md).
//
// Every request to the server except outcome reports is signed with the
// device key (devauth.Transport): the enrolment calls and the update
// checks of /repo/. Reports stay anonymous, on their own connections, as
// in anonymous mode.
//
// At each check, under the state lock and before any update request, the
// agent makes sure it has a key (ensureDeviceKey) and, until the server
// has accepted the device, enrols: POST enroll (idempotent), then GET
// state, whose inventory_fields say which inventory fields the product
// declares; when that list asks for values the enrolment did not carry,
// it enrols once more with them. The answer is recorded in
// DataDir/device.json (Enrolment), a cache of the server's verdict: losing
// it costs one more enrolment. While the device is pending, rejected or
// decommissioned the check stops there: nothing is fetched from /repo/,
// nothing installed; what a previous run left (a trial boot, a commit, a
// rollback) is still finished, since that needs no server. Once accepted
// the agent no longer enrols and checks for updates as in anonymous mode,
// with signed requests; only an update check that fails makes it ask GET
// state again (recheckEnrolment), to learn of a rejection or
// decommissioning since.

// Enrolment states as the server names them (Enrolment.State).
const (
	EnrolPending        = "pending"
	EnrolAccepted       = "accepted"
	EnrolRejected       = "rejected"
	EnrolDecommissioned = "decommissioned"
)

// Problem codes of the device API that the agent acts on (see also the
// signature codes in devauth).
const (
	codeRejected            = "rejected"
	codeDecommissioned      = "decommissioned"
	codeNotEnrolled         = "not-enrolled"
	codeTokenInvalid        = "token-invalid"
	codeInventoryUndeclared = "inventory-undeclared"
)

// Device API paths, under Config.Server.
const (
	enrollPath      = "/api/device/v1/enroll"
	deviceStatePath = "/api/device/v1/state"
)

// maxDeviceAnswer bounds an answer of the device API.
const maxDeviceAnswer = 64 << 10

// Enrolment is device.json: what the server last said about this device.
type Enrolment struct {
	// KeyID is the key the record is about; a record for another key is
	// ignored (the device is then a new one to the server).
	KeyID    string `json:"key_id"`
	DeviceID string `json:"device_id,omitempty"`
	// State is "pending", "accepted", "rejected" or "decommissioned"; empty
	// until the server gave one.
	State string `json:"state,omitempty"`
	// InventoryFields are the fields the product declares (GET state).
	InventoryFields []string `json:"inventory_fields,omitempty"`
	// Inventory is the inventory the last successful enrolment sent, so
	// the server's; null when unknown (a record from before it was kept).
	// An accepted device whose declared values differ from it enrols
	// again, once per check, to replace the server's (after an update).
	Inventory map[string]string `json:"inventory"`
	// At is when the server last answered.
	At time.Time `json:"at"`
	// Problem is the server's last refusal of an enrolment that leaves the
	// state as it was (token-invalid, inventory-undeclared, signature
	// problems); nil after a successful enrolment.
	Problem *DeviceProblem `json:"problem,omitempty"`
}

// DeviceProblem is a problem document (RFC 9457) from the device API.
type DeviceProblem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Fields names the inventory fields an inventory-undeclared refusal
	// is about.
	Fields []string `json:"fields,omitempty"`
}

func (p *DeviceProblem) Error() string {
	s := fmt.Sprintf("server refused the device (%d %s)", p.Status, p.Code)
	if p.Detail != "" {
		s += ": " + p.Detail
	} else if p.Title != "" {
		s += ": " + p.Title
	}
	if len(p.Fields) > 0 {
		s += " (fields " + strings.Join(p.Fields, ", ") + ")"
	}
	switch p.Code {
	case devauth.CodeClockSkew:
		s += "; the device's clock is too far from the server's"
	case codeTokenInvalid:
		s += "; the enrolment token is unknown, used up or expired: set a valid enrollment_token"
	}
	return s
}

func enrolmentPath(dataDir string) string { return filepath.Join(dataDir, "device.json") }

// LoadEnrolment reads device.json; nil, nil when there is none.
func LoadEnrolment(dataDir string) (*Enrolment, error) {
	b, err := os.ReadFile(enrolmentPath(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: enrolment record: %w", err)
	}
	var e Enrolment
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("agent: enrolment record %s: %w", enrolmentPath(dataDir), err)
	}
	return &e, nil
}

func saveEnrolment(dataDir string, e *Enrolment) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(enrolmentPath(dataDir), append(b, '\n'), 0o600)
}

// deviceSigner signs the agent's requests with the device key once
// loadDeviceKey has set it; before, it refuses to send anything, so no
// request of a managed agent ever leaves unsigned.
type deviceSigner struct {
	base http.RoundTripper
	a    *Agent
}

func (d *deviceSigner) RoundTrip(req *http.Request) (*http.Response, error) {
	if d.a.devKey == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("agent: managed mode: the device key is not loaded")
	}
	t := devauth.Transport{Base: d.base, KeyID: d.a.devKeyID, Key: d.a.devKey, Clock: d.a.clock}
	return t.RoundTrip(req)
}

// loadDeviceKey loads or creates the device key (the caller holds the
// state lock).
func (a *Agent) loadDeviceKey() error {
	if a.devKey != nil {
		return nil
	}
	key, created, err := ensureDeviceKey(a.cfg.KeyFile)
	if err != nil {
		return err
	}
	a.devKey, a.devKeyID = key, devauth.KeyID(key.Public().(ed25519.PublicKey))
	if created {
		a.log.Info("created the device key", "file", a.cfg.KeyFile, "keyid", a.devKeyID)
	}
	return nil
}

// enrolled makes sure the device is enrolled and returns what the server
// said; only an accepted device goes on to check for updates. s is the
// state (for the inventory).
func (a *Agent) enrolled(ctx context.Context, s *State) (*Enrolment, error) {
	if err := a.loadDeviceKey(); err != nil {
		return nil, err
	}
	e, err := LoadEnrolment(a.cfg.DataDir)
	if err != nil {
		a.log.Warn("enrolling again: the enrolment record is unreadable", "err", err)
		e = nil
	}
	if e == nil || e.KeyID != a.devKeyID {
		e = &Enrolment{KeyID: a.devKeyID}
	}
	known := a.inventoryValues(ctx, s)
	if e.State == EnrolAccepted {
		inv := inventory(e.InventoryFields, known)
		if e.Inventory != nil && sameInventory(inv, e.Inventory) {
			return e, nil
		}
		// The declared values changed since the server last had them
		// (an update was committed): POST enroll replaces them. A failure
		// does not stop the update check; the next check tries again.
		prev := *e
		if err := a.enrol(ctx, e, inv); err != nil {
			a.log.Warn("could not send the changed inventory; trying again at the next check", "err", err)
			return &prev, nil
		}
		if err := saveEnrolment(a.cfg.DataDir, e); err != nil {
			a.log.Warn("saving the enrolment record", "err", err)
		}
		return e, nil
	}
	sent := inventory(e.InventoryFields, known)
	err = a.enrol(ctx, e, sent)
	if err == nil && (e.State == EnrolPending || e.State == EnrolAccepted) {
		err = a.readDeviceState(ctx, e)
		if inv := inventory(e.InventoryFields, known); err == nil && (e.State == EnrolPending || e.State == EnrolAccepted) && !sameInventory(inv, sent) {
			err = a.enrol(ctx, e, inv)
		}
	}
	if serr := saveEnrolment(a.cfg.DataDir, e); serr != nil && err == nil {
		err = serr
	}
	return e, err
}

// enrol sends POST enroll and records the answer in e.
func (a *Agent) enrol(ctx context.Context, e *Enrolment, inv map[string]string) error {
	token, err := a.cfg.enrollmentToken()
	if err != nil {
		return err
	}
	body, err := json.Marshal(enrolRequest{Product: a.cfg.Product,
		PublicKey: base64.StdEncoding.EncodeToString(a.devKey.Public().(ed25519.PublicKey)), Token: token, Inventory: inv})
	if err != nil {
		return err
	}
	ans, err := a.http.Call(ctx, http.MethodPost, strings.TrimSuffix(a.cfg.Server, "/")+enrollPath, body, maxDeviceAnswer)
	if err != nil {
		return fmt.Errorf("agent: enrolment: %w", err)
	}
	e.At = a.clock.Now().UTC()
	var got deviceAnswer
	if err := decodeDeviceAnswer(ans, &got, http.StatusOK, http.StatusCreated); err != nil {
		var p *DeviceProblem
		if errors.As(err, &p) && p.Status == http.StatusForbidden && (p.Code == codeRejected || p.Code == codeDecommissioned) {
			e.State, e.Problem = p.Code, p
			return nil
		}
		if errors.As(err, &p) {
			e.Problem = p
		}
		return fmt.Errorf("agent: enrolment: %w", err)
	}
	if got.State != EnrolPending && got.State != EnrolAccepted {
		return fmt.Errorf("agent: enrolment: the server answered state %q (want pending or accepted)", got.State)
	}
	if got.DeviceID == "" {
		return errors.New("agent: enrolment: the server answered no device_id")
	}
	e.DeviceID, e.State, e.Problem, e.Inventory = got.DeviceID, got.State, nil, inv
	return nil
}

// readDeviceState sends GET state and records the answer in e.
func (a *Agent) readDeviceState(ctx context.Context, e *Enrolment) error {
	ans, err := a.http.Call(ctx, http.MethodGet, strings.TrimSuffix(a.cfg.Server, "/")+deviceStatePath, nil, maxDeviceAnswer)
	if err != nil {
		return fmt.Errorf("agent: device state: %w", err)
	}
	var got deviceAnswer
	if err := decodeDeviceAnswer(ans, &got, http.StatusOK); err != nil {
		var p *DeviceProblem
		if errors.As(err, &p) && p.Status == http.StatusForbidden && (p.Code == codeRejected || p.Code == codeDecommissioned) {
			e.State, e.Problem = p.Code, p
			return nil
		}
		return fmt.Errorf("agent: device state: %w", err)
	}
	switch got.State {
	case EnrolPending, EnrolAccepted, EnrolRejected, EnrolDecommissioned:
	default:
		return fmt.Errorf("agent: device state: the server answered state %q", got.State)
	}
	if got.DeviceID != "" {
		e.DeviceID = got.DeviceID
	}
	e.State, e.InventoryFields = got.State, got.InventoryFields
	return nil
}

type enrolRequest struct {
	Product   string            `json:"product"`
	PublicKey string            `json:"public_key"`
	Token     string            `json:"token,omitempty"`
	Inventory map[string]string `json:"inventory"`
}

type deviceAnswer struct {
	DeviceID        string   `json:"device_id"`
	State           string   `json:"state"`
	InventoryFields []string `json:"inventory_fields"`
}

// decodeDeviceAnswer decodes a JSON answer with one of the ok statuses
// into v; another status is a *DeviceProblem (from the problem document
// when there is one).
func decodeDeviceAnswer(ans *fetch.Answer, v any, ok ...int) error {
	if slices.Contains(ok, ans.StatusCode) {
		if err := json.Unmarshal(ans.Body, v); err != nil {
			return fmt.Errorf("the server's %d answer is not the expected JSON: %w", ans.StatusCode, err)
		}
		return nil
	}
	p := &DeviceProblem{}
	if mt, _, _ := mime.ParseMediaType(ans.ContentType); mt == "application/problem+json" {
		_ = json.Unmarshal(ans.Body, p)
	}
	p.Status = ans.StatusCode
	if p.Code == "" {
		p.Code = "status-" + strconv.Itoa(ans.StatusCode)
	}
	return p
}

// inventoryValues are the values the agent knows for the inventory fields
// a product may declare. Empty values are left out.
func (a *Agent) inventoryValues(ctx context.Context, s *State) map[string]string {
	v := map[string]string{
		"product":          a.cfg.Product,
		"hardware":         a.cfg.Hardware,
		"version":          s.Version,
		"security_version": strconv.FormatUint(s.SecurityVersion, 10),
		"agent_version":    a.agentVersion,
	}
	if bs, err := a.slots.State(ctx); err == nil {
		v["slot"] = string(bs.Booted)
	}
	return v
}

// inventory is what the agent sends: the declared fields it knows a value
// for, and nothing else.
func inventory(declared []string, known map[string]string) map[string]string {
	out := map[string]string{}
	for _, f := range declared {
		if v := known[f]; v != "" {
			out[f] = v
		}
	}
	return out
}

func sameInventory(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// enrolmentCheck is the check record of a managed device that may not
// update (pending, rejected, decommissioned), or nil when it may.
func enrolmentCheck(e *Enrolment, now time.Time) *Check {
	switch e.State {
	case EnrolAccepted:
		return nil
	case EnrolPending:
		return &Check{At: now, Action: ActionPending, Reason: fmt.Sprintf("enrolment pending (device id %s): waiting for the server to accept this device; no update check until then", e.DeviceID)}
	case EnrolRejected, EnrolDecommissioned:
		return &Check{At: now, Action: ActionRefused, Reason: refusal(e)}
	}
	return &Check{At: now, Action: "error", Reason: "not enrolled yet"}
}

// refusal says why the server refuses the device, for check and status.
func refusal(e *Enrolment) string {
	id := e.DeviceID
	if id == "" {
		id = "unknown"
	}
	what := "rejected this device"
	if e.State == EnrolDecommissioned {
		what = "decommissioned this device"
	}
	s := fmt.Sprintf("the server %s (device id %s, key %s); the agent does not update", what, id, e.KeyID)
	if p := e.Problem; p != nil && p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// Check actions of a managed device that may not update.
const (
	// ActionPending: enrolled, not accepted yet.
	ActionPending = "pending"
	// ActionRefused: the server rejected or decommissioned the device.
	ActionRefused = "refused"
)

// managedGate runs before the update check of a managed device: it enrols
// and says whether the check stops here (not accepted, or the enrolment
// failed), with the check record it then stored. A device key that cannot
// be loaded or created is returned as an error.
func (a *Agent) managedGate(ctx context.Context, s *State) (chk *Check, stop bool, err error) {
	if err := a.loadDeviceKey(); err != nil {
		return nil, true, err
	}
	now := a.clock.Now().UTC()
	e, err := a.enrolled(ctx, s)
	if err != nil {
		chk = &Check{At: now, Action: "error", Reason: err.Error()}
		a.log.Warn("enrolment failed", "err", err)
	} else if chk = enrolmentCheck(e, now); chk == nil {
		return nil, false, nil
	} else {
		a.log.Info("no update check", "enrolment", e.State, "device_id", e.DeviceID)
	}
	s.LastCheck = chk
	return chk, true, a.record(s)
}

// recheckEnrolment runs after a failed update check of a device recorded
// as accepted: the server may have rejected or decommissioned it since, or
// forgotten it, and refuses its signed requests. It asks GET state (one
// request, only on a failed check, so the update check itself never
// touches the device API) and returns the check record to keep instead of
// chk when the device may no longer update; a key the server does not
// know (any longer) is enrolled again at the next check.
func (a *Agent) recheckEnrolment(ctx context.Context, s *State, chk *Check) *Check {
	e, err := LoadEnrolment(a.cfg.DataDir)
	if err != nil || e == nil || e.KeyID != a.devKeyID || e.State != EnrolAccepted {
		return chk
	}
	err = a.readDeviceState(ctx, e)
	var p *DeviceProblem
	switch {
	case errors.As(err, &p) && (p.Status == http.StatusUnauthorized && p.Code == devauth.CodeSignatureInvalid || p.Code == codeNotEnrolled):
		a.log.Warn("the server no longer knows this device; enrolling again at the next check", "code", p.Code)
		e.State, e.Problem = "", p
	case err != nil:
		a.log.Warn("cannot read the device state after a failed check", "err", err)
		return chk
	}
	e.At = a.clock.Now().UTC()
	if err := saveEnrolment(a.cfg.DataDir, e); err != nil {
		a.log.Warn("saving the enrolment record", "err", err)
	}
	if e.State == EnrolAccepted || e.State == "" {
		return chk
	}
	out := enrolmentCheck(e, chk.At)
	s.LastCheck = out
	if err := a.record(s); err != nil {
		a.log.Warn("recording the check", "err", err)
	}
	return out
}
