package rollout

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// testPlan: 4 waves 1%,10%,50%,100%, max failure 5 %, 20 successes, soak 1h,
// starting at t0.
func testPlan() Plan {
	return Plan{Waves: []int{100, 1000, 5000, 10000}, MaxFailure: 500, MinSuccess: 20, Soak: time.Hour, Start: t0}
}

func counts(n int) []Counts { return make([]Counts, n) }

func decide(t *testing.T, p Plan, st State, c []Counts, now time.Time) (State, Step) {
	t.Helper()
	next, step, err := Decide(p, st, c, now)
	if err != nil {
		t.Fatalf("Decide(%+v, %+v, %+v, %v): %v", p, st, c, now, err)
	}
	// Idempotence: the same inputs give the same outputs.
	next2, step2, err := Decide(p, st, c, now)
	if err != nil || !reflect.DeepEqual(next, next2) || step != step2 {
		t.Fatalf("Decide not deterministic: %+v %+v then %+v %+v %v", next, step, next2, step2, err)
	}
	if step.Action == ActionStay && !reflect.DeepEqual(next, st) {
		t.Fatalf("stay changed the state: %+v -> %+v", st, next)
	}
	if step.Changed() == (step.Action == ActionStay) {
		t.Fatalf("Changed() = %v for %s", step.Changed(), step.Action)
	}
	return next, step
}

func wantStep(t *testing.T, step Step, action Action, wave int, reason ...string) {
	t.Helper()
	if step.Action != action || step.Wave != wave {
		t.Fatalf("step = %+v; want %s of wave index %d", step, action, wave)
	}
	for _, r := range reason {
		if !strings.Contains(step.Reason, r) {
			t.Fatalf("reason %q does not contain %q", step.Reason, r)
		}
	}
}

// A whole rollout driven by a fake clock: nothing before the start, each
// wave waits for its successes and its soak, the last completes.
func TestDecideWholeRollout(t *testing.T) {
	clk := clock.NewFake(t0.Add(-time.Hour))
	p := testPlan()
	c := counts(4)
	st := NewState()

	st, step := decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 0, "starts at 2026-12-07T12:00:00Z")
	if st.Phase != PhaseScheduled {
		t.Fatalf("phase %s before the start", st.Phase)
	}

	// The server was down at the start time: the soak still counts from it.
	clk.Set(t0.Add(10 * time.Minute))
	st, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStart, 0, "wave 1 of 4 (1%) started")
	if st != (State{Phase: PhaseActive, Wave: 0, Since: t0}) {
		t.Fatalf("state after start %+v", st)
	}

	// Enough successes but not soaked.
	c[0] = Counts{Members: 100, Offered: 70, Succeeded: 30}
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 0, "soaks until 2026-12-07T13:00:00Z")
	// Soaked but not enough successes.
	clk.Set(t0.Add(time.Hour))
	c[0] = Counts{Members: 100, Offered: 90, Succeeded: 19, Skipped: 50}
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 0, "19 of 20 successes")
	if strings.Contains(step.Reason, "soaks") {
		t.Fatalf("soaked wave still says it soaks: %q", step.Reason)
	}
	// Both: advance, the next wave soaks from now.
	c[0].Succeeded = 20
	st, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionAdvance, 1, "wave 1 of 4 (1%) passed with 20 successes", "wave 2 of 4 (10%) started")
	if st != (State{Phase: PhaseActive, Wave: 1, Since: clk.Now()}) {
		t.Fatalf("state after advance %+v", st)
	}
	// Persisted before acting, then the server restarts at once: no second
	// step although wave 2 also has its successes.
	c[1] = Counts{Members: 900, Succeeded: 25}
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 1, "soaks until 2026-12-07T14:00:00Z")

	clk.Advance(time.Hour)
	st, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionAdvance, 2)
	c[2] = Counts{Members: 4000, Succeeded: 20}
	clk.Advance(time.Hour)
	st, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionAdvance, 3, "wave 4 of 4 (100%) started")
	c[3] = Counts{Members: 5000, Succeeded: 19}
	clk.Advance(2 * time.Hour)
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 3, "19 of 20")
	c[3].Succeeded = 4000
	st, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionComplete, 3, "the rollout is complete")
	if st.Phase != PhaseComplete || st.Wave != 3 {
		t.Fatalf("state after the last wave %+v", st)
	}
	// Complete is terminal: late failures change nothing.
	c[3].Failed = 4000
	st2, step := decide(t, p, st, c, clk.Now().Add(time.Hour))
	wantStep(t, step, ActionStay, 3, "complete")
	if st2 != st {
		t.Fatalf("complete rollout changed: %+v", st2)
	}
}

