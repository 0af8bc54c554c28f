package managed_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/director"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/server"
	"github.com/uptrust/uptrust/internal/store"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

const fleetMeta = "/repo/fleet/metadata/"

// viewWorld is a managed product with release 1.1.0 offered to all by a
// managed rollout of one wave, the real server with the managed handler
// (whose default assigner is project.AssignDevice), and a fake clock.
type viewWorld struct {
	t   testing.TB
	p   *project.Project
	clk *clock.Fake
	h   *managed.Handler
	srv *server.Server
	tok string
	// rollout is the ID of the managed rollout offering 1.1.0.
	rollout string
}

type dev struct {
	id   string
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newViewWorld(t testing.TB) *viewWorld {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(t0)
	p, err := project.Init(ctx, t.TempDir(), project.InitOptions{Dev: true, Options: project.Options{Clock: clk}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.AddProduct(ctx, project.ProductSpec{Name: "thermostat", Hardware: []string{"rev-a"}, SupportUntil: t0.AddDate(2, 0, 0).Format(time.DateOnly)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetProductMode(ctx, "thermostat", store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: "thermostat", Version: v, Payload: bytes.NewReader([]byte("image " + v)),
			Kind: release.KindSecurity, SecurityVersion: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := p.StartManagedRollout(ctx, "thermostat", "1.1.0", "", wavePlan(t, "100%", clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: "thermostat", Uses: 100})
	if err != nil {
		t.Fatal(err)
	}
	h := managed.New(p)
	srv, err := server.New(server.Config{Source: p, Devices: h, Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w := &viewWorld{t: t, p: p, clk: clk, h: h, srv: srv, tok: tok.Text, rollout: ro.ID}
	w.poll()
	return w
}

// wavePlan is a plan of the cumulative waves (such as "50%,100%") that
// starts at now and waits an hour and 1000 successes per wave.
func wavePlan(t testing.TB, waves string, now time.Time) rollout.Plan {
	t.Helper()
	pl, err := rollout.ParsePlan(rollout.PlanFlags{Waves: waves, MaxFailure: "5%", MinSuccess: "1000", Soak: "1h"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// poll is what the server's poll loop does every 2 s.
func (w *viewWorld) poll() {
	w.t.Helper()
	if err := w.srv.Reload(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	if err := w.h.Poll(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

// enrol enrols a device (pending) and accepts it when accept is set.
func (w *viewWorld) enrol(accept bool) dev {
	w.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	d, err := w.p.Enroll(context.Background(), "thermostat", pub, w.tok)
	if err != nil {
		w.t.Fatal(err)
	}
	if accept {
		w.clk.Advance(time.Second)
		if _, err := w.p.AcceptDevice(context.Background(), d.ID); err != nil {
			w.t.Fatal(err)
		}
	}
	return dev{id: d.ID, pub: pub, priv: priv}
}

// get sends GET path signed by d (unsigned when d is nil) straight to the
// server's handler.
func (w *viewWorld) get(d *dev, path string, hdr ...string) *httptest.ResponseRecorder {
	w.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://u.example"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if d != nil {
		if err := devauth.Sign(req, devauth.KeyID(d.pub), d.priv, w.clk.Now(), devauth.NewNonce()); err != nil {
			w.t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	w.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// view fetches d's timestamp, snapshot and targets and checks them as
// go-tuf's client does with the fleet root at the fake clock's time,
// after the timestamp the device trusted before (prior, when given: the
// rollback checks), and returns the trusted metadata.
func (w *viewWorld) view(d *dev, prior *trustedmetadata.TrustedMetadata) (*trustedmetadata.TrustedMetadata, error) {
	w.t.Helper()
	root, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, "fleet"))
	if err != nil {
		w.t.Fatal(err)
	}
	trusted, err := trustedmetadata.New(root)
	if err != nil {
		w.t.Fatal(err)
	}
	trusted.RefTime = w.clk.Now()
	if prior != nil {
		old, err := prior.Timestamp.ToBytes(false)
		if err != nil {
			w.t.Fatal(err)
		}
		// go-tuf keeps an expired local timestamp for its rollback checks
		// (it stores it, then says it expired).
		if _, err := trusted.UpdateTimestamp(old); err != nil && !errors.As(err, new(*metadata.ErrExpiredMetadata)) {
			w.t.Fatalf("the prior timestamp: %v", err)
		}
	}
	fetch := func(path string) []byte {
		rec := w.get(d, path)
		if rec.Code != 200 {
			w.t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	ts, err := trusted.UpdateTimestamp(fetch(fleetMeta + "timestamp.json"))
	if err != nil {
		return trusted, fmt.Errorf("timestamp: %w", err)
	}
	sv := ts.Signed.Meta["snapshot.json"].Version
	snap, err := trusted.UpdateSnapshot(fetch(fmt.Sprintf("%s%d.snapshot.json", fleetMeta, sv)), false)
	if err != nil {
		return trusted, fmt.Errorf("snapshot: %w", err)
	}
	tv := snap.Signed.Meta["targets.json"].Version
	if _, err := trusted.UpdateDelegatedTargets(fetch(fmt.Sprintf("%s%d.targets.json", fleetMeta, tv)), metadata.TARGETS, metadata.ROOT); err != nil {
		return trusted, fmt.Errorf("targets: %w", err)
	}
	return trusted, nil
}

func targetsOf(tm *trustedmetadata.TrustedMetadata) map[string]*metadata.TargetFiles {
	return tm.Targets[metadata.TARGETS].Signed.Targets
}

func TestOwnView(t *testing.T) {
	w := newViewWorld(t)
	a := w.enrol(true)
	w.poll()
	tm, err := w.view(&a, nil)
	if err != nil {
		t.Fatalf("go-tuf refuses the device's view: %v", err)
	}
	got := targetsOf(tm)
	tf, ok := got["thermostat/1.1.0"]
	if !ok || len(got) != 1 {
		t.Fatalf("targets %v, want thermostat/1.1.0 alone", got)
	}
	var c rollout.Custom
	if err := json.Unmarshal(*tf.Custom, &c); err != nil {
		t.Fatal(err)
	}
	if c.Uptrust.Rollout == nil || c.Uptrust.Rollout.Percent != 100 || c.Uptrust.Managed == nil || c.Uptrust.Managed.Rollout != w.rollout || c.Uptrust.Managed.Wave != 1 {
		t.Errorf("custom %s", *tf.Custom)
	}
	// Same length and hashes as the release repository.
	rel, err := w.p.Store.Release(t.Context(), "thermostat", "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if tf.Length != rel.Length || hex.EncodeToString(tf.Hashes["sha256"]) != rel.SHA256 {
		t.Errorf("target %d %x, release %d %s", tf.Length, []byte(tf.Hashes["sha256"]), rel.Length, rel.SHA256)
	}
	// Unsigned requests keep the shared view; the release repository and
	// the fleet root stay shared for signed ones too.
	own := w.get(&a, fleetMeta+"timestamp.json")
	shared := w.get(nil, fleetMeta+"timestamp.json")
	if shared.Code != 200 || bytes.Equal(shared.Body.Bytes(), own.Body.Bytes()) {
		t.Errorf("unsigned timestamp: %d, same as the device's: %v", shared.Code, bytes.Equal(shared.Body.Bytes(), own.Body.Bytes()))
	}
	if cc := own.Header().Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("Cache-Control of a device's view %q, want private", cc)
	}
	for _, p := range []string{"/repo/release/metadata/timestamp.json", fleetMeta + "root.json"} {
		s, u := w.get(&a, p), w.get(nil, p)
		if s.Code != 200 || !bytes.Equal(s.Body.Bytes(), u.Body.Bytes()) {
			t.Errorf("%s: signed %d differs from unsigned %d", p, s.Code, u.Code)
		}
	}
	// The shared view's versioned documents are not the device's.
	var sts metadata.Metadata[metadata.TimestampType]
	if err := json.Unmarshal(shared.Body.Bytes(), &sts); err != nil {
		t.Fatal(err)
	}
	if rec := w.get(&a, fmt.Sprintf("%s%d.snapshot.json", fleetMeta, sts.Signed.Meta["snapshot.json"].Version)); rec.Code != 404 {
		t.Errorf("the shared snapshot through a device's key: %d, want 404", rec.Code)
	}
	// A paused rollout: the device is offered nothing, once polled.
	if _, err := w.p.PauseRollout(t.Context(), w.rollout, "test"); err != nil {
		t.Fatal(err)
	}
	w.poll()
	tm, err = w.view(&a, tm)
	if err != nil {
		t.Fatalf("the view after halting, after the earlier one: %v", err)
	}
	if got := targetsOf(tm); len(got) != 0 {
		t.Errorf("targets under a paused rollout: %v", got)
	}
}

// Device A only ever gets A's view: the key that signed chooses it, not
// the path or a parameter.
func TestViewIsTheSigners(t *testing.T) {
	w := newViewWorld(t)
	// A newer rollout owns every device; its first wave is half of them.
	ro, err := w.p.StartManagedRollout(t.Context(), "thermostat", "1.1.0", "", wavePlan(t, "50%,100%", w.clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	// One device in the first wave and one out.
	var in, out *dev
	for i := 0; i < 40 && (in == nil || out == nil); i++ {
		d := w.enrol(true)
		if ro.Plan.WaveOf(rollout.WaveBucket(ro.ID, d.id)) == 0 {
			in = &d
		} else {
			out = &d
		}
	}
	if in == nil || out == nil {
		t.Fatal("40 devices all on one side of 50 %")
	}
	w.poll()
	tmIn, err := w.view(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmOut, err := w.view(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(targetsOf(tmIn)) != 1 || len(targetsOf(tmOut)) != 0 {
		t.Fatalf("selected device sees %v, unselected %v", targetsOf(tmIn), targetsOf(tmOut))
	}
	inTargets := fmt.Sprintf("%s%d.targets.json", fleetMeta, tmIn.Targets[metadata.TARGETS].Signed.Version)
	if tmIn.Targets[metadata.TARGETS].Signed.Version == tmOut.Targets[metadata.TARGETS].Signed.Version {
		t.Fatal("both views have one version; the test needs them apart")
	}
	// The other device's path, with or without a parameter naming it.
	for _, p := range []string{inTargets, inTargets + "?device=" + in.id} {
		if rec := w.get(out, p); rec.Code != 404 {
			t.Errorf("device out asks %s: %d, want 404", p, rec.Code)
		}
	}
	if rec := w.get(out, fleetMeta+"timestamp.json?device="+in.id); rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), w.get(out, fleetMeta+"timestamp.json").Body.Bytes()) {
		t.Errorf("a parameter changed the view: %d", rec.Code)
	}
	// Signed by out's key while claiming in's keyid: refused.
	req := httptest.NewRequest(http.MethodGet, "http://u.example"+inTargets, nil)
	if err := devauth.Sign(req, devauth.KeyID(in.pub), out.priv, w.clk.Now(), devauth.NewNonce()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	w.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("out's signature under in's keyid: %d, want 401", rec.Code)
	}
}

// Pending, rejected and decommissioned devices get refusals; a change of
// state reaches the cache at the next poll.
func TestViewRefusals(t *testing.T) {
	w := newViewWorld(t)
	pending := w.enrol(false)
	rejected := w.enrol(false)
	gone := w.enrol(true)
	if _, err := w.p.RejectDevice(t.Context(), rejected.id); err != nil {
		t.Fatal(err)
	}
	w.poll()
	code := func(d dev) (int, string) {
		rec := w.get(&d, fleetMeta+"timestamp.json")
		var p struct{ Code string }
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		return rec.Code, p.Code
	}
	for _, c := range []struct {
		d    dev
		code string
	}{{pending, "pending"}, {rejected, "rejected"}} {
		if st, pc := code(c.d); st != 403 || pc != c.code {
			t.Errorf("%s device: %d %s", c.code, st, pc)
		}
	}
	if st, _ := code(gone); st != 200 {
		t.Fatalf("accepted device: %d", st)
	}
	w.clk.Advance(time.Second)
	if _, err := w.p.DecommissionDevice(t.Context(), gone.id); err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(time.Second)
	if _, err := w.p.AcceptDevice(t.Context(), pending.id); err != nil {
		t.Fatal(err)
	}
	// Until the poll the cache answers as before; after it, the new state.
	if st, _ := code(gone); st != 200 {
		t.Errorf("before the poll: %d", st)
	}
	w.poll()
	if st, pc := code(gone); st != 403 || pc != "decommissioned" {
		t.Errorf("decommissioned device after the poll: %d %s", st, pc)
	}
	if _, err := w.view(&pending, nil); err != nil {
		t.Errorf("the device accepted since: %v", err)
	}
	// A key nobody enrolled.
	pub, priv, _ := ed25519.GenerateKey(nil)
	if st, _ := code(dev{pub: pub, priv: priv}); st != 401 {
		t.Errorf("unknown key: %d, want 401", st)
	}
	// An erased device is forgotten at the next full reload (a
	// generation change forces one).
	if err := w.p.EraseDevice(t.Context(), pending.id); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.PauseRollout(t.Context(), w.rollout, "a new generation"); err != nil {
		t.Fatal(err)
	}
	w.poll()
	if st, _ := code(pending); st != 401 {
		t.Errorf("erased device: %d, want 401", st)
	}
}

// noStore is a store that must not be used: every method panics.
type noStore struct{ store.Store }

// An unchanged device's check is answered from memory: with the store
// replaced by one that panics on any call, the device still gets its
// timestamp (200), a 304 for If-None-Match, and its snapshot and targets.
func TestViewWithoutStore(t *testing.T) {
	w := newViewWorld(t)
	a := w.enrol(true)
	w.poll()
	if _, err := w.view(&a, nil); err != nil {
		t.Fatal(err)
	}
	first := w.get(&a, fleetMeta+"timestamp.json")
	etag := first.Header().Get("ETag")
	var ts metadata.Metadata[metadata.TimestampType]
	if err := json.Unmarshal(first.Body.Bytes(), &ts); err != nil {
		t.Fatal(err)
	}
	real := w.p.Store
	w.p.Store = noStore{}
	defer func() { w.p.Store = real }()
	try := func(name string, f func() *httptest.ResponseRecorder) (rec *httptest.ResponseRecorder) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s touched the store: %v", name, r)
			}
		}()
		return f()
	}
	if rec := try("304", func() *httptest.ResponseRecorder {
		return w.get(&a, fleetMeta+"timestamp.json", "If-None-Match", etag)
	}); rec.Code != 304 || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
		t.Errorf("If-None-Match: %d, %d bytes, ETag %q", rec.Code, rec.Body.Len(), rec.Header().Get("ETag"))
	}
	if rec := try("200", func() *httptest.ResponseRecorder { return w.get(&a, fleetMeta+"timestamp.json") }); rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), first.Body.Bytes()) {
		t.Errorf("GET without a validator: %d", rec.Code)
	}
	v := ts.Signed.Meta["snapshot.json"].Version
	for _, p := range []string{fmt.Sprintf("%d.snapshot.json", v), fmt.Sprintf("%d.targets.json", v)} {
		if rec := try(p, func() *httptest.ResponseRecorder { return w.get(&a, fleetMeta+p) }); rec.Code != 200 {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
	// The test can fail: a poll does use the store.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a poll with the panicking store did not panic: the check above proves nothing")
			}
		}()
		_ = w.h.Poll(t.Context())
	}()
}

// A device offline for 31 days comes back to a fresh view (the server
// re-signed meanwhile), which its TUF client accepts after the old one.
func TestViewAfterAMonthOffline(t *testing.T) {
	w := newViewWorld(t)
	a := w.enrol(true)
	w.poll()
	tm, err := w.view(&a, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := tm.Timestamp.Signed.Version
	w.clk.Advance(31 * 24 * time.Hour)
	if _, err := w.view(&a, nil); err == nil {
		t.Fatal("the month-old view is not expired: the test proves nothing")
	}
	// The server's resign loop and poll.
	if changed, err := w.p.ResignDue(t.Context()); err != nil || !changed {
		t.Fatalf("ResignDue: %v, %v", changed, err)
	}
	w.poll()
	// After the timestamp the device trusted before the month.
	tm, err = w.view(&a, tm)
	if err != nil {
		t.Fatalf("the view after a month: %v", err)
	}
	if v := tm.Timestamp.Signed.Version; v <= old {
		t.Errorf("version %d after a month, was %d", v, old)
	}
	if !tm.Timestamp.Signed.Expires.After(w.clk.Now()) {
		t.Errorf("timestamp expires %v, now %v", tm.Timestamp.Signed.Expires, w.clk.Now())
	}
	if len(targetsOf(tm)) != 1 {
		t.Errorf("targets %v", targetsOf(tm))
	}
}

// BenchmarkView304 is an unchanged device's check with a validator:
// signature verification, the cache, the 304.
func BenchmarkView304(b *testing.B) {
	w := newViewWorld(b)
	a := w.enrol(true)
	w.poll()
	etag := w.get(&a, fleetMeta+"timestamp.json").Header().Get("ETag")
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "http://u.example"+fleetMeta+"timestamp.json", nil)
		reqs[i].Header.Set("If-None-Match", etag)
		if err := devauth.Sign(reqs[i], devauth.KeyID(a.pub), a.priv, w.clk.Now(), devauth.NewNonce()); err != nil {
			b.Fatal(err)
		}
	}
	h := w.srv.Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, reqs[i])
		if rec.Code != 304 {
			b.Fatalf("%d", rec.Code)
		}
	}
}

// BenchmarkViewRecompute is a device's first check after a change: the
// view computed and signed (the assignment, three signatures), then
// served.
func BenchmarkViewRecompute(b *testing.B) {
	w := newViewWorld(b)
	a := w.enrol(true)
	w.poll()
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "http://u.example"+fleetMeta+"timestamp.json", nil)
		if err := devauth.Sign(reqs[i], devauth.KeyID(a.pub), a.priv, w.clk.Now(), devauth.NewNonce()); err != nil {
			b.Fatal(err)
		}
	}
	h := w.srv.Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		managed.ForgetViews(w.h)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, reqs[i])
		if rec.Code != 200 {
			b.Fatalf("%d", rec.Code)
		}
	}
}

// A view is computed again when the generation or the device's record
// changed, and only then: an Assigner that counts its calls.
func TestViewRecomputedOnlyOnChange(t *testing.T) {
	w := newViewWorld(t)
	calls := 0
	w.h.SetAssigner(director.AssignerFunc(func(_ context.Context, d store.Device) (rollout.Assignment, bool, error) {
		calls++
		return rollout.Assignment{RolloutID: "r-7", Version: "1.1.0", Wave: 3, Start: t0, Window: "Mon-Fri 02:00-04:00 UTC"}, true, nil
	}))
	a := w.enrol(true)
	// A new generation, so that the assigner set above takes over.
	if _, err := w.p.PauseRollout(t.Context(), w.rollout, "a new generation"); err != nil {
		t.Fatal(err)
	}
	w.poll()
	tm, err := w.view(&a, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c rollout.Custom
	if err := json.Unmarshal(*targetsOf(tm)["thermostat/1.1.0"].Custom, &c); err != nil {
		t.Fatal(err)
	}
	if c.Uptrust.Managed == nil || c.Uptrust.Managed.Rollout != "r-7" || c.Uptrust.Managed.Wave != 3 || c.Uptrust.Managed.Window != "Mon-Fri 02:00-04:00 UTC" {
		t.Errorf("the assigner's assignment is not in the view: %s", *targetsOf(tm)["thermostat/1.1.0"].Custom)
	}
	if calls != 1 {
		t.Fatalf("%d assignments for the first view, want 1", calls)
	}
	for range 5 {
		w.get(&a, fleetMeta+"timestamp.json")
	}
	w.poll()
	w.get(&a, fleetMeta+"timestamp.json")
	if calls != 1 {
		t.Errorf("%d assignments with nothing changed, want 1", calls)
	}
	// The device's record changes (its inventory).
	w.clk.Advance(time.Second)
	if _, err := w.p.UpdateInventory(t.Context(), a.id, nil); err != nil {
		t.Fatal(err)
	}
	w.poll()
	w.get(&a, fleetMeta+"timestamp.json")
	w.get(&a, fleetMeta+"timestamp.json")
	if calls != 2 {
		t.Errorf("%d assignments after the device changed, want 2", calls)
	}
	// The generation changes.
	if _, err := w.p.ResumeRollout(t.Context(), w.rollout); err != nil {
		t.Fatal(err)
	}
	w.poll()
	w.get(&a, fleetMeta+"timestamp.json")
	if calls != 3 {
		t.Errorf("%d assignments after the generation changed, want 3", calls)
	}
}

// pollWorld is a view world with n accepted devices written in one
// transaction, polled once.
func pollWorld(b *testing.B, n int) *viewWorld {
	w := newViewWorld(b)
	ctx := context.Background()
	err := w.p.Store.UpdateFleet(ctx, func(tx store.Tx) error {
		for i := range n {
			pub, _, _ := ed25519.GenerateKey(nil)
			if err := tx.AddDevice(ctx, store.Device{ID: fmt.Sprintf("d-%06d", i), Product: "thermostat", PublicKey: project.EncodePublicKey(pub),
				State: store.DeviceAccepted, Enrolled: t0, Updated: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	w.clk.Advance(time.Hour) // the devices' changes are older than the poll margin
	managed.ForceFullReload(w.h)
	w.poll()
	return w
}

// BenchmarkPollUnchanged is the steady-state poll of 10,000 devices on
// SQLite: the generation and the devices changed since the last poll
// (none).
func BenchmarkPollUnchanged(b *testing.B) {
	w := pollWorld(b, 10_000)
	for b.Loop() {
		if err := w.h.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollFull reads 10,000 devices again (after a generation change
// and every minute).
func BenchmarkPollFull(b *testing.B) {
	w := pollWorld(b, 10_000)
	for b.Loop() {
		managed.ForceFullReload(w.h)
		if err := w.h.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// Two servers on one database (replicas) each keep their own cache: both
// serve a device the same bytes (the view is a pure function of the
// database), and a decommissioning reaches each at its next poll.
func TestViewReplicas(t *testing.T) {
	w := newViewWorld(t)
	a := w.enrol(true)
	h2 := managed.New(w.p)
	srv2, err := server.New(server.Config{Source: w.p, Devices: h2, Clock: w.clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w2 := &viewWorld{t: t, p: w.p, clk: w.clk, h: h2, srv: srv2}
	w.poll()
	w2.poll()
	one, two := w.get(&a, fleetMeta+"timestamp.json"), w2.get(&a, fleetMeta+"timestamp.json")
	if one.Code != 200 || two.Code != 200 || !bytes.Equal(one.Body.Bytes(), two.Body.Bytes()) || one.Header().Get("ETag") != two.Header().Get("ETag") {
		t.Errorf("replicas answer %d and %d, same bytes %v", one.Code, two.Code, bytes.Equal(one.Body.Bytes(), two.Body.Bytes()))
	}
	if rec := w2.get(&a, fleetMeta+"timestamp.json", "If-None-Match", one.Header().Get("ETag")); rec.Code != 304 {
		t.Errorf("the other replica's ETag: %d, want 304", rec.Code)
	}
	w.clk.Advance(time.Second)
	if _, err := w.p.DecommissionDevice(t.Context(), a.id); err != nil {
		t.Fatal(err)
	}
	for i, r := range []*viewWorld{w, w2} {
		r.poll()
		if rec := r.get(&a, fleetMeta+"timestamp.json"); rec.Code != 403 {
			t.Errorf("replica %d after its poll: %d, want 403", i+1, rec.Code)
		}
	}
}

// Requests the view does not serve are refused without effect.
func TestViewBadRequests(t *testing.T) {
	w := newViewWorld(t)
	a := w.enrol(true)
	w.poll()
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, fleetMeta + "timestamp.json", 405},
		{http.MethodDelete, fleetMeta + "1.targets.json", 405},
		{http.MethodGet, fleetMeta + "x.targets.json", 404},
		{http.MethodGet, fleetMeta + "targets.json", 404},
		{http.MethodGet, fleetMeta + "99999999999999999999999.snapshot.json", 404},
		{http.MethodGet, fleetMeta + "-1.snapshot.json", 404},
	} {
		req := httptest.NewRequest(c.method, "http://u.example"+c.path, nil)
		if err := devauth.Sign(req, devauth.KeyID(a.pub), a.priv, w.clk.Now(), devauth.NewNonce()); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		w.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.status)
		}
	}
	if _, err := w.view(&a, nil); err != nil {
		t.Errorf("the view after the bad requests: %v", err)
	}
}
