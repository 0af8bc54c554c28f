package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// restartWriting: see machine.
func (a *Agent) restartWriting(_ context.Context, s *State, _ slot.State) error {
	p := s.Pending
	if p.Ready {
		a.log.Info("a release waits in the inactive slot for the maintenance window", "version", p.Version, "slot", p.Slot)
		return nil
	}
	if d := p.payloadProgress(); d != nil && d.Route != transfer.RouteStaged {
		a.log.Info("download was interrupted; it resumes if the release is still to be installed",
			"version", p.Version, "offset", d.Offset, "length", p.Length)
		return nil
	}
	if d := p.payloadProgress(); d != nil && d.Route == transfer.RouteStaged {
		a.log.Info("the download of the compressed payload into the data directory, or its decompression, was interrupted; it resumes if the release is still to be installed",
			"version", p.Version, "offset", d.Offset, "length", p.Length)
		return nil
	}
	if d := p.Delta; d != nil {
		a.log.Info("delta download or apply was interrupted; it resumes if the release and its delta are still to be installed",
			"version", p.Version, "from", d.From, "offset", p.Progress.Offset, "length", d.Length)
		return nil
	}
	a.log.Info("install was interrupted while writing; starting over", "version", p.Version)
	a.dropDeltaFile()
	a.dropStagedFile()
	return a.enter(s, stepWriteLost)
}

// restartArming: see machine.
func (a *Agent) restartArming(ctx context.Context, s *State, st slot.State) error {
	if st.Booted == s.Pending.Slot && st.Trial {
		return a.trial(ctx, s)
	}
	return a.arm(ctx, s)
}

// restartRebooting: see machine.
func (a *Agent) restartRebooting(ctx context.Context, s *State, st slot.State) error {
	p := s.Pending
	switch {
	case st.Booted == p.Slot && st.Trial:
		return a.trial(ctx, s)
	case st.Booted == p.Slot:
		return a.commit(ctx, s)
	case st.Trial && st.Primary == p.Slot:
		return a.doReboot(ctx, s)
	default:
		return a.fail(ctx, s, &Failure{Version: p.Version, ErrorClass: report.ClassBootFallback,
			Reason: fmt.Sprintf("the bootloader fell back to slot %s after the new release in slot %s did not come up", st.Booted, p.Slot),
			At:     a.clock.Now().UTC()})
	}
}

// restartCommitting: see machine.
func (a *Agent) restartCommitting(ctx context.Context, s *State, st slot.State) error {
	p := s.Pending
	if st.Booted == p.Slot {
		return a.commit(ctx, s)
	}
	return a.fail(ctx, s, &Failure{Version: p.Version, ErrorClass: report.ClassBootFallback,
		Reason: fmt.Sprintf("booted slot %s while committing slot %s", st.Booted, p.Slot), At: a.clock.Now().UTC()})
}

// restartReverting: see machine.
func (a *Agent) restartReverting(ctx context.Context, s *State, st slot.State) error {
	p := s.Pending
	if st.Booted == p.Slot {
		return a.revert(ctx, s)
	}
	f := p.Failure
	if f == nil {
		f = &Failure{Version: p.Version, ErrorClass: report.ClassHealthCheck, Reason: "rolled back", At: a.clock.Now().UTC()}
	}
	return a.fail(ctx, s, f)
}

// arm tells the bootloader to try the written slot, then reboots.
func (a *Agent) arm(ctx context.Context, s *State) error {
	if err := a.slots.Arm(ctx, s.Pending.Slot); err != nil {
		if errors.Is(err, ErrPowerLoss) {
			return err
		}
		return a.abandon(ctx, s, report.ClassBootloader, fmt.Errorf("arming slot %s: %w", s.Pending.Slot, err))
	}
	if err := a.power("after-arm"); err != nil {
		return err
	}
	if err := a.enter(s, stepReboot); err != nil {
		return err
	}
	return a.doReboot(ctx, s)
}

func (a *Agent) doReboot(ctx context.Context, s *State) error {
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: s.Pending.Version, Action: "rebooting",
		Reason: fmt.Sprintf("restarting into %s in slot %s", s.Pending.Version, s.Pending.Slot)}
	if err := a.record(s); err != nil {
		return err
	}
	// A real reboot ends this process: tell the owner first, and the
	// server (managed mode, best effort).
	if err := a.deliver(ctx, s); err != nil {
		return err
	}
	a.postEvent(ctx, deviceEvent{Kind: EvRebooting, Version: s.Pending.Version})
	return a.reboot(ctx)
}

