package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/release"
)

// install streams the payload into the inactive slot, verifies it, arms
// the bootloader and reboots.
func (a *Agent) install(ctx context.Context, s *State, m *release.Manifest, rel, _ *metadata.TargetFiles) error {
	st, err := a.slots.State(ctx)
	if err != nil {
		return fmt.Errorf("agent: reading the bootloader state: %w", err)
	}
	sum := rel.Hashes["sha256"]
	if len(sum) == 0 {
		return a.reject(ctx, s, m.Version, ClassManifestInvalid, errors.New("the target lists no sha256 hash"))
	}
	s.Pending = &Pending{Product: m.Product, Version: m.Version, SecurityVersion: m.SecurityVersion,
		Target: release.TargetName(m.Product, m.Version), Length: rel.Length, SHA256: hex.EncodeToString(sum),
		Slot: st.Booted.Other(), From: st.Booted, FromVersion: s.Version}
	s.Phase = PhaseWriting
	s.LastCheck.Action, s.LastCheck.Reason = "installing", fmt.Sprintf("writing %s into slot %s", m.Version, s.Pending.Slot)
	if err := a.step(s, "writing"); err != nil {
		return err
	}
	a.log.Info("installing", "version", m.Version, "slot", s.Pending.Slot, "bytes", rel.Length)
	if err := a.writeSlot(ctx, s.Pending, rel); err != nil {
		if errors.Is(err, ErrPowerLoss) {
			return err
		}
		class := classify(err)
		s.Phase, s.Pending = PhaseIdle, nil
		return a.reject(ctx, s, m.Version, class, err)
	}
	s.Phase = PhaseArming
	if err := a.step(s, "arming"); err != nil {
		return err
	}
	return a.arm(ctx, s)
}

func (a *Agent) writeSlot(ctx context.Context, p *Pending, rel *metadata.TargetFiles) error {
	url := a.cfg.Server + "/repo/release/targets/" + targetFileName(p.Target, p.SHA256)
	body, err := a.http.Get(ctx, url, p.Length)
	if err != nil {
		return err
	}
	defer body.Close()
	w, err := a.slots.OpenWriter(ctx, p.Slot)
	if err != nil {
		return fmt.Errorf("opening slot %s: %w", p.Slot, err)
	}
	hashes := map[string][]byte{}
	for alg, h := range rel.Hashes {
		hashes[alg] = h
	}
	_, err = payload.Install(ctx, body, powerWriter{payload.Writeback(w), a.power}, p.Length, hashes)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing slot %s: %w", p.Slot, cerr)
	}
	return err
}

// targetFileName is the consistent-snapshot file name of a target.
func targetFileName(target, sha string) string {
	for i := len(target) - 1; i >= 0; i-- {
		if target[i] == '/' {
			return target[:i+1] + sha + "." + target[i+1:]
		}
	}
	return sha + "." + target
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

// powerWriter lets tests cut power in the middle of writing a slot.
type powerWriter struct {
	w interface {
		Write([]byte) (int, error)
		Sync() error
	}
	power func(string) error
}

func (p powerWriter) Write(b []byte) (int, error) {
	if err := p.power("mid-write"); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

func (p powerWriter) Sync() error { return p.w.Sync() }
