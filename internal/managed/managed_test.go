package managed_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

type fixture struct {
	t     *testing.T
	p     *project.Project
	url   string
	token string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	p, err := project.Init(ctx, t.TempDir(), project.InitOptions{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	until := time.Now().AddDate(2, 0, 0).Format(time.DateOnly)
	if err := p.AddProduct(ctx, project.ProductSpec{Name: "thermostat", Hardware: []string{"rev-a"}, SupportUntil: until}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetInventoryFields(ctx, "thermostat", []string{"version"}); err != nil {
		t.Fatal(err)
	}
	tok, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 5})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(managed.New(p))
	t.Cleanup(srv.Close)
	return &fixture{t: t, p: p, url: srv.URL, token: tok.Text}
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// send signs a request with signer (keyid of signerPub) and returns the
// status and the problem code or answer.
func (f *fixture) send(method, path string, body any, signerPub ed25519.PublicKey, signer ed25519.PrivateKey, tamper func(*http.Request)) (int, map[string]any) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := devauth.Sign(req, devauth.KeyID(signerPub), signer, time.Now(), devauth.NewNonce()); err != nil {
		f.t.Fatal(err)
	}
	if tamper != nil {
		tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func enrolBody(product string, pub ed25519.PublicKey, token string, inv map[string]string) map[string]any {
	return map[string]any{"product": product, "public_key": base64.StdEncoding.EncodeToString(pub), "token": token, "inventory": inv}
}

func (f *fixture) devices() int {
	f.t.Helper()
	d, err := f.p.Devices(f.t.Context(), store.DeviceFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(d)
}

func TestEnrolAndState(t *testing.T) {
	f := newFixture(t)
	pub, priv := newKey(t)
	code, out := f.send("POST", managed.EnrollPath, enrolBody("thermostat", pub, f.token, map[string]string{"version": "1.0.0"}), pub, priv, nil)
	if code != 201 || out["state"] != "pending" {
		t.Fatalf("enrol: %d %v", code, out)
	}
	id := out["device_id"].(string)
	if code, out := f.send("POST", managed.EnrollPath, enrolBody("thermostat", pub, "", map[string]string{"version": "1.0.1"}), pub, priv, nil); code != 200 || out["device_id"] != id {
		t.Errorf("enrol again: %d %v", code, out)
	}
	if d, _ := f.p.Device(t.Context(), id); d.Inventory["version"] != "1.0.1" {
		t.Errorf("inventory after the second enrolment: %v", d.Inventory)
	}
	code, out = f.send("GET", managed.StatePath, nil, pub, priv, nil)
	if code != 200 || out["state"] != "pending" || !strings.Contains(toJSON(out["inventory_fields"]), "version") {
		t.Errorf("state: %d %v", code, out)
	}
	if _, err := f.p.RejectDevice(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if code, out := f.send("GET", managed.StatePath, nil, pub, priv, nil); code != 403 || out["code"] != "rejected" {
		t.Errorf("state of a rejected device: %d %v", code, out)
	}
	if code, out := f.send("POST", managed.EnrollPath, enrolBody("thermostat", pub, f.token, nil), pub, priv, nil); code != 403 || out["code"] != "rejected" {
		t.Errorf("enrolment of a rejected key: %d %v", code, out)
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// Refusals change nothing.
func TestEnrolRefusals(t *testing.T) {
	f := newFixture(t)
	pub, priv := newKey(t)
	otherPub, otherPriv := newKey(t)
	cases := []struct {
		name         string
		body         map[string]any
		signPub      ed25519.PublicKey
		signPriv     ed25519.PrivateKey
		tamper       func(*http.Request)
		status       int
		code, fields string
	}{
		{"undeclared inventory", enrolBody("thermostat", pub, f.token, map[string]string{"version": "1", "serial": "X1"}), pub, priv, nil, 422, "inventory-undeclared", "serial"},
		{"bad token", enrolBody("thermostat", pub, "uptrust-enrol_00_00", nil), pub, priv, nil, 422, "token-invalid", ""},
		{"no token", enrolBody("thermostat", pub, "", nil), pub, priv, nil, 422, "token-invalid", ""},
		{"signed by another key", enrolBody("thermostat", pub, f.token, nil), otherPub, otherPriv, nil, 401, "signature-invalid", ""},
		{"body changed after signing", enrolBody("thermostat", pub, f.token, nil), pub, priv, func(r *http.Request) {
			b, _ := json.Marshal(enrolBody("thermostat", otherPub, f.token, nil))
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
		}, 401, "signature-invalid", ""},
		{"unsigned", enrolBody("thermostat", pub, f.token, nil), pub, priv, func(r *http.Request) {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
		}, 401, "signature-required", ""},
		{"anonymous product", enrolBody("doorbell", pub, f.token, nil), pub, priv, nil, 422, "not-managed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := f.send("POST", managed.EnrollPath, c.body, c.signPub, c.signPriv, c.tamper)
			if code != c.status || out["code"] != c.code || !strings.Contains(toJSON(out["fields"]), c.fields) {
				t.Errorf("%d %v, want %d %s", code, out, c.status, c.code)
			}
			if n := f.devices(); n != 0 {
				t.Errorf("a refused enrolment stored %d devices", n)
			}
		})
	}
	// A key nobody enrolled cannot read a state.
	if code, out := f.send("GET", managed.StatePath, nil, otherPub, otherPriv, nil); code != 401 || out["code"] != "signature-invalid" {
		t.Errorf("state of an unknown key: %d %v", code, out)
	}
}

// Events are taken from accepted devices only, and only of known kinds.
func TestEvents(t *testing.T) {
	f := newFixture(t)
	pub, priv := newKey(t)
	code, out := f.send("POST", managed.EnrollPath, enrolBody("thermostat", pub, f.token, nil), pub, priv, nil)
	if code != 201 {
		t.Fatalf("enrol: %d %v", code, out)
	}
	id := out["device_id"].(string)
	ok := map[string]any{"kind": "succeeded", "version": "1.1.0"}
	if code, out := f.send("POST", managed.EventsPath, ok, pub, priv, nil); code != 403 || out["code"] != "pending" {
		t.Errorf("event of a pending device: %d %v", code, out)
	}
	if _, err := f.p.AcceptDevice(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]any{{"kind": "exploded"}, {"kind": "failed"}, {"kind": "downloading", "progress": 101}, {"kind": "succeeded", "extra": 1}} {
		if code, out := f.send("POST", managed.EventsPath, bad, pub, priv, nil); code != 422 || out["code"] != "bad-event" {
			t.Errorf("event %v: %d %v", bad, code, out)
		}
	}
	if code, out := f.send("POST", managed.EventsPath, ok, pub, priv, nil); code != 201 {
		t.Errorf("event of an accepted device: %d %v", code, out)
	}
	exp, err := f.p.ExportDevice(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Events) != 1 || exp.Events[0].Kind != "succeeded" || exp.Events[0].Version != "1.1.0" {
		t.Errorf("events stored: %+v", exp.Events)
	}
}
