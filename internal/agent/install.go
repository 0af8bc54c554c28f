package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// install writes the chosen release into the inactive slot, verifies it,
// arms the bootloader and reboots: it enters phase writing with the new
// Pending (continuing an interrupted download of the same release into the
// same slot by the same route, see savedProgress), writes the image from
// the release's delta when one is offered and usable (installFromDelta)
// or else from the full payload (writePayload), and settles the outcome.
func (a *Agent) install(ctx context.Context, s *State, o *Offer) error {
	m, rel := o.Manifest, o.Release
	st, err := a.slots.State(ctx)
	if err != nil {
		return fmt.Errorf("agent: reading the bootloader state: %w", err)
	}
	sum := rel.Hashes["sha256"]
	if len(sum) == 0 {
		a.reject(ctx, s, m.Version, report.ClassManifestInvalid, errors.New("the target lists no sha256 hash"))
		return a.record(s)
	}
	next := &Pending{Product: m.Product, Version: m.Version, SecurityVersion: m.SecurityVersion,
		Target: release.TargetName(m.Product, m.Version), Length: rel.Length, SHA256: hex.EncodeToString(sum),
		Slot: st.Booted.Other(), From: st.Booted, FromVersion: s.Version}
	if m.Payload.Compression == release.CompressionZstd {
		next.Compression, next.ImageLength, next.ImageSHA256 = m.Payload.Compression, m.Payload.ImageLength, m.Payload.ImageSHA256
	}
	if p := s.Pending; s.Phase == PhaseWriting && p != nil && p.Ready && sameDownload(p, next) {
		if done, err := a.installReady(ctx, s); done || err != nil {
			return err
		}
	}
	a.savedProgress(s, next, o.Delta)
	s.Pending = next
	s.LastCheck.Action, s.LastCheck.Reason = "installing", fmt.Sprintf("writing %s into slot %s", m.Version, s.Pending.Slot)
	if err := a.enter(s, stepWrite); err != nil {
		return err
	}
	// A resumed full download keeps going; otherwise try the delta first
	// and fall back to the full payload in this same check.
	var deltaFailed *DeltaOutcome
	if o.Delta != nil && next.payloadProgress() == nil {
		done, err := a.installFromDelta(ctx, s, m, o.Delta)
		if done || err != nil {
			return err
		}
		deltaFailed = s.LastDelta
	}
	a.log.Info("installing", "version", m.Version, "slot", s.Pending.Slot, "bytes", rel.Length)
	return a.settlePayload(ctx, s, deltaFailed, a.writePayload(ctx, s, o))
}

// writePayload writes the image into the slot from the full payload.
func (a *Agent) writePayload(ctx context.Context, s *State, o *Offer) error {
	if s.Pending.Compression == release.CompressionZstd {
		return a.downloadZstd(ctx, s, o.Release)
	}
	return a.download(ctx, s, o.Release)
}

// armWritten arms the bootloader for the slot that now holds the verified
// image, and reboots; outside the maintenance window it leaves the image
// waiting in the slot instead (waitForWindow).
func (a *Agent) armWritten(ctx context.Context, s *State) error {
	a.dropHint()
	if closed, why := windowClosed(s, a.clock.Now()); closed {
		return a.waitForWindow(ctx, s, why)
	}
	a.postEvent(ctx, deviceEvent{Kind: EvInstalling, Version: s.Pending.Version})
	if err := a.enter(s, stepArm); err != nil {
		return err
	}
	return a.arm(ctx, s)
}