// The success gate of small, empty and skipped waves, and MinSuccess 0.
func TestDecideSuccessGate(t *testing.T) {
	soaked := t0.Add(2 * time.Hour)
	active := State{Phase: PhaseActive, Wave: 0, Since: t0}
	for _, tc := range []struct {
		name       string
		minSuccess int
		c          Counts
		want       Action
	}{
		{"enough successes", 20, Counts{Members: 1000, Succeeded: 20}, ActionAdvance},
		{"one short", 20, Counts{Members: 1000, Succeeded: 19, Offered: 981}, ActionStay},
		{"exactly min members, all succeeded", 20, Counts{Members: 20, Succeeded: 20}, ActionAdvance},
		{"small wave, all succeeded", 20, Counts{Members: 5, Succeeded: 5}, ActionAdvance},
		{"small wave, one still offered", 20, Counts{Members: 5, Succeeded: 4, Offered: 1}, ActionStay},
		{"small wave, one skipped by its owner", 20, Counts{Members: 5, Succeeded: 4, Skipped: 1}, ActionAdvance},
		{"small wave, one failed under the threshold waits for its retry", 20, Counts{Members: 10, Succeeded: 9, Failed: 1}, ActionStay},
		{"small wave, all skipped", 20, Counts{Members: 3, Skipped: 3}, ActionAdvance},
		{"empty wave", 20, Counts{}, ActionAdvance},
		{"min success 0", 0, Counts{Members: 100, Offered: 100}, ActionAdvance},
		{"owners declined: all the others succeeded", 20, Counts{Members: 100, Succeeded: 10, Skipped: 90}, ActionAdvance},
		{"owners declined: one other still offered", 20, Counts{Members: 100, Succeeded: 9, Offered: 1, Skipped: 90}, ActionStay},
		{"some skips, min success reachable", 20, Counts{Members: 100, Succeeded: 19, Offered: 41, Skipped: 40}, ActionStay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan()
			p.MinSuccess = tc.minSuccess
			p.MaxFailure = 1000 // 10 %: "one failed" stays below it
			c := counts(4)
			c[0] = tc.c
			_, step := decide(t, p, active, c, soaked)
			if step.Action != tc.want {
				t.Fatalf("counts %+v: %+v; want %s", tc.c, step, tc.want)
			}
			// Not soaked: never advances.
			_, step = decide(t, p, active, c, t0.Add(59*time.Minute))
			if step.Action != ActionStay {
				t.Fatalf("advanced before the soak: %+v", step)
			}
		})
	}
}

