package project_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// wavesFleet is a managed thermostat with release 1.1.0 and an
// auto-accepting enrolment token.
type wavesFleet struct {
	t     *testing.T
	p     *project.Project
	clk   *clock.Fake
	token string
}

func newWavesFleet(t *testing.T, db string) *wavesFleet {
	clk := clock.NewFake(t0)
	p, _ := managedProject(t, db, clk)
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 2, "firmware 1.1.0"))
	return &wavesFleet{t: t, p: p, clk: clk, token: enrollToken(t, p, 1000, 0, true)}
}

func (f *wavesFleet) enroll(inv map[string]string) store.Device {
	f.t.Helper()
	d, err := f.p.Enroll(f.t.Context(), "thermostat", newKey(f.t), f.token)
	if err != nil {
		f.t.Fatal(err)
	}
	if inv != nil {
		if d, err = f.p.UpdateInventory(f.t.Context(), d.ID, inv); err != nil {
			f.t.Fatal(err)
		}
	}
	return d
}

func (f *wavesFleet) event(id, kind string) {
	f.t.Helper()
	e := store.DeviceEvent{Kind: kind, Version: "1.1.0"}
	if kind == store.EventSkipped {
		e.Reason = "postponed_by_owner"
	}
	if kind == store.EventFailed {
		e.ErrorClass = "health-check"
	}
	if _, err := f.p.AddDeviceEvent(f.t.Context(), id, e); err != nil {
		f.t.Fatal(err)
	}
}

