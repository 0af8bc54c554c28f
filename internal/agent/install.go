package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
)

// install streams the payload into the inactive slot, verifies it, arms
// the bootloader and reboots. A download interrupted in an earlier check
// (phase writing, with saved progress) is resumed if it was for the same
// release, target hash, length and slot by the same route; otherwise it
// starts over. An interrupted delta download (or apply) resumes likewise
// if the same delta is still offered (see savedProgress and installDelta).
func (a *Agent) install(ctx context.Context, s *State, m *release.Manifest, rel, _ *metadata.TargetFiles) error {
	st, err := a.slots.State(ctx)
	if err != nil {
		return fmt.Errorf("agent: reading the bootloader state: %w", err)
	}
	sum := rel.Hashes["sha256"]
	if len(sum) == 0 {
		return a.reject(ctx, s, m.Version, ClassManifestInvalid, errors.New("the target lists no sha256 hash"))
	}
	next := &Pending{Product: m.Product, Version: m.Version, SecurityVersion: m.SecurityVersion,
		Target: release.TargetName(m.Product, m.Version), Length: rel.Length, SHA256: hex.EncodeToString(sum),
		Slot: st.Booted.Other(), From: st.Booted, FromVersion: s.Version}
	if m.Payload.Compression == release.CompressionZstd {
		next.Compression, next.ImageLength, next.ImageSHA256 = m.Payload.Compression, m.Payload.ImageLength, m.Payload.ImageSHA256
	}
	a.savedProgress(s, next, s.delta)
	s.Pending = next
	s.Phase = PhaseWriting
	s.LastCheck.Action, s.LastCheck.Reason = "installing", fmt.Sprintf("writing %s into slot %s", m.Version, s.Pending.Slot)
	if err := a.step(s, "writing"); err != nil {
		return err
	}
	offer := s.delta
	s.delta = nil
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
			if serr := saveState(a.cfg.DataDir, s); serr != nil {
				return serr
			}
			return fmt.Errorf("agent: delta download for %s: %w", m.Version, err)
		}
		if err != nil && ctx.Err() != nil {
			if s.Pending.Delta == nil {
				s.Phase, s.Pending = PhaseIdle, nil
			}
			// else stay in phase writing: the next check resumes the delta.
			if serr := saveState(a.cfg.DataDir, s); serr != nil {
				return serr
			}
			return fmt.Errorf("agent: delta install of %s stopped: %w", m.Version, err)
		}
		s.LastDelta = &DeltaOutcome{Version: m.Version, From: offer.d.From, Used: err == nil, Bytes: n, At: a.clock.Now().UTC()}
		if err == nil {
			a.dropHint()
			s.LastCheck.Reason += fmt.Sprintf("; applied the %d-byte delta from %s", n, offer.d.From)
			s.Phase = PhaseArming
			if err := a.step(s, "arming"); err != nil {
				return err
			}
			return a.arm(ctx, s)
		}
		s.LastDelta.Reason = err.Error()
		s.LastCheck.Reason += fmt.Sprintf("; the delta from %s was not used (%v), downloading the full payload", offer.d.From, err)
		a.log.Warn("delta not used; falling back to the full payload", "version", m.Version, "from", offer.d.From, "err", err)
		if err := saveState(a.cfg.DataDir, s); err != nil {
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
			if serr := saveState(a.cfg.DataDir, s); serr != nil {
				return serr
			}
			return fmt.Errorf("agent: download of %s stopped: %w", m.Version, err)
		}
		class := classify(err)
		if d := p.payloadProgress(); class == ClassNetwork && d != nil {
			// Keep phase writing and the progress: the next check
			// resumes the download where it stopped.
			return a.reject(ctx, s, m.Version, class, fmt.Errorf("download interrupted at %d of %d bytes, resumes at the next check: %w",
				d.Offset, p.Length, err))
		}
		a.dropHint()
		a.dropStagedFile()
		s.Phase, s.Pending = PhaseIdle, nil
		return a.reject(ctx, s, m.Version, class, err)
	}
	a.dropHint()
	s.Phase = PhaseArming
	if err := a.step(s, "arming"); err != nil {
		return err
	}
	return a.arm(ctx, s)
}

// sameDownload reports whether saved progress for prev may continue as
// next: the same target, payload hash and length, into the same slot.
func sameDownload(prev, next *Pending) bool {
	return prev.Target == next.Target && prev.SHA256 == next.SHA256 && prev.Length == next.Length && prev.Slot == next.Slot
}

// reject records a refused release in LastCheck and reports it once.
func (a *Agent) reject(ctx context.Context, s *State, version, class string, err error) error {
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: version, Action: "rejected", ErrorClass: class, Reason: err.Error()}
	if class == ClassNetwork {
		s.LastCheck.Action = "error"
	}
	if reportable(class) && s.LastReported != version+"|"+class {
		a.enqueue(ctx, a.cfg.Product, version, outcomeOf(class), class)
		s.LastReported = version + "|" + class
	}
	if serr := saveState(a.cfg.DataDir, s); serr != nil {
		return serr
	}
	a.log.Warn("install refused", "version", version, "class", class, "err", err)
	return nil
}