func TestDecideHalt(t *testing.T) {
	now := t0.Add(30 * time.Minute)
	for _, tc := range []struct {
		name   string
		wave   int // active wave
		c      []Counts
		halt   bool
		halted int      // wave index named
		reason []string // in the reason
	}{
		{"ratio above", 0, []Counts{{Members: 100, Succeeded: 18, Failed: 2}, {}, {}, {}}, true, 0,
			[]string{"wave 1 of 4 (1%)", "failure ratio 10.00%", "2 failed, 0 rolled back of 20 finished", "above the maximum 5%"}},
		{"ratio equal to the threshold does not halt", 0, []Counts{{Members: 100, Succeeded: 19, Failed: 1}, {}, {}, {}}, false, 0, nil},
		{"just above", 0, []Counts{{Members: 1000, Succeeded: 379, Failed: 20}, {}, {}, {}}, true, 0, []string{"failure ratio 5.01%"}},
		{"rolled back counts as failed", 0, []Counts{{Members: 100, Succeeded: 18, RolledBack: 2}, {}, {}, {}}, true, 0,
			[]string{"0 failed, 2 rolled back of 20 finished"}},
		{"first finished device failed", 0, []Counts{{Members: 100, Offered: 99, Failed: 1}, {}, {}, {}}, true, 0, []string{"100.00%"}},
		{"skips are never failures", 0, []Counts{{Members: 100, Succeeded: 1, Skipped: 99}, {}, {}, {}}, false, 0, nil},
		{"offered devices are not finished", 0, []Counts{{Members: 100, Offered: 80, Succeeded: 19, Failed: 1}, {}, {}, {}}, false, 0, nil},
		{"an earlier wave's late failures halt", 2, []Counts{{Members: 100, Succeeded: 20}, {Members: 900, Succeeded: 100, Failed: 10}, {Members: 4000, Succeeded: 5}, {}}, true, 1,
			[]string{"wave 2 of 4 (10%)", "9.09%"}},
		{"the first failing wave is named", 1, []Counts{{Succeeded: 1, Failed: 1}, {Succeeded: 1, Failed: 1}, {}, {}}, true, 0, []string{"wave 1 of 4"}},
		{"later waves are not judged before they start", 0, []Counts{{Succeeded: 20}, {Failed: 5}, {}, {}}, false, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := State{Phase: PhaseActive, Wave: tc.wave, Since: t0}
			next, step := decide(t, testPlan(), st, tc.c, now)
			if !tc.halt {
				if step.Action != ActionStay {
					t.Fatalf("%+v; want stay", step)
				}
				return
			}
			wantStep(t, step, ActionHalt, tc.halted, tc.reason...)
			if next.Phase != PhaseHalted || next.Wave != tc.wave || next.Reason != step.Reason || next.Since != st.Since {
				t.Fatalf("state after halt %+v", next)
			}
		})
	}
}

// Halted stays halted until resumed; a resume soaks again and a re-check may
// halt again; raising the threshold lets it go on.
func TestDecideHaltResume(t *testing.T) {
	clk := clock.NewFake(t0.Add(2 * time.Hour))
	p := testPlan()
	c := counts(4)
	c[0] = Counts{Members: 100, Succeeded: 30, Failed: 3}
	st, step := decide(t, p, State{Phase: PhaseActive, Since: t0}, c, clk.Now())
	wantStep(t, step, ActionHalt, 0, "9.09%")

	// Counts improve: still halted, and no second halt step to audit.
	c[0] = Counts{Members: 100, Succeeded: 90, Failed: 3}
	clk.Advance(time.Hour)
	st2, step := decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 0, "halted: wave 1 of 4 (1%)")
	if st2 != st {
		t.Fatalf("halted state changed: %+v", st2)
	}

	// Resume: active, soaks again from now, and the improved ratio passes.
	st, err := Resume(p, st, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st != (State{Phase: PhaseActive, Wave: 0, Since: clk.Now()}) {
		t.Fatalf("resumed state %+v", st)
	}
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 0, "soaks until")
	clk.Advance(time.Hour)
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionAdvance, 1)

	// Resumed without a change: halts again at once.
	c[0] = Counts{Members: 100, Succeeded: 30, Failed: 3}
	st, _ = decide(t, p, st, c, clk.Now())
	st, _ = Resume(p, st, clk.Now())
	st, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionHalt, 0)
	// The operator raises the threshold to 10 %.
	p.MaxFailure = 1000
	st, _ = Resume(p, st, clk.Now())
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 0, "soaks until")
}