// settlePayload ends the full payload's route with its result err: arm on
// success; on a power loss, stop where it is; when the agent is stopped,
// keep the saved progress for the next check; on a dropped link with saved
// progress, stay in phase writing and say so (reported as a network
// failure); on anything else refuse the release and give up the install.
// The reason names the payload's target and what to do, and, when the
// release's delta failed first in this install (deltaFailed), that too.
func (a *Agent) settlePayload(ctx context.Context, s *State, deltaFailed *DeltaOutcome, err error) error {
	p := s.Pending
	switch {
	case err == nil:
		return a.armWritten(ctx, s)
	case errors.Is(err, ErrPowerLoss):
		return err
	case ctx.Err() != nil:
		if serr := a.record(s); serr != nil {
			return serr
		}
		return fmt.Errorf("agent: download of %s stopped: %w", p.Version, err)
	}
	class := classify(err)
	if d := p.payloadProgress(); class == report.ClassNetwork && d != nil {
		err = fmt.Errorf("download interrupted at %d of %d bytes, resumes at the next check: %w", d.Offset, p.Length, err)
		if deltaFailed != nil {
			err = fmt.Errorf("the delta from %s was not used (%s), then the full payload's %w", deltaFailed.From, deltaFailed.Reason, err)
		}
		a.reject(ctx, s, p.Version, class, err)
		return a.record(s)
	}
	a.dropStagedFile()
	a.dropHint()
	a.reject(ctx, s, p.Version, class, payloadFailure(p.Target, deltaFailed, class, err))
	return a.enter(s, stepDropped)
}

// installFromDelta tries to write the image from the delta o (see
// installDelta). It reports done when the check ends here: the image was
// written and the slot armed, or the delta's download was interrupted or
// stopped with its progress kept for the next check, or power was lost.
// Otherwise (done false, err nil) the delta was not used, the reason is
// recorded, and the caller goes on with the full payload.
func (a *Agent) installFromDelta(ctx context.Context, s *State, m *release.Manifest, o *deltaOffer) (done bool, err error) {
	a.log.Info("installing from a delta", "version", m.Version, "from", o.d.From, "slot", s.Pending.Slot, "bytes", o.d.Length)
	n, err := a.installDelta(ctx, s, m, o)
	switch {
	case errors.Is(err, ErrPowerLoss):
		return true, err
	case err != nil && s.Pending.Delta != nil && errors.Is(err, transfer.ErrDeltaInterrupted):
		// The link keeps dropping: stay in phase writing with the delta's
		// progress; the next check resumes it.
		s.LastCheck.Reason += fmt.Sprintf("; the delta download from %s was interrupted, the next check resumes it", o.d.From)
		if serr := a.record(s); serr != nil {
			return true, serr
		}
		return true, fmt.Errorf("agent: delta download for %s: %w", m.Version, err)
	case err != nil && ctx.Err() != nil:
		// With the delta's progress, stay in phase writing: the next check
		// resumes the delta; without, give the install up.
		serr := a.record(s)
		if s.Pending.Delta == nil {
			serr = a.enter(s, stepDropped)
		}
		if serr != nil {
			return true, serr
		}
		return true, fmt.Errorf("agent: delta install of %s stopped: %w", m.Version, err)
	}
	s.LastDelta = &DeltaOutcome{Version: m.Version, From: o.d.From, Used: err == nil, Bytes: n, At: a.clock.Now().UTC()}
	if err == nil {
		s.LastCheck.Reason += fmt.Sprintf("; applied the %d-byte delta from %s", n, o.d.From)
		return true, a.armWritten(ctx, s)
	}
	s.LastDelta.Reason = o.d.Target + ": " + err.Error()
	s.LastCheck.Reason += fmt.Sprintf("; the delta from %s was not used (%v), downloading the full payload", o.d.From, err)
	a.log.Warn("delta not used; falling back to the full payload", "version", m.Version, "from", o.d.From, "err", err)
	return false, a.record(s)
}

// sameDownload reports whether saved progress for prev may continue as
// next: the same target, payload hash and length, into the same slot.
func sameDownload(prev, next *Pending) bool {
	return prev.Target == next.Target && prev.SHA256 == next.SHA256 && prev.Length == next.Length && prev.Slot == next.Slot
}

// reject records a refused release in LastCheck and reports it once; the
// caller persists it.
func (a *Agent) reject(ctx context.Context, s *State, version string, class report.Class, err error) {
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: version, Action: "rejected", ErrorClass: class, Reason: err.Error()}
	if class == report.ClassNetwork {
		s.LastCheck.Action = "error"
	}
	if reportable(class) && s.LastReported != version+"|"+string(class) {
		a.enqueue(ctx, a.cfg.Product, version, outcomeOf(class), class)
		s.LastReported = version + "|" + string(class)
	}
	a.log.Warn("install refused", "version", version, "class", class, "err", err)
}
