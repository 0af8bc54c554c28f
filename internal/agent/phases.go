package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

// The install state machine, as one table.
//
// Phase is where the machine stands; it is persisted in state.json before
// the action it names begins, so that a power loss at any point leaves a
// phase whose restart entry (below) finishes or undoes the step. A phase
// other than idle always names the release being installed
// (State.Pending); idle never does.
//
// Only enter changes the phase: it checks the step against the table,
// persists the state, then passes the step's power-loss point (the
// PowerLoss hook of tests). Only enter and record save the state during a
// cycle.
type Phase string

// Phases, in the order of an install.
const (
	// PhaseIdle: nothing in progress.
	PhaseIdle Phase = "idle"
	// PhaseWriting: the inactive slot is being written; its content is
	// not trusted. Pending's saved progress, when set, says how much of the
	// download is durable: the next check resumes from there if it still
	// installs the same release into the same slot, and starts over
	// otherwise.
	PhaseWriting Phase = "writing"
	// PhaseArming: the slot was written and verified; the bootloader is
	// being armed. Resumed by arming again (idempotent).
	PhaseArming Phase = "arming"
	// PhaseRebooting: the bootloader is armed and the device restarts
	// into the new slot on trial.
	PhaseRebooting Phase = "rebooting"
	// PhaseCommitting: the new slot booted and passed the health check;
	// the bootloader is being told to keep it.
	PhaseCommitting Phase = "committing"
	// PhaseReverting: the new slot failed; the bootloader is being told to
	// go back, then the device restarts.
	PhaseReverting Phase = "reverting"
)

// step is an entry into a phase, named by the power-loss point the agent
// passes once the new phase is persisted. The names are stable: tests cut
// power at them.
type step struct {
	point string
	to    Phase
}

// The steps. Entering idle clears Pending; the step says why.
var (
	stepWrite      = step{"writing", PhaseWriting}
	stepArm        = step{"arming", PhaseArming}
	stepReboot     = step{"rebooting", PhaseRebooting}
	stepCommit     = step{"committing", PhaseCommitting}
	stepRevert     = step{"reverting", PhaseReverting}
	stepCommitted  = step{"idle-after-commit", PhaseIdle}
	stepRolledBack = step{"idle-after-rollback", PhaseIdle}
	// stepWriteLost: a restart found a write without saved progress.
	stepWriteLost = step{"idle-after-interrupted-write", PhaseIdle}
	// stepDropped: an install given up before its slot was complete: the
	// check refused it, or installs something else or nothing.
	stepDropped = step{"idle-after-drop", PhaseIdle}
	// stepAbandoned: the bootloader could not be armed.
	stepAbandoned = step{"idle-after-abandon", PhaseIdle}
)

// phaseRow is one phase of the machine.
type phaseRow struct {
	// next are the steps out of the phase.
	next []step
	// restart is what a cycle that starts in this phase does first, with
	// the bootloader's view of the slots; nil: nothing to finish. Every
	// restart is safe to repeat: a power loss during it lands in a phase
	// whose restart finishes the job.
	restart func(a *Agent, ctx context.Context, s *State, st slot.State) error
}

// machine is the table: each phase, the steps it may take, and its
// restart entry. (It is filled in init only because the restart entries
// refer back to enter, which reads it.)
var machine map[Phase]phaseRow

func init() { machine = table() }

func table() map[Phase]phaseRow {
	return map[Phase]phaseRow{
		// Nothing to finish: the cycle checks for an update.
		PhaseIdle: {next: []step{stepWrite}},
		// With saved progress, stay: the check resumes the download if it
		// still installs that release into that slot (install), and drops it
		// otherwise (checkAndInstall). Without, forget the partial write.
		PhaseWriting: {next: []step{stepWrite, stepArm, stepWriteLost, stepDropped}, restart: (*Agent).restartWriting},
		// Booted the new slot on trial: armed, then power failed and the
		// device restarted: run the trial. Otherwise arm again.
		PhaseArming: {next: []step{stepReboot, stepCommit, stepRevert, stepAbandoned}, restart: (*Agent).restartArming},
		// On trial in the new slot: run the trial; in the new slot without
		// the trial flag: someone committed it, finish; still in the old slot
		// with the new one armed: reboot again; else the bootloader fell back:
		// the release failed.
		PhaseRebooting: {next: []step{stepCommit, stepRevert, stepCommitted, stepRolledBack}, restart: (*Agent).restartRebooting},
		// In the new slot: commit (again); else it failed.
		PhaseCommitting: {next: []step{stepCommitted, stepRolledBack}, restart: (*Agent).restartCommitting},
		// Still in the new slot: revert (again) and reboot; back in the old
		// one: record the failure.
		PhaseReverting: {next: []step{stepRolledBack}, restart: (*Agent).restartReverting},
	}
}

