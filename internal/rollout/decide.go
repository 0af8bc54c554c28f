package rollout

import (
	"errors"
	"fmt"
	"time"
)

// Phase is where a managed rollout stands. Phases are persisted and shown as
// these strings; they never change.
type Phase string

const (
	// PhaseScheduled: created, its start time not reached yet.
	PhaseScheduled Phase = "scheduled"
	// PhaseActive: the active wave is offered; Decide may advance it.
	PhaseActive Phase = "active"
	// PhasePaused: stopped by the operator; nothing advances until resumed.
	PhasePaused Phase = "paused"
	// PhaseHalted: stopped by Decide because a wave failed too often;
	// nothing advances until the operator resumes.
	PhaseHalted Phase = "halted"
	// PhaseAborted: stopped for good by the operator. Terminal.
	PhaseAborted Phase = "aborted"
	// PhaseComplete: the last wave passed its gate. Terminal.
	PhaseComplete Phase = "complete"
)

func (p Phase) valid() bool {
	switch p {
	case PhaseScheduled, PhaseActive, PhasePaused, PhaseHalted, PhaseAborted, PhaseComplete:
		return true
	}
	return false
}

// Terminal reports whether nothing can change a rollout in this phase any
// more (aborted or complete).
func (p Phase) Terminal() bool { return p == PhaseAborted || p == PhaseComplete }

// State is the persisted state of a managed rollout. The zero value is not
// valid; start from NewState.
type State struct {
	Phase Phase `json:"phase"`
	// Wave is the active wave, 0-based: the last wave that was started.
	// Paused and halted rollouts keep it; it is 0 while scheduled.
	Wave int `json:"wave"`
	// Since is when Wave became active (or was last resumed); its soak is
	// measured from here. Zero while scheduled.
	Since time.Time `json:"since"`
	// Reason says why the rollout is paused, halted or aborted; empty
	// otherwise.
	Reason string `json:"reason,omitempty"`
}

// NewState is the state of a rollout just created.
func NewState() State { return State{Phase: PhaseScheduled} }