func TestDecidePauseAbort(t *testing.T) {
	clk := clock.NewFake(t0.Add(5 * time.Hour))
	p := testPlan()
	c := counts(4)
	c[0] = Counts{Members: 100, Succeeded: 100}
	active := State{Phase: PhaseActive, Wave: 0, Since: t0}

	paused, err := Pause(active, "")
	if err != nil || paused.Phase != PhasePaused || paused.Reason != "paused by the operator" || paused.Since != t0 {
		t.Fatalf("Pause = %+v, %v", paused, err)
	}
	// Paused never advances, however long and however well.
	for i := 0; i < 5; i++ {
		clk.Advance(24 * time.Hour)
		st, step := decide(t, p, paused, c, clk.Now())
		wantStep(t, step, ActionStay, 0, "paused: paused by the operator")
		if st != paused {
			t.Fatalf("paused state changed: %+v", st)
		}
	}
	// A paused rollout still halts on failures.
	bad := counts(4)
	bad[0] = Counts{Members: 100, Succeeded: 10, Failed: 10}
	st, step := decide(t, p, paused, bad, clk.Now())
	wantStep(t, step, ActionHalt, 0)
	if st.Phase != PhaseHalted {
		t.Fatalf("phase %s", st.Phase)
	}
	// Resume after a pause soaks again in full.
	st, err = Resume(p, paused, clk.Now())
	if err != nil || st != (State{Phase: PhaseActive, Wave: 0, Since: clk.Now()}) {
		t.Fatalf("Resume = %+v, %v", st, err)
	}
	_, step = decide(t, p, st, c, clk.Now())
	wantStep(t, step, ActionStay, 0, "soaks until")

	// Abort: terminal, stays aborted whatever the counts.
	aborted, err := Abort(st, "bad build")
	if err != nil || aborted.Phase != PhaseAborted || aborted.Reason != "bad build" {
		t.Fatalf("Abort = %+v, %v", aborted, err)
	}
	for _, cc := range [][]Counts{c, bad} {
		st, step := decide(t, p, aborted, cc, clk.Now().Add(time.Hour))
		wantStep(t, step, ActionStay, 0, "aborted")
		if st != aborted {
			t.Fatalf("aborted state changed: %+v", st)
		}
	}

	// Paused before the start: a resume before the start waits for it,
	// one after it starts wave 0 at once.
	early, err := Pause(NewState(), "not yet")
	if err != nil {
		t.Fatal(err)
	}
	if _, step := decide(t, p, early, c, t0.Add(time.Hour)); step.Action != ActionStay {
		t.Fatalf("paused scheduled rollout: %+v", step)
	}
	if st, err := Resume(p, early, t0.Add(-time.Minute)); err != nil || st != NewState() {
		t.Fatalf("Resume before start = %+v, %v", st, err)
	}
	if st, err := Resume(p, early, t0.Add(time.Minute)); err != nil || st != (State{Phase: PhaseActive, Since: t0.Add(time.Minute)}) {
		t.Fatalf("Resume after start = %+v, %v", st, err)
	}
}

func TestOperatorTransitionsRefused(t *testing.T) {
	p := testPlan()
	for _, tc := range []struct {
		name string
		do   func(State) (State, error)
		from []Phase
	}{
		{"pause", func(s State) (State, error) { return Pause(s, "") }, []Phase{PhasePaused, PhaseHalted, PhaseAborted, PhaseComplete}},
		{"resume", func(s State) (State, error) { return Resume(p, s, t0) }, []Phase{PhaseScheduled, PhaseActive, PhaseAborted, PhaseComplete}},
		{"abort", func(s State) (State, error) { return Abort(s, "") }, []Phase{PhaseAborted, PhaseComplete}},
	} {
		for _, ph := range tc.from {
			st := State{Phase: ph, Since: t0, Reason: "r"}
			got, err := tc.do(st)
			if !errors.Is(err, ErrTransition) || !strings.Contains(err.Error(), "cannot "+tc.name+" a "+string(ph)+" rollout") {
				t.Errorf("%s from %s: %v; want ErrTransition naming both", tc.name, ph, err)
			}
			if got != st {
				t.Errorf("%s from %s changed the state to %+v", tc.name, ph, got)
			}
		}
	}
	if st, err := Abort(NewState(), ""); err != nil || st.Phase != PhaseAborted || st.Reason != "aborted by the operator" {
		t.Errorf("abort a scheduled rollout: %+v, %v", st, err)
	}
}