// revert tells the bootloader to go back to the old slot, then reboots.
func (a *Agent) revert(ctx context.Context, s *State) error {
	if err := a.slots.Revert(ctx); err != nil {
		return fmt.Errorf("agent: reverting: %w", err)
	}
	if err := a.power("after-revert"); err != nil {
		return err
	}
	return a.doReboot(ctx, s)
}

// trial runs the health check in the freshly booted slot.
func (a *Agent) trial(ctx context.Context, s *State) error {
	p := s.Pending
	if err := a.health(ctx); err != nil {
		a.log.Warn("health check failed; rolling back", "version", p.Version, "err", err)
		p.Failure = &Failure{Version: p.Version, ErrorClass: report.ClassHealthCheck, Reason: err.Error(), At: a.clock.Now().UTC()}
		if err := a.enter(s, stepRevert); err != nil {
			return err
		}
		return a.revert(ctx, s)
	}
	if err := a.enter(s, stepCommit); err != nil {
		return err
	}
	return a.commit(ctx, s)
}

// commit makes the booted new slot permanent and records the release.
func (a *Agent) commit(ctx context.Context, s *State) error {
	p := s.Pending
	if err := a.slots.Commit(ctx); err != nil {
		return fmt.Errorf("agent: committing slot %s: %w", p.Slot, err)
	}
	if err := a.power("after-commit"); err != nil {
		return err
	}
	a.enqueue(ctx, p.Product, p.Version, report.OutcomeInstalled, "")
	s.Version, s.SecurityVersion = p.Version, p.SecurityVersion
	// The slot holds the image that was verified before arming: cache its
	// hash, so that a delta from this release needs no read of the slot.
	s.ActiveHash = &SlotHash{Slot: p.Slot, Version: p.Version, Length: p.Length, SHA256: p.SHA256}
	if p.Compression == release.CompressionZstd {
		s.ActiveHash.Length, s.ActiveHash.SHA256 = p.ImageLength, p.ImageSHA256
	}
	if p.SecurityVersion > s.MaxSecurityVersion {
		s.MaxSecurityVersion = p.SecurityVersion
	}
	// The floor first: a power loss before the state's save below finds
	// phase committing, whose restart commits again.
	if err := keepFloor(a.cfg.DataDir, s); err != nil {
		return err
	}
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: p.Version, Action: "installed",
		Reason: fmt.Sprintf("%s is installed and committed in slot %s", p.Version, p.Slot)}
	s.Waiting = stillWaiting(s.Waiting, s.Version)
	a.emit(s, Event{Event: EventInstalled, Key: EventInstalled + "|" + p.Version, Version: p.Version,
		Message: fmt.Sprintf("%s %s is installed and running", p.Product, p.Version)})
	a.log.Info("update committed", "version", p.Version, "slot", p.Slot)
	return a.enter(s, stepCommitted)
}

// fail records a release as failed after the device is back on its old
// slot, so it is not retried.
func (a *Agent) fail(ctx context.Context, s *State, f *Failure) error {
	p := s.Pending
	a.enqueue(ctx, p.Product, p.Version, report.OutcomeRolledBack, f.ErrorClass)
	s.Failed[p.Version] = *f
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: p.Version, Action: "rolled-back", ErrorClass: f.ErrorClass,
		Reason: fmt.Sprintf("%s was rolled back (%s): %s; running %s again, the release will not be retried", p.Version, f.ErrorClass, f.Reason, s.Version)}
	a.emit(s, Event{Event: EventRolledBack, Key: EventRolledBack + "|" + p.Version, Version: p.Version, ErrorClass: f.ErrorClass,
		Message: fmt.Sprintf("%s %s was rolled back (%s): %s; %s runs again", p.Product, p.Version, f.ErrorClass, f.Reason, s.Version)})
	a.log.Warn("update rolled back", "version", p.Version, "class", f.ErrorClass, "reason", f.Reason)
	return a.enter(s, stepRolledBack)
}

// abandon gives up an install before the bootloader was armed; the booted
// slot was never touched.
func (a *Agent) abandon(ctx context.Context, s *State, class report.Class, err error) error {
	p := s.Pending
	a.enqueue(ctx, p.Product, p.Version, report.OutcomeFailed, class)
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: p.Version, Action: "failed", ErrorClass: class,
		Reason: fmt.Sprintf("installing %s failed (%s): %v", p.Version, class, err)}
	if serr := a.enter(s, stepAbandoned); serr != nil {
		return serr
	}
	return fmt.Errorf("agent: %w", err)
}

// stillWaiting drops the releases that are no longer newer than running.
func stillWaiting(ws []Waiting, running string) []Waiting {
	var out []Waiting
	for _, w := range ws {
		if release.CompareVersions(w.Version, running) > 0 {
			out = append(out, w)
		}
	}
	return out
}