// enter takes step st from the current phase: it refuses a step the table
// does not list, sets the phase (clearing Pending when it is idle),
// persists the state, then passes the step's power-loss point.
func (a *Agent) enter(s *State, st step) error {
	from := s.Phase
	if !slices.Contains(machine[from].next, st) {
		return fmt.Errorf("agent: no step %q from phase %s to %s in the state machine", st.point, from, st.to)
	}
	if st.to != PhaseIdle && s.Pending == nil {
		return fmt.Errorf("agent: step %q to %s names no release", st.point, st.to)
	}
	s.Phase = st.to
	if st.to == PhaseIdle {
		s.Pending = nil
	}
	if err := saveState(a.cfg.DataDir, s); err != nil {
		return err
	}
	if a.step != nil {
		a.step(Transition{From: from, To: st.to, Point: st.point})
	}
	return a.power(st.point)
}

// record persists what changed within the current phase: the check's
// record, progress, counters, caches.
func (a *Agent) record(s *State) error { return saveState(a.cfg.DataDir, s) }

// encodeCheckpoint is the state as its next save, for a download
// checkpoint: transfer writes it into the checkpoint journal once the bytes
// the progress in s covers are synced (transfer.Recorder), and LoadState
// takes it over state.json when its Seq is higher.
func encodeCheckpoint(s *State) (uint64, []byte, error) {
	b, err := encodeState(s)
	return s.Seq, b, err
}

// replaceState writes a checkpoint that does not fit the journal into
// state.json instead.
func (a *Agent) replaceState(b []byte) error { return writeState(a.cfg.DataDir, b) }

// restartPoint is the power-loss point passed when a cycle starts in phase
// p, before its restart entry acts.
func restartPoint(p Phase) string { return "restart-" + string(p) }

// resume finishes what a reboot or a power loss interrupted: it runs the
// restart entry of the persisted phase.
func (a *Agent) resume(ctx context.Context, s *State) error {
	row, ok := machine[s.Phase]
	if !ok {
		return fmt.Errorf("agent: unknown phase %q in state", s.Phase)
	}
	if row.restart == nil {
		return nil
	}
	if s.Pending == nil {
		return fmt.Errorf("agent: state says %s but names no release", s.Phase)
	}
	st, err := a.slots.State(ctx)
	if err != nil {
		return fmt.Errorf("agent: reading the bootloader state: %w", err)
	}
	if err := a.power(restartPoint(s.Phase)); err != nil {
		return err
	}
	return row.restart(a, ctx, s, st)
}

// Transition is one step the state machine allows, as tests and
// documentation see it: from a phase to a phase, passing a power-loss
// point.
type Transition struct {
	From, To Phase
	Point    string
}

// Transitions lists every step of the table.
func Transitions() []Transition {
	var out []Transition
	for _, from := range Phases() {
		for _, st := range machine[from].next {
			out = append(out, Transition{From: from, To: st.to, Point: st.point})
		}
	}
	return out
}

// Phases lists the phases of the table, in the order of an install.
func Phases() []Phase {
	return []Phase{PhaseIdle, PhaseWriting, PhaseArming, PhaseRebooting, PhaseCommitting, PhaseReverting}
}

// RestartPoints maps every phase that has a restart entry to the
// power-loss point a cycle passes when it starts there.
func RestartPoints() map[Phase]string {
	out := map[Phase]string{}
	for p, row := range machine {
		if row.restart != nil {
			out[p] = restartPoint(p)
		}
	}
	return out
}