func TestDecideErrors(t *testing.T) {
	p := testPlan()
	ok := State{Phase: PhaseActive, Since: t0}
	for _, tc := range []struct {
		name string
		p    Plan
		st   State
		c    []Counts
		want string
	}{
		{"invalid plan", Plan{Waves: []int{50}, Start: t0}, ok, counts(1), "the last wave is 0.5%"},
		{"too few counts", p, ok, counts(3), "3 wave counts for a plan of 4 waves"},
		{"too many counts", p, ok, counts(5), "5 wave counts for a plan of 4 waves"},
		{"negative count", p, ok, []Counts{{}, {Failed: -1}, {}, {}}, "wave 2 of 4 (10%): failed count -1 is negative"},
		{"unknown phase", p, State{Phase: "running", Since: t0}, counts(4), `unknown phase "running"`},
		{"empty phase", p, State{}, counts(4), `unknown phase ""`},
		{"wave beyond the plan", p, State{Phase: PhaseActive, Wave: 4, Since: t0}, counts(4), "active wave 5 outside the plan's 4 waves"},
		{"negative wave", p, State{Phase: PhaseActive, Wave: -1, Since: t0}, counts(4), "active wave 0 outside"},
		{"active without since", p, State{Phase: PhaseActive}, counts(4), "active rollout without the time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, step, err := Decide(tc.p, tc.st, tc.c, t0.Add(time.Hour))
			if err == nil || !strings.HasPrefix(err.Error(), "rollout: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decide = %+v, %+v, %v; want an error containing %q", st, step, err, tc.want)
			}
			if !reflect.DeepEqual(st, tc.st) || step != (Step{}) {
				t.Fatalf("error returned state %+v and step %+v", st, step)
			}
		})
	}
}

// Property: for random plans, states, counts and times, Decide is
// deterministic, takes at most one step, never moves a wave backwards or
// by more than one, never advances a paused, halted, aborted or complete
// rollout, never acts before the start, and — with the counts and time
// held still — reaches a fixed point after at most len(waves)+1 steps (a
// restart that re-runs Decide on persisted state cannot run away).
func TestDecideProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	phases := []Phase{PhaseScheduled, PhaseActive, PhasePaused, PhaseHalted, PhaseAborted, PhaseComplete}
	for i := 0; i < 20000; i++ {
		n := 1 + rng.IntN(5)
		waves := make([]int, n)
		for k := range waves {
			waves[k] = Buckets * (k + 1) / n
		}
		p := Plan{Waves: waves, MaxFailure: rng.IntN(Buckets + 1), MinSuccess: rng.IntN(30), Soak: time.Duration(rng.IntN(3)) * time.Hour, Start: t0}
		st := State{Phase: phases[rng.IntN(len(phases))], Wave: rng.IntN(n), Since: t0.Add(time.Duration(rng.IntN(5)) * time.Hour)}
		if st.Phase == PhaseScheduled {
			st = NewState()
		}
		c := make([]Counts, n)
		for k := range c {
			c[k] = Counts{Members: rng.IntN(50), Offered: rng.IntN(20), Succeeded: rng.IntN(40), Failed: rng.IntN(3) * rng.IntN(2), RolledBack: rng.IntN(2) * rng.IntN(2), Skipped: rng.IntN(10)}
		}
		now := t0.Add(time.Duration(rng.IntN(10)-2) * time.Hour)

		next, step := decide(t, p, st, c, now)
		switch step.Action {
		case ActionStart:
			if st.Phase != PhaseScheduled || now.Before(p.Start) || next.Wave != 0 || next.Since != p.Start {
				t.Fatalf("bad start %+v -> %+v at %v", st, next, now)
			}
		case ActionAdvance:
			if st.Phase != PhaseActive || next.Wave != st.Wave+1 || next.Since != now || next.Phase != PhaseActive {
				t.Fatalf("bad advance %+v -> %+v", st, next)
			}
			if c[st.Wave].Succeeded < p.successesNeeded(c[st.Wave]) || now.Before(st.Since.Add(p.Soak)) {
				t.Fatalf("advanced without meeting the gate: %+v %+v", st, c[st.Wave])
			}
		case ActionComplete:
			if st.Phase != PhaseActive || st.Wave != n-1 || next.Phase != PhaseComplete {
				t.Fatalf("bad complete %+v -> %+v", st, next)
			}
		case ActionHalt:
			if (st.Phase != PhaseActive && st.Phase != PhasePaused) || next.Phase != PhaseHalted || next.Wave != st.Wave || step.Wave > st.Wave {
				t.Fatalf("bad halt %+v -> %+v, %+v", st, next, step)
			}
			bc := c[step.Wave]
			if (bc.Failed+bc.RolledBack)*Buckets <= p.MaxFailure*bc.Finished() {
				t.Fatalf("halted wave %d under the threshold: %+v", step.Wave, bc)
			}
		case ActionStay:
		default:
			t.Fatalf("unknown action %q", step.Action)
		}

		// Fixed point with counts and time held still: at most
		// len(waves)+1 steps in all (start, then one per wave).
		s, changed := next, 0
		if step.Changed() {
			changed++
		}
		for {
			s2, st2 := decide(t, p, s, c, now)
			if st2.Action == ActionStay {
				break
			}
			if changed++; changed > n+1 {
				t.Fatalf("no fixed point after %d steps from %+v", changed, st)
			}
			s = s2
		}
	}
}

