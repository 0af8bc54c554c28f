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

// install streams the payload into the inactive slot, verifies it, arms
// the bootloader and reboots. A download interrupted in an earlier check
// (phase writing, with saved progress) is resumed if it was for the same
// release, target hash, length and slot; otherwise it starts over. So is
// the download of a compressed payload staged in the data directory (see
// downloadZstd and savedStaged). An interrupted
// delta download (or apply) resumes likewise if the same delta is still
// offered (see savedDelta and installDelta).
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
	a.savedProgress(s, next, o.Delta)
	s.Pending = next
	s.LastCheck.Action, s.LastCheck.Reason = "installing", fmt.Sprintf("writing %s into slot %s", m.Version, s.Pending.Slot)
	if err := a.enter(s, stepWrite); err != nil {
		return err
	}
	offer := o.Delta
	if offer != nil && next.payloadProgress() == nil {
		// A resumed full download keeps going; otherwise try the delta
		// first and fall back to the full payload in this same check.
		a.log.Info("installing from a delta", "version", m.Version, "from", offer.d.From, "slot", s.Pending.Slot, "bytes", offer.d.Length)
		n, err := a.installDelta(ctx, s, m, offer)
		if errors.Is(err, ErrPowerLoss) {
			return err
		}
		if err != nil && s.Pending.Delta != nil && errors.Is(err, transfer.ErrDeltaInterrupted) {
			// The link keeps dropping: stay in phase writing with the
			// delta's progress; the next check resumes it.
			s.LastCheck.Reason += fmt.Sprintf("; the delta download from %s was interrupted, the next check resumes it", offer.d.From)
			if serr := a.record(s); serr != nil {
				return serr
			}
			return fmt.Errorf("agent: delta download for %s: %w", m.Version, err)
		}
		if err != nil && ctx.Err() != nil {
			// With the delta's progress, stay in phase writing: the next
			// check resumes the delta.
			serr := a.record(s)
			if s.Pending.Delta == nil {
				serr = a.enter(s, stepDropped)
			}
			if serr != nil {
				return serr
			}
			return fmt.Errorf("agent: delta install of %s stopped: %w", m.Version, err)
		}
		s.LastDelta = &DeltaOutcome{Version: m.Version, From: offer.d.From, Used: err == nil, Bytes: n, At: a.clock.Now().UTC()}
		if err == nil {
			a.dropHint()
			s.LastCheck.Reason += fmt.Sprintf("; applied the %d-byte delta from %s", n, offer.d.From)
			if err := a.enter(s, stepArm); err != nil {
				return err
			}
			return a.arm(ctx, s)
		}
		s.LastDelta.Reason = err.Error()
		s.LastCheck.Reason += fmt.Sprintf("; the delta from %s was not used (%v), downloading the full payload", offer.d.From, err)
		a.log.Warn("delta not used; falling back to the full payload", "version", m.Version, "from", offer.d.From, "err", err)
		if err := a.record(s); err != nil {
			return err
		}
	}
	a.log.Info("installing", "version", m.Version, "slot", s.Pending.Slot, "bytes", rel.Length)
	dl := a.download
	if next.Compression == release.CompressionZstd {
		dl = a.downloadZstd
	}
	if err := dl(ctx, s, rel); err != nil {
		if errors.Is(err, ErrPowerLoss) {
			return err
		}
		p := s.Pending
		if ctx.Err() != nil {
			// Stopped: the progress is saved; the next check resumes.
			if serr := a.record(s); serr != nil {
				return serr
			}
			return fmt.Errorf("agent: download of %s stopped: %w", m.Version, err)
		}
		class := classify(err)
		if d := p.payloadProgress(); class == report.ClassNetwork && d != nil {
			// Keep phase writing and the progress: the next check
			// resumes the download where it stopped.
			a.reject(ctx, s, m.Version, class, fmt.Errorf("download interrupted at %d of %d bytes, resumes at the next check: %w",
				d.Offset, p.Length, err))
			return a.record(s)
		}
		a.dropHint()
		a.dropStagedFile()
		a.reject(ctx, s, m.Version, class, err)
		return a.enter(s, stepDropped)
	}
	a.dropHint()
	if err := a.enter(s, stepArm); err != nil {
		return err
	}
	return a.arm(ctx, s)
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