func (f *wavesFleet) plan(waves, maxFailure string, minSuccess int, soak time.Duration) rollout.Plan {
	f.t.Helper()
	pl, err := rollout.ParsePlan(rollout.PlanFlags{Waves: waves, MaxFailure: maxFailure, MinSuccess: strconv.Itoa(minSuccess), Soak: soak.String()}, f.clk.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return pl
}

func (f *wavesFleet) assigned(d store.Device) (rollout.Assignment, bool) {
	f.t.Helper()
	d, err := f.p.Device(f.t.Context(), d.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	a, ok, err := f.p.AssignDevice(f.t.Context(), d)
	if err != nil {
		f.t.Fatal(err)
	}
	return a, ok
}

func (f *wavesFleet) tick() int {
	f.t.Helper()
	n, err := f.p.Tick(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *wavesFleet) state(id string) rollout.State {
	f.t.Helper()
	m, err := f.p.ManagedRollout(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return m.State
}

func (f *wavesFleet) decisions(action string) []store.AuditEntry {
	f.t.Helper()
	es, err := f.p.AuditQuery(f.t.Context(), store.AuditFilter{Action: action})
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

// enrollInWaves enrols devices until every wave of r has at least n; it
// returns them by wave (0-based). Enrolled after the rollout started, they
// join it: selection is evaluated per device, never snapshotted.
func (f *wavesFleet) enrollInWaves(r project.ManagedRollout, n int) [][]store.Device {
	f.t.Helper()
	by := make([][]store.Device, len(r.Plan.Waves))
	for tries := 0; tries < 500; tries++ {
		done := true
		for _, ds := range by {
			done = done && len(ds) >= n
		}
		if done {
			return by
		}
		d := f.enroll(map[string]string{"hardware": "rev-a", "version": "1.0.0"})
		k := r.Plan.WaveOf(rollout.WaveBucket(r.ID, d.ID))
		by[k] = append(by[k], d)
	}
	f.t.Fatal("could not fill the waves")
	return nil
}

// TestManagedRolloutWaves: a rollout starts in wave 1, offers the release
// to wave 1 only, advances after the soak and the successes (an owner's
// skip is no failure), admits a device that enrols late into its wave,
// halts by itself when a wave's failure ratio passes the threshold (with
// an audit entry naming wave, ratio and threshold), and follows pause,
// resume and abort.
func TestManagedRolloutWaves(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) { testManagedRolloutWaves(t, db) })
	}
}

func testManagedRolloutWaves(t *testing.T, db string) {
	ctx := t.Context()
	f := newWavesFleet(t, db)
	gen0, _ := f.p.Store.Generation(ctx)
	r, err := f.p.StartManagedRollout(ctx, "thermostat", "1.1.0", "hardware=rev-a", f.plan("20%,60%,100%", "25%", 3, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r.State.Phase != rollout.PhaseActive || r.State.Wave != 0 || r.Seq != 1 || !strings.HasPrefix(r.ID, "r") {
		t.Fatalf("started rollout %+v, want active in wave 1", r)
	}
	if g, _ := f.p.Store.Generation(ctx); g <= gen0 {
		t.Errorf("generation %d after the start, was %d", g, gen0)
	}
	by := f.enrollInWaves(r, 4)
	other := f.enroll(map[string]string{"hardware": "rev-b"}) // not selected
	if _, ok := f.assigned(other); ok {
		t.Error("a rev-b device is offered a rollout selecting rev-a")
	}
	for k, ds := range by {
		for _, d := range ds {
			a, ok := f.assigned(d)
			if ok != (k == 0) {
				t.Fatalf("device in wave %d: offered %v (%+v), want only wave 1", k+1, ok, a)
			}
			if ok && (a.RolloutID != r.ID || a.Version != "1.1.0" || a.Wave != 1 || !a.Start.Equal(t0)) {
				t.Errorf("assignment %+v", a)
			}
		}
	}
	st, err := f.p.RolloutStatus(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	members := 0
	for k, w := range st.Waves {
		members += w.Counts.Members
		if w.Counts.Members != len(by[k]) {
			t.Errorf("wave %d: %d members, want %d", k+1, w.Counts.Members, len(by[k]))
		}
	}
	if st.Waves[0].State != "active" || st.Waves[1].State != "pending" {
		t.Errorf("wave states %s, %s", st.Waves[0].State, st.Waves[1].State)
	}

	// Wave 1: half skip by their owners' choice (never a failure, and the
	// success gate shrinks to the devices not skipped), the rest succeed
	// (one after a failure: the latest outcome counts). Not soaked yet:
	// it stays.
	w1 := by[0]
	skips := (len(w1) + 1) / 2
	for _, d := range w1[:skips] {
		f.event(d.ID, store.EventSkipped)
	}
	f.event(w1[skips].ID, store.EventFailed)
	for _, d := range w1[skips:] {
		f.event(d.ID, store.EventSucceeded)
	}
	if n := f.tick(); n != 0 || f.state(r.ID).Wave != 0 {
		t.Fatalf("before the soak: %d steps, state %+v", n, f.state(r.ID))
	}
	f.clk.Advance(time.Hour)
	if n := f.tick(); n != 1 {
		t.Fatalf("after the soak: %d steps, want 1 (advance)", n)
	}
	if s := f.state(r.ID); s.Phase != rollout.PhaseActive || s.Wave != 1 || !s.Since.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after the soak: %+v, want wave 2 active since t0+1h", s)
	}
	if es := f.decisions(project.ActionWavesDecide); len(es) != 1 || !strings.Contains(es[0].Detail, "advance") {
		t.Errorf("decision audit entries %+v, want the advance", es)
	}
	if es := f.decisions(project.ActionWavesStart); len(es) != 1 || !strings.Contains(es[0].Detail, "wave 1 of 3 (20%) started") {
		t.Errorf("start audit entries %+v, want one saying wave 1 started", es)
	}
	for _, d := range by[1] {
		if a, ok := f.assigned(d); !ok || a.Wave != 2 {
			t.Errorf("wave 2 device after the advance: %+v, %v", a, ok)
		}
	}
	// A device that enrols now is placed by its bucket like everyone.
	late := f.enroll(map[string]string{"hardware": "rev-a"})
	k := r.Plan.WaveOf(rollout.WaveBucket(r.ID, late.ID))
	if a, ok := f.assigned(late); ok != (k <= 1) || ok && a.Wave != k+1 {
		t.Errorf("late device in wave %d: %+v, %v", k+1, a, ok)
	}

	// Wave 2: 2 of 4 finished fail: 50% > 25%: the whole rollout halts.
	w2 := by[1]
	f.event(w2[0].ID, store.EventFailed)
	f.event(w2[1].ID, store.EventRolledBack)
	f.event(w2[2].ID, store.EventSucceeded)
	f.event(w2[3].ID, store.EventSucceeded)
	if n := f.tick(); n != 1 {
		t.Fatalf("with 50%% failures: %d steps, want 1 (halt)", n)
	}
	s := f.state(r.ID)
	if s.Phase != rollout.PhaseHalted || !strings.Contains(s.Reason, "wave 2 of 3") {
		t.Fatalf("state %+v, want halted in wave 2", s)
	}
	es := f.decisions(project.ActionWavesDecide)
	last := es[len(es)-1]
	for _, want := range []string{"halt", "wave 2 of 3", "50.00%", "maximum 25%", "threshold 25%"} {
		if !strings.Contains(last.Detail, want) {
			t.Errorf("halt audit detail %q lacks %q", last.Detail, want)
		}
	}
	if _, ok := f.assigned(w1[skips]); ok {
		t.Error("a halted rollout still offers the release")
	}
	if n := f.tick(); n != 0 {
		t.Errorf("a halted rollout took %d more steps", n)
	}

	// Resume: the ratio is still too high, so the decision taken at once
	// halts it again. Pause an active rollout; abort ends it.
	if _, err := f.p.ResumeRollout(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if s := f.state(r.ID); s.Phase != rollout.PhaseActive {
		t.Errorf("resumed: %+v, want active", s)
	}
	if n := f.tick(); n != 1 || f.state(r.ID).Phase != rollout.PhaseHalted {
		t.Errorf("resumed with 50%% failures: %d steps, %+v; want halted again", n, f.state(r.ID))
	}
	f.event(w2[0].ID, store.EventSucceeded)
	f.event(w2[1].ID, store.EventSucceeded)
	if _, err := f.p.ResumeRollout(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if n := f.tick(); n != 0 {
		t.Errorf("resumed after retries succeeded: %d steps, want none (soaks again)", n)
	}
	if s := f.state(r.ID); s.Phase != rollout.PhaseActive || s.Wave != 1 {
		t.Fatalf("resumed after retries succeeded: %+v", s)
	}
	if _, err := f.p.PauseRollout(ctx, r.ID, "waiting for the field team"); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(2 * time.Hour)
	if n := f.tick(); n != 0 || f.state(r.ID).Phase != rollout.PhasePaused {
		t.Errorf("paused: %d steps, %+v", n, f.state(r.ID))
	}
	if _, ok := f.assigned(w1[skips]); ok {
		t.Error("a paused rollout offers the release")
	}
	if _, err := f.p.PauseRollout(ctx, r.ID, ""); !errors.Is(err, rollout.ErrTransition) {
		t.Errorf("pausing twice: %v, want ErrTransition", err)
	}
	if _, err := f.p.AbortRollout(ctx, r.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.ResumeRollout(ctx, r.ID); !errors.Is(err, rollout.ErrTransition) {
		t.Errorf("resuming an aborted rollout: %v", err)
	}
	for _, a := range []string{project.ActionWavesStart, project.ActionWavesPause, project.ActionWavesAbort} {
		if len(f.decisions(a)) != 1 {
			t.Errorf("%d audit entries %s, want 1", len(f.decisions(a)), a)
		}
	}
	if len(f.decisions(project.ActionWavesResume)) != 2 {
		t.Errorf("resume entries: %d", len(f.decisions(project.ActionWavesResume)))
	}
}

// TestManagedRolloutCompletesAndSupersedes: a newer rollout selecting a
// group owns its devices; the older keeps the rest; once complete, a
// rollout still assigns its release to the devices no rollout owns.
func TestManagedRolloutCompletesAndSupersedes(t *testing.T) {
	ctx := t.Context()
	f := newWavesFleet(t, "sqlite")
	addRelease(t, f.p, releaseSpec("thermostat", "1.2.0", 3, "firmware 1.2.0"))
	lab := f.enroll(nil)
	field := f.enroll(nil)
	if err := f.p.AddDeviceLabel(ctx, lab.ID, store.LabelGroup, "lab"); err != nil {
		t.Fatal(err)
	}
	old, err := f.p.StartManagedRollout(ctx, "thermostat", "1.1.0", "", f.plan("100%", "5%", 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// A zero soak and no success needed: the single wave passes at the
	// first decision.
	if n := f.tick(); n != 1 {
		t.Fatalf("%d steps, want 1", n)
	}
	old, _ = f.p.ManagedRollout(ctx, old.ID)
	if old.State.Phase != rollout.PhaseComplete {
		t.Fatalf("old rollout %+v, want complete", old.State)
	}
	if a, ok := f.assigned(field); !ok || a.RolloutID != old.ID {
		t.Errorf("field device: %+v, %v; want the completed rollout", a, ok)
	}
	pl := f.plan("100%", "5%", 1, time.Hour)
	w, err := rollout.ParseWindow("Mon-Fri 02:00-04:00 Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	pl.Window = &w
	newer, err := f.p.StartManagedRollout(ctx, "thermostat", "1.2.0", "group=lab", pl)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := f.assigned(lab); !ok || a.RolloutID != newer.ID || a.Version != "1.2.0" || a.Window != "Mon-Fri 02:00-04:00 Europe/Berlin" {
		t.Errorf("lab device: %+v, %v; want the newer rollout with its window", a, ok)
	}
	if a, ok := f.assigned(field); !ok || a.Version != "1.1.0" {
		t.Errorf("field device: %+v, %v; want 1.1.0 still", a, ok)
	}
	// Paused, the newer rollout still owns the lab device: it waits.
	if _, err := f.p.PauseRollout(ctx, newer.ID, ""); err != nil {
		t.Fatal(err)
	}
	if a, ok := f.assigned(lab); ok {
		t.Errorf("lab device under a paused rollout: %+v", a)
	}
	// Aborted, it owns nothing: the completed rollout assigns again.
	if _, err := f.p.AbortRollout(ctx, newer.ID, ""); err != nil {
		t.Fatal(err)
	}
	if a, ok := f.assigned(lab); !ok || a.Version != "1.1.0" {
		t.Errorf("lab device after the abort: %+v, %v; want 1.1.0", a, ok)
	}
	// Removing the label bumps the generation; an unknown label is refused.
	if err := f.p.RemoveDeviceLabel(ctx, lab.ID, store.LabelGroup, "lab"); err != nil {
		t.Fatal(err)
	}
	if err := f.p.RemoveDeviceLabel(ctx, lab.ID, store.LabelGroup, "lab"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removing an absent label: %v", err)
	}
}

// TestManagedRolloutRefusals: each bad input is refused with an error
// naming it, and nothing is written (no rollout, no audit entry).
func TestManagedRolloutRefusals(t *testing.T) {
	ctx := t.Context()
	f := newWavesFleet(t, "sqlite")
	d := f.enroll(nil)
	if err := f.p.AddDeviceLabel(ctx, d.ID, store.LabelTag, "eu"); err != nil {
		t.Fatal(err)
	}
	addProduct(t, f.p, project.ProductSpec{Name: "lamp", Hardware: []string{"v1"}, SupportUntil: "2030-01-01"})
	addRelease(t, f.p, releaseSpec("lamp", "1.0.0", 1, "lamp"))
	good := f.plan("10%,100%", "5%", 1, time.Hour)
	before := len(f.decisions(""))
	for _, c := range []struct {
		name, product, version, filter string
		plan                           rollout.Plan
		want                           string
		is                             error
	}{
		{"anonymous product", "lamp", "1.0.0", "", good, "not in managed mode", project.ErrNotManaged},
		{"unknown product", "toaster", "1.0.0", "", good, "toaster", nil},
		{"unpublished version", "thermostat", "9.9.9", "", good, "release 9.9.9 is not published", store.ErrNotFound},
		{"bad filter", "thermostat", "1.1.0", "colour=red", good, `unknown key "colour"`, project.ErrInvalid},
		{"unknown group", "thermostat", "1.1.0", "group=lab", good, `unknown group "lab"`, project.ErrInvalid},
		{"unknown tag", "thermostat", "1.1.0", "tag=us", good, `unknown tag "us"`, project.ErrInvalid},
		{"undeclared field", "thermostat", "1.1.0", "inventory.os_version=2", good, `"os_version" is not declared`, project.ErrInvalid},
		{"bad waves", "thermostat", "1.1.0", "", rollout.Plan{Waves: []int{5000}, Start: t0}, "must be 100%", project.ErrInvalid},
	} {
		_, err := f.p.StartManagedRollout(ctx, c.product, c.version, c.filter, c.plan)
		if err == nil || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: %v, want an error with %q (%v)", c.name, err, c.want, c.is)
		}
	}
	// The percent rollout of anonymous products is refused for a managed
	// one, naming the wave flags; nothing is written.
	if _, err := f.p.StartRollout(ctx, "thermostat", "1.1.0", 10); !errors.Is(err, project.ErrManaged) || !strings.Contains(err.Error(), "--waves") {
		t.Errorf("percent rollout of a managed product: %v, want ErrManaged naming --waves", err)
	}
	if ro, err := f.p.Store.Rollout(ctx, "thermostat"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("percent rollout stored after its refusal: %+v, %v", ro, err)
	}
	if rs, err := f.p.ManagedRollouts(ctx, ""); err != nil || len(rs) != 0 {
		t.Errorf("rollouts after refusals: %+v, %v", rs, err)
	}
	if n := len(f.decisions("")); n != before {
		t.Errorf("%d audit entries after refusals, were %d", n, before)
	}
	for _, c := range []struct{ kind, name, want string }{
		{"colour", "red", "unknown label kind"},
		{store.LabelGroup, "Lab Bench", "invalid group"},
	} {
		if err := f.p.AddDeviceLabel(ctx, d.ID, c.kind, c.name); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddDeviceLabel(%s %q): %v, want %q", c.kind, c.name, err, c.want)
		}
	}
	// The anonymous product keeps its percent rollout.
	if _, err := f.p.StartRollout(ctx, "lamp", "1.0.0", 10); err != nil {
		t.Errorf("percent rollout of an anonymous product: %v", err)
	}
	if err := f.p.AddDeviceLabel(ctx, "dnope", store.LabelGroup, "lab"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("label of an unknown device: %v", err)
	}
	if _, err := f.p.PauseRollout(ctx, "rnope", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pause of an unknown rollout: %v", err)
	}
}

// TestResignDueDecides: `uptrust serve` runs the decision loop through
// ResignDue, under the re-signing lease: a rollout scheduled for later
// starts on the first call after its start time, and nothing is offered
// before.
func TestResignDueDecides(t *testing.T) {
	ctx := t.Context()
	f := newWavesFleet(t, "sqlite")
	d := f.enroll(nil)
	pl, err := rollout.ParsePlan(rollout.PlanFlags{Waves: "100%", MaxFailure: "5%", MinSuccess: "1", Soak: "0s",
		Start: t0.Add(time.Hour).Format(time.RFC3339)}, f.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.p.StartManagedRollout(ctx, "thermostat", "1.1.0", "", pl)
	if err != nil {
		t.Fatal(err)
	}
	if r.State.Phase != rollout.PhaseScheduled {
		t.Fatalf("state %+v, want scheduled", r.State)
	}
	if _, err := f.p.ResignDue(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.assigned(d); ok || f.state(r.ID).Phase != rollout.PhaseScheduled {
		t.Fatalf("before its start: offered %v, state %+v", ok, f.state(r.ID))
	}
	f.clk.Advance(time.Hour)
	changed, err := f.p.ResignDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.state(r.ID); !changed || s.Phase != rollout.PhaseActive || !s.Since.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after its start: changed %v, state %+v; want active since the start", changed, s)
	}
	if a, ok := f.assigned(d); !ok || a.Wave != 1 {
		t.Errorf("after the start: %+v, %v", a, ok)
	}
	// Another process without the lease decides nothing.
	other, err := project.Open(ctx, f.p.Dir, project.Options{Clock: f.clk})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	f.event(d.ID, store.EventSucceeded)
	if n, err := other.Tick(ctx); err != nil || n != 0 {
		t.Errorf("Tick without the lease: %d steps, %v", n, err)
	}
	if n := f.tick(); n != 1 || f.state(r.ID).Phase != rollout.PhaseComplete {
		t.Errorf("Tick with the lease: %d steps, state %+v; want complete", n, f.state(r.ID))
	}
}