// A server driven by a fake clock decides every 10 minutes and persists
// each step before acting. Killing it before the persist (the step is lost)
// or after it (the step is kept) leaves the recorded history the same as a
// run without kills: no step is lost, none is taken twice.
func TestDecideCrashRecovery(t *testing.T) {
	p := testPlan()
	p.Soak = 30 * time.Minute
	type record struct {
		at   time.Time
		step Step
	}
	// countsAt: devices report over time; wave 3 (index 2) fails from
	// 13:10 on, while it is active.
	countsAt := func(now time.Time) []Counts {
		c := counts(4)
		h := max(0, int(now.Sub(t0)/(10*time.Minute)))
		for k := range c {
			c[k] = Counts{Members: 1000, Succeeded: min(1000, 8*h)}
		}
		if !now.Before(t0.Add(70 * time.Minute)) {
			c[2].Failed = 100
		}
		return c
	}
	run := func(kill func(i int) (before, after bool)) []record {
		clk := clock.NewFake(t0.Add(-20 * time.Minute))
		persisted := NewState()
		var history []record
		for i := 0; i < 40; i++ {
			now := clk.Now()
			next, step := decide(t, p, persisted, countsAt(now), now)
			before, after := kill(i)
			if before && step.Changed() {
				// Killed before the persist: the restarted server decides again.
				next2, step2 := decide(t, p, persisted, countsAt(now), now)
				if !reflect.DeepEqual(next2, next) || step2 != step {
					t.Fatalf("restart before persist decided %+v, not %+v", step2, step)
				}
			}
			if step.Changed() {
				persisted = next
				history = append(history, record{now, step})
			}
			if after && step.Changed() {
				// Killed after the persist: the restarted server must not
				// take the same step again.
				_, again := decide(t, p, persisted, countsAt(now), now)
				if again.Changed() && again.Action == step.Action && again.Wave == step.Wave {
					t.Fatalf("restart after persist repeated %+v", step)
				}
				if again.Changed() {
					persisted, _ = decide(t, p, persisted, countsAt(now), now)
					history = append(history, record{now, again})
				}
			}
			clk.Advance(10 * time.Minute)
		}
		return history
	}
	clean := run(func(int) (bool, bool) { return false, false })
	killedBefore := run(func(int) (bool, bool) { return true, false })
	killedAfter := run(func(i int) (bool, bool) { return false, i%2 == 0 })
	var actions []string
	for _, r := range clean {
		actions = append(actions, string(r.step.Action))
	}
	if got := strings.Join(actions, ","); got != "start,advance,advance,halt" || clean[3].step.Wave != 2 || !clean[3].at.Equal(t0.Add(70*time.Minute)) {
		t.Fatalf("clean run took %s", got)
	}
	if !reflect.DeepEqual(clean, killedBefore) || !reflect.DeepEqual(clean, killedAfter) {
		t.Fatalf("histories differ:\nclean  %+v\nbefore %+v\nafter  %+v", clean, killedBefore, killedAfter)
	}
}
