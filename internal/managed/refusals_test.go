package managed_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/storetest"
)

// fleet is a SQLite project on a fake clock serving the device API (and
// /repo/ behind the device gate) as one server named authority.
type fleet struct {
	t     *testing.T
	p     *project.Project
	clk   *clock.Fake
	url   string
	token string
	h     *managed.Handler
}

// poll makes the handler's device cache see the database, as the server's
// poll loop does every few seconds.
func (f *fleet) poll() {
	f.t.Helper()
	if err := f.h.Poll(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
}

func newFleet(t *testing.T, uses int) *fleet {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	p, token := managedProject(t, "sqlite", project.Options{Clock: clk}, uses)
	h := managed.New(p)
	h.Authority = authority
	mux := http.NewServeMux()
	mux.Handle("/api/device/", h)
	mux.HandleFunc("/repo/", func(w http.ResponseWriter, r *http.Request) {
		if h.Gate(w, r) {
			fmt.Fprint(w, "served")
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fleet{t: t, p: p, clk: clk, url: srv.URL, token: token, h: h}
}

// do signs and sends one request at the fake clock's time.
func (f *fleet) do(method, path string, body any, pub ed25519.PublicKey, priv ed25519.PrivateKey) (int, map[string]any) {
	f.t.Helper()
	code, ctype, out := record(f.t, method, path, body, pub, priv, f.clk.Now()).sendTo(f.t, f.url)
	if code >= 400 && (ctype != "application/problem+json" || out["code"] == nil || out["code"] == "") {
		f.t.Errorf("%s %s: %d with Content-Type %q and code %v, want a problem document with a code", method, path, code, ctype, out["code"])
	}
	return code, out
}

// enrolled enrols a new key with inventory version and returns it with
// the device id, accepted when accept is set.
func (f *fleet) enrolled(version string, accept bool) (ed25519.PublicKey, ed25519.PrivateKey, string) {
	f.t.Helper()
	pub, priv := newKey(f.t)
	code, out := f.do("POST", managed.EnrollPath, enrolBody("thermostat", pub, f.token, map[string]string{"version": version}), pub, priv)
	if code != 201 {
		f.t.Fatalf("enrol: %d %v", code, out)
	}
	id := out["device_id"].(string)
	if accept {
		if _, err := f.p.AcceptDevice(f.t.Context(), id); err != nil {
			f.t.Fatal(err)
		}
		f.poll()
	}
	return pub, priv, id
}

// rows is every row of every table of the live schema, but
// device_nonces': a request that passed its signature check records its
// nonce (replay protection) even when it is then refused.
func (f *fleet) rows() string {
	f.t.Helper()
	return storetest.Dump(f.t, f.p.Store, filepath.Join(f.p.Dir, "uptrust.db"), "", store.TableDeviceNonces)
}

// unchanged fails the test when the database differs from before.
func (f *fleet) unchanged(what, before string) {
	f.t.Helper()
	if after := f.rows(); after != before {
		f.t.Errorf("%s changed the database:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
}

// TestDeviceCannotActForAnother: device A's signature cannot enrol, or
// change the inventory of, B's key; A's events land in A's history only,
// and naming B in an event is refused.
func TestDeviceCannotActForAnother(t *testing.T) {
	f := newFleet(t, 5)
	aPub, aPriv, aID := f.enrolled("1.0.0", true)
	bPub, _, bID := f.enrolled("2.0.0", true)

	before := f.rows()
	// An enrolment carrying B's key, signed by A (with or without a token).
	for _, tok := range []string{f.token, ""} {
		code, out := f.do("POST", managed.EnrollPath, enrolBody("thermostat", bPub, tok, map[string]string{"version": "6.6.6"}), aPub, aPriv)
		if code != 401 || out["code"] != devauth.CodeSignatureInvalid {
			t.Errorf("A enrolling B's key (token %q): %d %v, want 401 %s", tok, code, out, devauth.CodeSignatureInvalid)
		}
	}
	// An event naming B.
	for _, body := range []map[string]any{
		{"kind": "failed", "error_class": "hash", "device_id": bID},
		{"kind": "failed", "error_class": "hash", "device": bID},
		{"kind": "failed", "error_class": "hash", "public_key": bPub},
	} {
		if code, out := f.do("POST", managed.EventsPath, body, aPub, aPriv); code != 422 || out["code"] != "bad-event" {
			t.Errorf("A's event %v: %d %v, want 422 bad-event", body, code, out)
		}
	}
	f.unchanged("requests of A about B", before)
	if d, err := f.p.Device(t.Context(), bID); err != nil || d.Inventory["version"] != "2.0.0" {
		t.Errorf("B's inventory: %v, %v; want version 2.0.0", d.Inventory, err)
	}

	// A's event is A's, whatever it says.
	if code, out := f.do("POST", managed.EventsPath, map[string]any{"kind": "failed", "error_class": "hash", "message": bID}, aPub, aPriv); code != 201 {
		t.Fatalf("A's event: %d %v", code, out)
	}
	for id, want := range map[string]int{aID: 1, bID: 0} {
		if x, err := f.p.ExportDevice(t.Context(), id); err != nil || len(x.Events) != want {
			t.Errorf("device %s has %d events, %v; want %d", id, len(x.Events), err, want)
		}
	}
}

// TestRefusedDevicesGetNothing: a rejected or decommissioned device is
// refused on every route (state, events, enrolment, /repo/), with its
// state as the code, and nothing is stored.
func TestRefusedDevicesGetNothing(t *testing.T) {
	f := newFleet(t, 5)
	for _, state := range []string{store.DeviceRejected, store.DeviceDecommissioned} {
		t.Run(state, func(t *testing.T) {
			pub, priv, id := f.enrolled("1.0.0", true)
			if code, _, _ := record(t, "GET", "/repo/fleet/timestamp.json", nil, pub, priv, f.clk.Now()).sendTo(t, f.url); code != 200 {
				t.Fatalf("/repo/ of the accepted device: %d, want 200", code)
			}
			var err error
			if state == store.DeviceRejected {
				_, err = f.p.RejectDevice(t.Context(), id)
			} else {
				_, err = f.p.DecommissionDevice(t.Context(), id)
			}
			if err != nil {
				t.Fatal(err)
			}
			f.poll()
			before := f.rows()
			for _, rq := range []struct {
				method, path string
				body         any
			}{
				{"GET", managed.StatePath, nil},
				{"POST", managed.EventsPath, map[string]any{"kind": "succeeded", "version": "1.1.0"}},
				{"POST", managed.EnrollPath, enrolBody("thermostat", pub, f.token, map[string]string{"version": "1.1.0"})},
				{"GET", "/repo/fleet/timestamp.json", nil},
				{"GET", "/repo/release/targets/thermostat/1.1.0.img", nil},
			} {
				if code, out := f.do(rq.method, rq.path, rq.body, pub, priv); code != 403 || out["code"] != state {
					t.Errorf("%s %s: %d %v, want 403 %s", rq.method, rq.path, code, out, state)
				}
			}
			f.unchanged("requests of a "+state+" device", before)
		})
	}
}

// TestReplayAndOldSignatures: a replayed request, and requests signed
// outside the skew window (a re-signed old one, one from the future), are
// refused and store nothing.
func TestReplayAndOldSignatures(t *testing.T) {
	f := newFleet(t, 5)
	pub, priv, id := f.enrolled("1.0.0", true)
	event := map[string]any{"kind": "succeeded", "version": "1.1.0"}

	sent := record(t, "POST", managed.EventsPath, event, pub, priv, f.clk.Now())
	if code, _, out := sent.sendTo(t, f.url); code != 201 {
		t.Fatalf("event: %d %v", code, out)
	}
	before := f.rows()
	if code, _, out := sent.sendTo(t, f.url); code != 401 || out["code"] != devauth.CodeReplayed {
		t.Errorf("replayed event: %d %v, want 401 %s", code, out, devauth.CodeReplayed)
	}
	// The same request a minute later is still a replay (the window is
	// the signature's, not the server's clock).
	f.clk.Advance(time.Minute)
	if code, _, out := sent.sendTo(t, f.url); code != 401 || out["code"] != devauth.CodeReplayed {
		t.Errorf("event replayed a minute later: %d %v, want 401 %s", code, out, devauth.CodeReplayed)
	}
	// Past the window the replay is refused as too old.
	f.clk.Advance(devauth.DefaultSkew)
	if code, _, out := sent.sendTo(t, f.url); code != 401 || out["code"] != devauth.CodeClockSkew {
		t.Errorf("event replayed after the window: %d %v, want 401 %s", code, out, devauth.CodeClockSkew)
	}
	// Signed (with the device's own key and a fresh nonce) outside the
	// window, before or after the server's time.
	for _, off := range []time.Duration{-devauth.DefaultSkew - time.Second, -24 * time.Hour, devauth.DefaultSkew + time.Second} {
		for _, rq := range []struct {
			path string
			body any
		}{
			{managed.EventsPath, event},
			{managed.EnrollPath, enrolBody("thermostat", pub, f.token, map[string]string{"version": "9.9.9"})},
		} {
			code, _, out := record(t, "POST", rq.path, rq.body, pub, priv, f.clk.Now().Add(off)).sendTo(t, f.url)
			if code != 401 || out["code"] != devauth.CodeClockSkew {
				t.Errorf("%s signed %s from now: %d %v, want 401 %s", rq.path, off, code, out, devauth.CodeClockSkew)
			}
		}
	}
	f.unchanged("replays and requests signed outside the window", before)
	if x, _ := f.p.ExportDevice(t.Context(), id); len(x.Events) != 1 {
		t.Errorf("%d events, want 1", len(x.Events))
	}
}

// TestEnrolmentTokenLimits: a token past its uses or its expiry is
// refused (422 token-invalid) and nothing is stored; the purge then
// removes the expired device nonces.
func TestEnrolmentTokenLimits(t *testing.T) {
	f := newFleet(t, 1)
	f.enrolled("1.0.0", false)
	before := f.rows()
	pub, priv := newKey(t)
	if code, out := f.do("POST", managed.EnrollPath, enrolBody("thermostat", pub, f.token, nil), pub, priv); code != 422 || out["code"] != "token-invalid" {
		t.Errorf("enrolment with a used-up token: %d %v, want 422 token-invalid", code, out)
	}
	f.unchanged("an enrolment with a used-up token", before)

	tk, err := f.p.CreateEnrollmentToken(t.Context(), project.EnrollmentTokenSpec{Product: "thermostat", Uses: 10, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Hour + time.Second)
	before = f.rows()
	if code, out := f.do("POST", managed.EnrollPath, enrolBody("thermostat", pub, tk.Text, nil), pub, priv); code != 422 || out["code"] != "token-invalid" {
		t.Errorf("enrolment with an expired token: %d %v, want 422 token-invalid", code, out)
	}
	f.unchanged("an enrolment with an expired token", before)

	// Three nonces were recorded: the server deleted the two an hour old
	// while recording the third; the purge removes the third once its
	// window closed more than devnonce.Margin ago, not before.
	for _, c := range []struct {
		after time.Duration
		want  int64
	}{{0, 0}, {time.Hour, 1}, {time.Hour, 0}} {
		f.clk.Advance(c.after)
		res, err := f.p.Purge(t.Context())
		if err != nil || res.Nonces != c.want {
			t.Errorf("purge %s later removed %d nonces, %v; want %d", c.after, res.Nonces, err, c.want)
		}
	}
}

// TestMalformedDeviceRequests: malformed JSON, unknown fields, trailing
// data, a wrong or missing content type and oversized bodies get a 4xx
// problem document with a code, and change nothing.
func TestMalformedDeviceRequests(t *testing.T) {
	f := newFleet(t, 5)
	pub, priv, _ := f.enrolled("1.0.0", true)
	newPub, newPriv := newKey(t)
	enrol := `{"product":"thermostat","public_key":"` + base64.StdEncoding.EncodeToString(newPub) + `","token":"` + f.token + `"`
	big := strings.Repeat("x", 17<<10)
	cases := []struct {
		name, path, ctype, body string
		signer                  ed25519.PrivateKey
		signerPub               ed25519.PublicKey
		status                  int
		code                    string
	}{
		{"event not JSON", managed.EventsPath, "application/json", `kind=succeeded`, priv, pub, 422, "bad-event"},
		{"event truncated", managed.EventsPath, "application/json", `{"kind":"succ`, priv, pub, 422, "bad-event"},
		{"event unknown field", managed.EventsPath, "application/json", `{"kind":"succeeded","admin":true}`, priv, pub, 422, "bad-event"},
		{"event wrong type", managed.EventsPath, "application/json", `{"kind":"downloading","progress":"50"}`, priv, pub, 422, "bad-event"},
		{"event trailing data", managed.EventsPath, "application/json", `{"kind":"succeeded"}{"kind":"failed"}`, priv, pub, 422, "bad-event"},
		{"event text/plain", managed.EventsPath, "text/plain", `{"kind":"succeeded"}`, priv, pub, 415, "unsupported-media-type"},
		{"event no content type", managed.EventsPath, "", `{"kind":"succeeded"}`, priv, pub, 415, "unsupported-media-type"},
		{"event oversized", managed.EventsPath, "application/json", `{"kind":"failed","error_class":"hash","message":"` + big + `"}`, priv, pub, 413, devauth.CodeBodyTooLarge},
		{"enrol not JSON", managed.EnrollPath, "application/json", `product=thermostat`, newPriv, newPub, 400, "bad-request"},
		{"enrol unknown field", managed.EnrollPath, "application/json", enrol + `,"serial":"X1"}`, newPriv, newPub, 400, "bad-request"},
		{"enrol trailing data", managed.EnrollPath, "application/json", enrol + `} []`, newPriv, newPub, 400, "bad-request"},
		{"enrol bad key", managed.EnrollPath, "application/json", `{"product":"thermostat","public_key":"AAAA","token":"` + f.token + `"}`, newPriv, newPub, 400, "bad-request"},
		{"enrol form", managed.EnrollPath, "application/x-www-form-urlencoded", enrol + `}`, newPriv, newPub, 415, "unsupported-media-type"},
		{"enrol oversized", managed.EnrollPath, "application/json", enrol + `,"inventory":{"version":"` + big + `"}}`, newPriv, newPub, 413, "body-too-large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.rows()
			r := recordRaw(t, "POST", c.path, c.ctype, []byte(c.body), c.signerPub, c.signer, f.clk.Now())
			code, ctype, out := r.sendTo(t, f.url)
			if code != c.status || out["code"] != c.code || ctype != "application/problem+json" {
				t.Errorf("%d %s %v, want %d problem %s", code, ctype, out, c.status, c.code)
			}
			f.unchanged(c.name, before)
		})
	}
}

// TestNoClientAddressStored: after an enrolment, a state read, an event
// and a /repo/ request, sent from 127.0.0.1 and naming a client in
// X-Forwarded-For and Forwarded, no table holds either address, not even
// truncated.
func TestNoClientAddressStored(t *testing.T) {
	f := newFleet(t, 5)
	pub, priv := newKey(t)
	fwd := func(r recorded) recorded {
		r.header.Set("X-Forwarded-For", "203.0.113.77, 198.51.100.9")
		r.header.Set("Forwarded", "for=203.0.113.77")
		r.header.Set("X-Real-IP", "203.0.113.77")
		return r
	}
	now := f.clk.Now()
	if code, _, out := fwd(record(t, "POST", managed.EnrollPath, enrolBody("thermostat", pub, f.token, map[string]string{"version": "1.0.0"}), pub, priv, now)).sendTo(t, f.url); code != 201 {
		t.Fatalf("enrol: %d %v", code, out)
	} else if _, err := f.p.AcceptDevice(t.Context(), out["device_id"].(string)); err != nil {
		t.Fatal(err)
	}
	f.poll()
	for _, r := range []recorded{
		record(t, "GET", managed.StatePath, nil, pub, priv, now),
		record(t, "POST", managed.EventsPath, map[string]any{"kind": "succeeded", "version": "1.1.0"}, pub, priv, now),
		record(t, "GET", "/repo/fleet/timestamp.json", nil, pub, priv, now),
	} {
		if code, _, out := fwd(r).sendTo(t, f.url); code >= 300 {
			t.Fatalf("%s %s: %d %v", r.method, r.path, code, out)
		}
	}
	all := storetest.Dump(t, f.p.Store, filepath.Join(f.p.Dir, "uptrust.db"), "")
	if !strings.Contains(all, "succeeded") {
		t.Fatalf("the dump misses the event:\n%s", all)
	}
	for _, addr := range []string{"127.0.0", "203.0.113", "198.51.100", "::1"} {
		if strings.Contains(all, addr) {
			t.Errorf("the database holds %q:\n%s", addr, all)
		}
	}
}

// TestAcceptedReachesGateBeforePoll: a device the cache holds as pending
// and the operator accepted since is served at its next /repo/ request,
// without waiting for the handler's poll (its record is read again), and
// the state endpoint's answer updates the cache too.
func TestAcceptedReachesGateBeforePoll(t *testing.T) {
	f := newFleet(t, 5)
	for _, via := range []string{"repo", "state"} {
		t.Run(via, func(t *testing.T) {
			pub, priv, id := f.enrolled("1.0.0", false)
			if _, err := f.p.AcceptDevice(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			if via == "state" {
				if code, out := f.do("GET", managed.StatePath, nil, pub, priv); code != 200 || out["state"] != store.DeviceAccepted {
					t.Fatalf("state: %d %v", code, out)
				}
			}
			if code, _, out := record(t, "GET", "/repo/fleet/timestamp.json", nil, pub, priv, f.clk.Now()).sendTo(t, f.url); code != 200 {
				t.Errorf("/repo/ of the device accepted since its enrolment, before any poll: %d %v, want 200", code, out)
			}
		})
	}
}