// Counts are the devices of one wave (those whose bucket falls in
// Plan.WaveRange(k)) by their latest outcome in this rollout: every device
// is counted at most once, in the field of its latest state, so a device
// that failed and then succeeded on retry counts as succeeded.
type Counts struct {
	// Members are the devices selected by the rollout and owned by it (see
	// Owner) whose bucket falls in this wave, whatever their state. It grows
	// as devices enrol.
	Members int `json:"members"`
	// Offered: offered the release, no outcome yet (downloading,
	// installing, rebooting included). For the status view; Decide does
	// not judge devices without an outcome.
	Offered    int `json:"offered"`
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`
	RolledBack int `json:"rolled_back"`
	// Skipped: skipped by the owner's choice or by policy (consent missing,
	// postponed, incompatible hardware, outside the window). A skip is never
	// a failure and never a success.
	Skipped int `json:"skipped"`
}

// Finished are the devices with an outcome that says how the release
// behaves: succeeded, failed or rolled back. Skips are not among them.
func (c Counts) Finished() int { return c.Succeeded + c.Failed + c.RolledBack }

func (c Counts) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"members", c.Members}, {"offered", c.Offered}, {"succeeded", c.Succeeded}, {"failed", c.Failed}, {"rolled back", c.RolledBack}, {"skipped", c.Skipped}} {
		if f.v < 0 {
			return fmt.Errorf("%s count %d is negative", f.name, f.v)
		}
	}
	return nil
}

// Action is what a Step does. Actions are persisted in the audit log as
// these strings.
type Action string

const (
	// ActionStay: nothing changes. Step.Reason says what the rollout waits
	// for.
	ActionStay Action = "stay"
	// ActionStart: the start time passed; wave 0 is active.
	ActionStart Action = "start"
	// ActionAdvance: Step.Wave is the new active wave.
	ActionAdvance Action = "advance"
	// ActionHalt: Step.Wave failed too often; Step.Reason names the wave,
	// its failure ratio and the threshold.
	ActionHalt Action = "halt"
	// ActionComplete: the last wave passed its gate.
	ActionComplete Action = "complete"
)

// Step is the outcome of Decide.
type Step struct {
	Action Action `json:"action"`
	// Wave is the wave concerned, 0-based: the one started (start,
	// advance), halted (halt) or completed (complete); for stay the active
	// wave.
	Wave int `json:"wave"`
	// Reason explains the step in words an operator understands; it goes to
	// the audit log and the status view.
	Reason string `json:"reason"`
}

// Changed reports whether the step changes the state, that is, whether
// the caller must persist the new state and record the step in the audit
// log.
func (s Step) Changed() bool { return s.Action != ActionStay }

// ErrTransition is wrapped by the operator actions (Pause, Resume, Abort)
// when the rollout's phase does not allow them; an API maps it to 409.
var ErrTransition = errors.New("rollout: not allowed in this phase")

// Decide returns the next state of a rollout and the step that leads to it,
// from its plan, its current state, the counts of every wave (counts[k] for
// wave k, one per wave of the plan) and the current time. It takes at most
// one step per call. The rules, in order:
//
//  1. Aborted and complete rollouts stay as they are.
//  2. Scheduled: before plan.Start nothing happens; from plan.Start wave 0
//     becomes active, its soak measured from plan.Start (not from now), so
//     a server that was down at the start time decides the same as one
//     that was up.
//  3. Halt: if any wave up to the active one has a failure ratio — failed
//     plus rolled back over finished (succeeded, failed, rolled back; skips
//     are not counted at all) — strictly above plan.MaxFailure, the
//     rollout halts, naming the first such wave, its ratio and the
//     threshold. This applies to active and paused rollouts: a pause does
//     not hide a failing wave. A halted rollout stays halted, whatever the
//     counts, until the operator resumes it (Resume); the next Decide
//     after a resume checks again and halts again if the ratio is still
//     too high — to go on regardless, the operator raises MaxFailure.
//  4. Paused and halted rollouts never advance.
//  5. Gate: the active wave k passes when it has soaked (now is at least
//     Since + plan.Soak) and has enough successes: plan.MinSuccess, or —
//     when fewer of its members than that were not skipped (Members -
//     Skipped < MinSuccess: a small wave, or one whose owners declined) —
//     every member that was not skipped. So a small wave waits for a
//     failed device to retry and succeed (or for the operator), owners'
//     skips never block a wave, and a wave with no members, or only
//     skipped ones, passes once soaked. Passing the last wave completes
//     the rollout; passing another advances to k+1 with Since = now.
//
// Idempotence and crash safety (the invariant the caller relies on):
// Decide is a pure, deterministic function of its arguments, and the state
// it returns already records the step it took — a started, advanced,
// halted or completed rollout is in the phase and wave that say so. The
// caller persists the returned state (and the audit entry) in one
// transaction before acting on it (changing what devices are offered). A
// server killed at any point either persisted the step or did not: on
// restart it reads the persisted state and calls Decide again, which takes
// the step again if it was not persisted (the same step at the same time;
// an advance decided later soaks from that later time), and never takes a
// persisted step twice, because the new state no longer satisfies the old
// step's condition (a halted rollout stays, an advanced wave soaks from
// its start, a complete one is terminal). Calling Decide
// twice with the same arguments returns the same result; calling it again
// on its own result with the same counts and time returns stay unless the
// gate of the wave it just started is already met (a zero soak, or a start
// long past), in which case it takes exactly one further step: with the
// counts and time held still, Decide reaches a fixed point after at most
// len(plan.Waves)+1 steps.
//
// Decide returns an error, and the state unchanged, for an invalid plan,
// state or counts.
func Decide(p Plan, st State, counts []Counts, now time.Time) (State, Step, error) {
	if err := p.Validate(); err != nil {
		return st, Step{}, err
	}
	if err := st.validate(p); err != nil {
		return st, Step{}, err
	}
	if len(counts) != len(p.Waves) {
		return st, Step{}, fmt.Errorf("rollout: %d wave counts for a plan of %d waves", len(counts), len(p.Waves))
	}
	for k, c := range counts {
		if err := c.validate(); err != nil {
			return st, Step{}, fmt.Errorf("rollout: %s: %w", p.waveName(k), err)
		}
	}

	switch st.Phase {
	case PhaseAborted, PhaseComplete:
		return st, Step{Action: ActionStay, Wave: st.Wave, Reason: "the rollout is " + string(st.Phase)}, nil
	case PhaseScheduled:
		if now.Before(p.Start) {
			return st, Step{Action: ActionStay, Reason: "the rollout starts at " + p.Start.UTC().Format(time.RFC3339)}, nil
		}
		next := State{Phase: PhaseActive, Wave: 0, Since: p.Start}
		return next, Step{Action: ActionStart, Wave: 0, Reason: p.waveName(0) + " started"}, nil
	case PhaseHalted:
		return st, Step{Action: ActionStay, Wave: st.Wave, Reason: "halted: " + st.Reason}, nil
	}

	// Active or paused.
	for k := 0; k <= st.Wave; k++ {
		if reason, bad := p.failing(k, counts[k]); bad {
			next := State{Phase: PhaseHalted, Wave: st.Wave, Since: st.Since, Reason: reason}
			return next, Step{Action: ActionHalt, Wave: k, Reason: reason}, nil
		}
	}
	if st.Phase == PhasePaused {
		return st, Step{Action: ActionStay, Wave: st.Wave, Reason: "paused: " + st.Reason}, nil
	}

	k, c := st.Wave, counts[st.Wave]
	need := p.successesNeeded(c)
	soakedUntil := st.Since.Add(p.Soak)
	if c.Succeeded < need || now.Before(soakedUntil) {
		var wait string
		if c.Succeeded < need {
			wait = fmt.Sprintf("%d of %d successes", c.Succeeded, need)
		}
		if now.Before(soakedUntil) {
			if wait != "" {
				wait += ", "
			}
			wait += "soaks until " + soakedUntil.UTC().Format(time.RFC3339)
		}
		return st, Step{Action: ActionStay, Wave: k, Reason: p.waveName(k) + ": waits for " + wait}, nil
	}
	if k == len(p.Waves)-1 {
		next := State{Phase: PhaseComplete, Wave: k, Since: st.Since}
		return next, Step{Action: ActionComplete, Wave: k, Reason: fmt.Sprintf("%s passed with %d successes; the rollout is complete", p.waveName(k), c.Succeeded)}, nil
	}
	next := State{Phase: PhaseActive, Wave: k + 1, Since: now}
	return next, Step{Action: ActionAdvance, Wave: k + 1, Reason: fmt.Sprintf("%s passed with %d successes; %s started", p.waveName(k), c.Succeeded, p.waveName(k+1))}, nil
}

// failing reports whether wave k's failure ratio is above the plan's
// threshold, and says so. The comparison is exact: bad/finished >
// MaxFailure/Buckets.
func (p Plan) failing(k int, c Counts) (string, bool) {
	bad, fin := c.Failed+c.RolledBack, c.Finished()
	if fin == 0 || bad*Buckets <= p.MaxFailure*fin {
		return "", false
	}
	return fmt.Sprintf("%s: failure ratio %.2f%% (%d failed, %d rolled back of %d finished) is above the maximum %s",
		p.waveName(k), float64(bad)*100/float64(fin), c.Failed, c.RolledBack, fin, FormatShare(p.MaxFailure)), true
}

// successesNeeded is the success gate of a wave with counts c (rule 5 of
// Decide).
func (p Plan) successesNeeded(c Counts) int {
	return max(0, min(p.MinSuccess, c.Members-c.Skipped))
}

func (st State) validate(p Plan) error {
	if !st.Phase.valid() {
		return fmt.Errorf("rollout: unknown phase %q", st.Phase)
	}
	if st.Wave < 0 || st.Wave >= len(p.Waves) {
		return fmt.Errorf("rollout: active wave %d outside the plan's %d waves", st.Wave+1, len(p.Waves))
	}
	if st.Phase == PhaseActive && st.Since.IsZero() {
		return errors.New("rollout: active rollout without the time its wave became active")
	}
	return nil
}

// Pause stops a scheduled or active rollout: nothing advances and no new
// device is offered the release until Resume. A paused rollout can still
// halt (Decide rule 3).
func Pause(st State, reason string) (State, error) {
	switch st.Phase {
	case PhaseScheduled, PhaseActive:
		st.Phase, st.Reason = PhasePaused, reasonOr(reason, "paused by the operator")
		return st, nil
	}
	return st, fmt.Errorf("%w: cannot pause a %s rollout", ErrTransition, st.Phase)
}

// Resume restarts a paused or halted rollout at now. It clears the pause or
// the halt; the active wave soaks again in full from now (Since = now), so
// a resumed wave is observed as long as a fresh one. A rollout paused
// before it started returns to scheduled when now is before plan.Start.
// The next Decide checks the failure ratios again (a halt can return).
func Resume(p Plan, st State, now time.Time) (State, error) {
	if st.Phase != PhasePaused && st.Phase != PhaseHalted {
		return st, fmt.Errorf("%w: cannot resume a %s rollout", ErrTransition, st.Phase)
	}
	if st.Since.IsZero() {
		// Paused before it started.
		if now.Before(p.Start) {
			return State{Phase: PhaseScheduled}, nil
		}
	}
	return State{Phase: PhaseActive, Wave: st.Wave, Since: now}, nil
}

// Abort stops a rollout for good. Devices already on the release keep it;
// no new device is offered it.
func Abort(st State, reason string) (State, error) {
	if st.Phase.Terminal() {
		return st, fmt.Errorf("%w: cannot abort a %s rollout", ErrTransition, st.Phase)
	}
	st.Phase, st.Reason = PhaseAborted, reasonOr(reason, "aborted by the operator")
	return st, nil
}

func reasonOr(reason, fallback string) string {
	if reason == "" {
		return fallback
	}
	return reason
}
