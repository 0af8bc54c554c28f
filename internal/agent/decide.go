package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/rollout"
)

// checkAndInstall refreshes the repositories, decides, and installs when
// the decision says so. Refusals are recorded in state.json (LastCheck) and
// reported once; they are not errors of the agent.
func (a *Agent) checkAndInstall(ctx context.Context, s *State) (*Check, error) {
	chk := &Check{At: a.clock.Now().UTC(), Action: "none"}
	target, rel, fleet, err := a.decide(ctx, s, chk)
	if s.Phase == PhaseWriting && (err != nil || target == nil) {
		a.dropPartial(s, err)
	}
	if err != nil {
		class := classify(err)
		chk.Action, chk.ErrorClass = "rejected", class
		if class == report.ClassNetwork {
			chk.Action = "error"
		}
		chk.Reason = err.Error()
		if reportable(class) {
			key := chk.Offered + "|" + string(class)
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

// dropPartial gives up a download interrupted in an earlier check, because
// this check installs nothing (err nil) or was refused (err). A network
// error keeps it: the server may be restarting, and the next check can
// still resume.
func (a *Agent) dropPartial(s *State, err error) {
	if err != nil && classify(err) == report.ClassNetwork {
		a.log.Info("keeping the interrupted download for the next check", "version", s.Pending.Version, "err", err)
		return
	}
	a.log.Info("dropping the interrupted download: this check does not install it", "version", s.Pending.Version, "err", err)
	s.Phase, s.Pending = PhaseIdle, nil
	a.dropHint()
	a.dropDeltaFile()
	a.dropStagedFile()
}

// decide refreshes both repositories and returns the release to install,
// or nil with chk explaining why nothing is installed, or an error for a
// refused release.
//
// The candidates are all versions the fleet offers for the product,
// highest first: normally one feature build and the security-only builds
// published for it (manifest security_only_of). Each candidate must pass
// the checks that protect the device (agreement of both repositories,
// product, hardware, newer than the running version, security version not
// lower, rollout admitted); a failure of those ends the decision. Then the
// update policy (Judge) decides: a release held for the owner is recorded
// in State.Waiting with what `uptrust-agent consent` shows, the owner is
// notified, and the next candidate is considered; so a security-only build
// installs while its feature build waits for consent.
//
// The two repositories are refreshed one after the other, so a publication
// that lands between the two requests makes them disagree once, through no
// fault of either. When the agreement check fails (errMismatch), decide
// refreshes both once more and decides again; a second disagreement is
// refused.
func (a *Agent) decide(ctx context.Context, s *State, chk *Check) (*release.Manifest, *metadata.TargetFiles, *metadata.TargetFiles, error) {
	var (
		p          pass
		m          *release.Manifest
		rel, fleet *metadata.TargetFiles
		versions   []string
		now        time.Time
		err        error
	)
	s.delta = nil
	for attempt := 0; ; attempt++ {
		var r *repos
		r, err = a.refresh(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		now = a.clock.Now().UTC()
		s.LastRefresh = &now
		a.acceptSupport(ctx, r, s, now)
		versions = r.offered(a.cfg.Product)
		s.Offered = versions
		if len(versions) == 0 {
			s.Waiting = nil
			chk.Reason = fmt.Sprintf("no release of %s is offered", a.cfg.Product)
			return nil, nil, nil, nil
		}
		p = pass{}
		m, rel, fleet, err = a.choose(s, r, versions, chk, now, &p)
		if attempt == 0 && errors.Is(err, errMismatch) {
			a.log.Info("the repositories disagree; refreshing both once more in case a release was published between the two requests", "err", err)
			continue
		}
		break
	}
	s.Waiting = a.hold(s, p.held, now)
	if err != nil {
		return nil, nil, nil, err
	}
	var passed []string
	for _, w := range p.held {
		passed = append(passed, w.Reason)
	}
	passed = append(passed, p.notes...)
	if m != nil {
		chk.Offered = m.Version
		chk.Reason = joinReasons(append([]string{p.stop}, passed...))
		return m, rel, fleet, nil
	}
	chk.Offered = versions[0]
	if p.waiting || len(passed) > 0 {
		chk.Action = "waiting"
	}
	chk.Reason = joinReasons(append(passed, p.stop))
	return nil, nil, nil, nil
}

// pass collects what choose found on its way through the candidates.
type pass struct {
	// held are the candidates an owner rule holds, highest first.
	held []Waiting
	// notes say why other candidates were passed over.
	notes []string
	// stop says why the pass ended; when a release was chosen, why it
	// installs.
	stop string
	// waiting is true when the pass ended waiting for something other than
	// a newer release (a rollout wave).
	waiting bool
}

// choose walks the candidates, highest first, as decide describes. It sets
// chk.Offered to the candidate under examination, so that a refusal names
// it.
func (a *Agent) choose(s *State, r *repos, versions []string, chk *Check, now time.Time, p *pass) (*release.Manifest, *metadata.TargetFiles, *metadata.TargetFiles, error) {
	policy := s.Support.EffectivePolicy()
	for i, v := range versions {
		chk.Offered = v
		target := release.TargetName(a.cfg.Product, v)
		rel, fleet, err := r.agreed(target)
		if err != nil {
			return nil, nil, nil, err
		}
		m, err := release.ManifestFromCustom(rel.Custom)
		if err != nil {
			return nil, nil, nil, refuse(report.ClassManifestInvalid, err.Error())
		}
		switch {
		case m.Product != a.cfg.Product || m.Version != v:
			return nil, nil, nil, refuse(report.ClassNotApplicable, fmt.Sprintf("the manifest of %s names %s %s", target, m.Product, m.Version))
		case !m.SupportsHardware(a.cfg.Hardware):
			return nil, nil, nil, refuse(report.ClassNotApplicable, fmt.Sprintf("%s %s is not for hardware %s (it supports %v)", m.Product, v, a.cfg.Hardware, m.Hardware))
		}
		switch c := release.CompareVersions(v, s.Version); {
		case c < 0 && i == 0:
			return nil, nil, nil, refuse(report.ClassRollbackVersion, fmt.Sprintf("the offered %s is older than the running %s; downgrades are refused", v, s.Version))
		case c == 0 && i == 0:
			p.stop = fmt.Sprintf("%s is up to date (%s)", a.cfg.Product, v)
			return nil, nil, nil, nil
		case c <= 0:
			// A lower candidate, such as a security-only build of a line the
			// device has left already: nothing below is newer either.
			p.stop = fmt.Sprintf("no other offered release is newer than the running %s", s.Version)
			return nil, nil, nil, nil
		}
		if m.SecurityVersion < s.MaxSecurityVersion {
			return nil, nil, nil, refuse(report.ClassRollbackSecurity, fmt.Sprintf("%s has security version %d, lower than %d already installed on this device; it would reopen fixed vulnerabilities", v, m.SecurityVersion, s.MaxSecurityVersion))
		}
		if f, ok := s.Failed[v]; ok {
			p.notes = append(p.notes, fmt.Sprintf("%s failed on this device before (%s: %s) and is not retried; waiting for a newer release", v, f.ErrorClass, f.Reason))
			continue
		}
		var fc rollout.Custom
		if fleet.Custom != nil {
			if err := json.Unmarshal(*fleet.Custom, &fc); err != nil {
				return nil, nil, nil, refuse(report.ClassManifestInvalid, fmt.Sprintf("fleet rollout rule: %v", err))
			}
		}
		if fc.Uptrust.Rollout == nil {
			return nil, nil, nil, refuse(report.ClassManifestInvalid, "the fleet repository lists the release without a rollout rule")
		}
		// A security-only build rides on its feature build's wave: the
		// devices admitted to one are those admitted to the other.
		wave := v
		if m.SecurityOnlyOf != "" {
			wave = m.SecurityOnlyOf
		}
		if d := rollout.Admit(*fc.Uptrust.Rollout, rollout.Bucket(s.Seed, m.Product, wave)); !d.Admitted {
			p.stop, p.waiting = d.Reason, true
			return nil, nil, nil, nil
		}
		verdict := Judge(m, policy, &s.Owner, now)
		if verdict.Install {
			p.stop = verdict.Reason
			s.delta = a.offerDelta(r, m, s.Version)
			return m, rel, fleet, nil
		}
		p.held = append(p.held, Waiting{Version: v, Kind: m.Kind, Hold: verdict.Hold, Reason: verdict.Reason,
			ImpactReasons: m.Impact.Reasons(), Notes: m.Notes, Advisories: m.Advisories, SecurityOnlyOf: m.SecurityOnlyOf, Since: now})
	}
	return nil, nil, nil, nil
}

// hold returns the new waiting list: held, keeping the time each release
// was first found waiting, and queues a needs-consent notification for
// each release (once per version).
func (a *Agent) hold(s *State, held []Waiting, now time.Time) []Waiting {
	since := map[string]time.Time{}
	for _, w := range s.Waiting {
		since[w.Version] = w.Since
	}
	for i := range held {
		if t, ok := since[held[i].Version]; ok {
			held[i].Since = t
		}
		a.emit(s, waitingEvent(held[i]))
	}
	return held
}

// joinReasons joins the non-empty reasons into one sentence list.
func joinReasons(rs []string) string {
	var out []string
	for _, r := range rs {
		if r != "" {
			out = append(out, r)
		}
	}
	return strings.Join(out, "; ")
}

// acceptSupport verifies the product's support declaration from the
// release repository and accepts it unless it ends earlier than the one
// accepted before (release.CheckExtension). A shortened declaration is
// kept out, recorded in State.SupportRefused, reported (rejected,
// support-shortened) and notified, once per distinct declaration; it does
// not stop updates.
func (a *Agent) acceptSupport(ctx context.Context, r *repos, s *State, now time.Time) {
	sup, err := r.support(a.cfg.Product)
	if err != nil {
		a.log.Warn("support declaration", "err", err)
		return
	}
	if sup == nil {
		return
	}
	if sup.Product != a.cfg.Product {
		a.log.Warn("support declaration names another product; ignored", "product", sup.Product)
		return
	}
	if err := release.CheckExtension(s.Support, sup); err != nil {
		a.log.Warn("support declaration refused", "err", err)
		prev := s.SupportRefused
		if prev != nil && prev.OfferedUntil == sup.Until && prev.OfferedIssued.Equal(sup.Issued) {
			return
		}
		s.SupportRefused = &SupportRefusal{OfferedUntil: sup.Until, OfferedIssued: sup.Issued, AcceptedUntil: s.Support.Until, At: now}
		a.enqueue(ctx, a.cfg.Product, s.Version, outcomeOf(report.ClassSupportShortened), report.ClassSupportShortened)
		a.emit(s, Event{Event: EventSupportShortened, Version: s.Version,
			Key:          EventSupportShortened + "|" + sup.Until + "|" + sup.Issued.UTC().Format(time.RFC3339Nano),
			SupportUntil: s.Support.Until, OfferedUntil: sup.Until, Contact: s.Support.Contact,
			Message: fmt.Sprintf("the maker signed a support declaration for %s ending on %s, earlier than the %s accepted before; the device refused it and keeps the earlier promise",
				a.cfg.Product, sup.Until, s.Support.Until)})
		return
	}
	s.Support = sup
	s.SupportRefused = nil
}
