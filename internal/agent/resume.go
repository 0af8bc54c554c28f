package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
)

// resume finishes an install that a reboot or a power loss interrupted. It
// decides from the persisted phase and from what the bootloader says was
// booted; every branch is safe to repeat.
func (a *Agent) resume(ctx context.Context, s *State) error {
	if s.Phase == PhaseIdle {
		return nil
	}
	p := s.Pending
	if p == nil {
		return fmt.Errorf("agent: state says %s but names no release", s.Phase)
	}
	st, err := a.slots.State(ctx)
	if err != nil {
		return fmt.Errorf("agent: reading the bootloader state: %w", err)
	}
	switch s.Phase {
	case PhaseWriting:
		// The slot holds an unverified, partial image and the bootloader
		// was never armed. With saved progress, stay in this phase: the
		// check that follows resumes the download if it still installs
		// this release (see install), and drops it otherwise (see
		// checkAndInstall). Without, forget it and start over.
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
		s.Phase, s.Pending = PhaseIdle, nil
		return a.step(s, "idle-after-interrupted-write")

	case PhaseArming:
		if st.Booted == p.Slot && st.Trial {
			// Armed, then power failed and the device booted the trial.
			return a.trial(ctx, s)
		}
		return a.arm(ctx, s)

	case PhaseRebooting:
		switch {
		case st.Booted == p.Slot && st.Trial:
			return a.trial(ctx, s)
		case st.Booted == p.Slot:
			// Booted the new slot but the trial flag is gone: someone
			// committed it; accept and finish.
			return a.commit(ctx, s)
		case st.Trial && st.Primary == p.Slot:
			// Still in the old system: the reboot has not happened.
			return a.doReboot(ctx, s)
		default:
			return a.fail(ctx, s, &Failure{Version: p.Version, ErrorClass: ClassBootFallback,
				Reason: fmt.Sprintf("the bootloader fell back to slot %s after the new release in slot %s did not come up", st.Booted, p.Slot),
				At:     a.clock.Now().UTC()})
		}

	case PhaseCommitting:
		if st.Booted == p.Slot {
			return a.commit(ctx, s)
		}
		return a.fail(ctx, s, &Failure{Version: p.Version, ErrorClass: ClassBootFallback,
			Reason: fmt.Sprintf("booted slot %s while committing slot %s", st.Booted, p.Slot), At: a.clock.Now().UTC()})

	case PhaseReverting:
		if st.Booted == p.Slot {
			if err := a.slots.Revert(ctx); err != nil {
				return fmt.Errorf("agent: reverting: %w", err)
			}
			if err := a.power("after-revert"); err != nil {
				return err
			}
			return a.doReboot(ctx, s)
		}
		f := p.Failure
		if f == nil {
			f = &Failure{Version: p.Version, ErrorClass: ClassHealthCheck, Reason: "rolled back", At: a.clock.Now().UTC()}
		}
		return a.fail(ctx, s, f)
	}
	return fmt.Errorf("agent: unknown phase %q in state", s.Phase)
}

// arm tells the bootloader to try the written slot, then reboots.
func (a *Agent) arm(ctx context.Context, s *State) error {
	if err := a.slots.Arm(ctx, s.Pending.Slot); err != nil {
		if errors.Is(err, ErrPowerLoss) {
			return err
		}
		return a.abandon(ctx, s, ClassBootloader, fmt.Errorf("arming slot %s: %w", s.Pending.Slot, err))
	}
	if err := a.power("after-arm"); err != nil {
		return err
	}
	s.Phase = PhaseRebooting
	if err := a.step(s, "rebooting"); err != nil {
		return err
	}
	return a.doReboot(ctx, s)
}

func (a *Agent) doReboot(ctx context.Context, s *State) error {
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: s.Pending.Version, Action: "rebooting",
		Reason: fmt.Sprintf("restarting into %s in slot %s", s.Pending.Version, s.Pending.Slot)}
	if err := saveState(a.cfg.DataDir, s); err != nil {
		return err
	}
	// A real reboot ends this process: tell the owner first.
	if err := a.deliver(ctx, s); err != nil {
		return err
	}
	return a.reboot(ctx)
}

// trial runs the health check in the freshly booted slot.
func (a *Agent) trial(ctx context.Context, s *State) error {
	p := s.Pending
	if err := a.health(ctx); err != nil {
		a.log.Warn("health check failed; rolling back", "version", p.Version, "err", err)
		p.Failure = &Failure{Version: p.Version, ErrorClass: ClassHealthCheck, Reason: err.Error(), At: a.clock.Now().UTC()}
		s.Phase = PhaseReverting
		if err := a.step(s, "reverting"); err != nil {
			return err
		}
		if err := a.slots.Revert(ctx); err != nil {
			return fmt.Errorf("agent: reverting: %w", err)
		}
		if err := a.power("after-revert"); err != nil {
			return err
		}
		return a.doReboot(ctx, s)
	}
	s.Phase = PhaseCommitting
	if err := a.step(s, "committing"); err != nil {
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
	a.enqueue(ctx, p.Product, p.Version, "installed", "")
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
	s.Phase, s.Pending = PhaseIdle, nil
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: p.Version, Action: "installed",
		Reason: fmt.Sprintf("%s is installed and committed in slot %s", p.Version, p.Slot)}
	s.Waiting = stillWaiting(s.Waiting, s.Version)
	a.emit(s, Event{Event: EventInstalled, Key: EventInstalled + "|" + p.Version, Version: p.Version,
		Message: fmt.Sprintf("%s %s is installed and running", p.Product, p.Version)})
	a.log.Info("update committed", "version", p.Version, "slot", p.Slot)
	return a.step(s, "idle-after-commit")
}

// fail records a release as failed after the device is back on its old
// slot, so it is not retried.
func (a *Agent) fail(ctx context.Context, s *State, f *Failure) error {
	p := s.Pending
	a.enqueue(ctx, p.Product, p.Version, "rolled_back", f.ErrorClass)
	s.Failed[p.Version] = *f
	s.Phase, s.Pending = PhaseIdle, nil
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: p.Version, Action: "rolled-back", ErrorClass: f.ErrorClass,
		Reason: fmt.Sprintf("%s was rolled back (%s): %s; running %s again, the release will not be retried", p.Version, f.ErrorClass, f.Reason, s.Version)}
	a.emit(s, Event{Event: EventRolledBack, Key: EventRolledBack + "|" + p.Version, Version: p.Version, ErrorClass: f.ErrorClass,
		Message: fmt.Sprintf("%s %s was rolled back (%s): %s; %s runs again", p.Product, p.Version, f.ErrorClass, f.Reason, s.Version)})
	a.log.Warn("update rolled back", "version", p.Version, "class", f.ErrorClass, "reason", f.Reason)
	return a.step(s, "idle-after-rollback")
}

// abandon gives up an install before the bootloader was armed; the booted
// slot was never touched.
func (a *Agent) abandon(ctx context.Context, s *State, class string, err error) error {
	p := s.Pending
	a.enqueue(ctx, p.Product, p.Version, "failed", class)
	s.Phase, s.Pending = PhaseIdle, nil
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: p.Version, Action: "failed", ErrorClass: class,
		Reason: fmt.Sprintf("installing %s failed (%s): %v", p.Version, class, err)}
	if serr := saveState(a.cfg.DataDir, s); serr != nil {
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
