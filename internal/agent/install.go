package agent

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
)

// fleetCustom is the fleet target's custom metadata.
type fleetCustom struct {
	Uptrust struct {
		Rollout *rollout.Rule `json:"rollout"`
	} `json:"uptrust"`
}

// checkAndInstall refreshes the repositories, decides, and installs when
// the decision says so. Refusals are recorded in state.json (LastCheck) and
// reported once; they are not errors of the agent.
func (a *Agent) checkAndInstall(ctx context.Context, s *State) (*Check, error) {
	chk := &Check{At: a.clock.Now().UTC(), Action: "none"}
	target, rel, fleet, err := a.decide(ctx, s, chk)
	if err != nil {
		class := classify(err)
		chk.Action, chk.ErrorClass = "rejected", class
		if class == ClassNetwork {
			chk.Action = "error"
		}
		chk.Reason = err.Error()
		if reportable(class) {
			key := chk.Offered + "|" + class
			if s.LastReported != key {
				version := chk.Offered
				if version == "" {
					version = "unknown"
				}
				a.enqueue(ctx, a.cfg.Product, version, outcomeOf(class), class)
				s.LastReported = key
			}
		}
		s.LastCheck = chk
		if serr := saveState(a.cfg.DataDir, s); serr != nil {
			return chk, serr
		}
		a.log.Warn("update refused", "class", class, "reason", chk.Reason)
		return chk, nil
	}
	s.LastCheck = chk
	if target == nil {
		return chk, saveState(a.cfg.DataDir, s)
	}
	err = a.install(ctx, s, target, rel, fleet)
	return s.LastCheck, err
}

// decide returns the release to install, or nil with chk explaining why
// nothing is installed, or an error for a refused release.
func (a *Agent) decide(ctx context.Context, s *State, chk *Check) (*release.Manifest, *metadata.TargetFiles, *metadata.TargetFiles, error) {
	r, err := a.refresh(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if sup, err := r.support(a.cfg.Product); err != nil {
		a.log.Warn("support declaration", "err", err)
	} else if sup != nil {
		if err := release.CheckExtension(s.Support, sup); err != nil {
			// Keep the longer, earlier-accepted declaration.
			a.log.Warn("support declaration refused", "err", err)
		} else {
			s.Support = sup
		}
	}
	versions := r.offered(a.cfg.Product)
	if len(versions) == 0 {
		chk.Reason = fmt.Sprintf("no release of %s is offered", a.cfg.Product)
		return nil, nil, nil, nil
	}
	v := versions[0]
	chk.Offered = v
	target := release.TargetName(a.cfg.Product, v)
	rel, fleet, err := r.agreed(target)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := release.ManifestFromCustom(rel.Custom)
	if err != nil {
		return nil, nil, nil, refuse(ClassManifestInvalid, err.Error())
	}
	switch {
	case m.Product != a.cfg.Product || m.Version != v:
		return nil, nil, nil, refuse(ClassNotApplicable, fmt.Sprintf("the manifest of %s names %s %s", target, m.Product, m.Version))
	case !m.SupportsHardware(a.cfg.Hardware):
		return nil, nil, nil, refuse(ClassNotApplicable, fmt.Sprintf("%s %s is not for hardware %s (it supports %v)", m.Product, v, a.cfg.Hardware, m.Hardware))
	}
	switch c := release.CompareVersions(v, s.Version); {
	case c == 0:
		chk.Reason = fmt.Sprintf("%s is up to date (%s)", a.cfg.Product, v)
		return nil, nil, nil, nil
	case c < 0:
		return nil, nil, nil, refuse(ClassRollbackVersion, fmt.Sprintf("the offered %s is older than the running %s; downgrades are refused", v, s.Version))
	}
	if m.SecurityVersion < s.MaxSecurityVersion {
		return nil, nil, nil, refuse(ClassRollbackSecurity, fmt.Sprintf("%s has security version %d, lower than %d already installed on this device; it would reopen fixed vulnerabilities", v, m.SecurityVersion, s.MaxSecurityVersion))
	}
	if f, ok := s.Failed[v]; ok {
		chk.Action = "waiting"
		chk.Reason = fmt.Sprintf("%s failed on this device before (%s: %s) and is not retried; waiting for a newer release", v, f.ErrorClass, f.Reason)
		return nil, nil, nil, nil
	}
	var fc fleetCustom
	if fleet.Custom != nil {
		if err := json.Unmarshal(*fleet.Custom, &fc); err != nil {
			return nil, nil, nil, refuse(ClassManifestInvalid, fmt.Sprintf("fleet rollout rule: %v", err))
		}
	}
	if fc.Uptrust.Rollout == nil {
		return nil, nil, nil, refuse(ClassManifestInvalid, "the fleet repository lists the release without a rollout rule")
	}
	if d := rollout.Admit(*fc.Uptrust.Rollout, rollout.Bucket(s.Seed, m.Product, v)); !d.Admitted {
		chk.Action = "waiting"
		chk.Reason = d.Reason
		return nil, nil, nil, nil
	}
	return m, rel, fleet, nil
}

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
