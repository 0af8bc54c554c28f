package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/rollout"
)

// Decision is what one check decided, as one value: the release to
// install, or why nothing installs.
type Decision struct {
	// Install is the offer to install now; nil when nothing installs.
	Install *Offer
	// Offered is the version the decision is about: the one installed or
	// refused, else the highest offered ("" when none is).
	Offered string
	// Err refuses the release Offered: a *decisionError, or an error
	// wrapping errMismatch. Install is nil then.
	Err error
	// Held are the candidates an owner rule holds, highest first, with
	// Since set to the time of the decision.
	Held []Waiting
	// Action is "none" or "waiting" (something waits: a held release, a
	// rollout wave, a newer release after a failed one); it is meaningless
	// when Install or Err is set.
	Action string
	// Reason says in plain words why: why the release installs, or why
	// nothing does.
	Reason string
	// Skip is the skip reason of a refusal that is the device's own
	// circumstance rather than a fault (SkipIncompatibleHardware); "" else.
	Skip string
}

// Device is what the decision needs to know about the device itself.
type Device struct {
	Product  string
	Hardware string
}

// choose decides which offered release, if any, the device installs. It
// is pure: it reads s (the running version, the anti-rollback floor, the
// releases failed before, the rollout seed and the owner's choices) and
// changes nothing.
//
// The candidates are the offers, highest version first: normally one
// feature build and the security-only builds published for it (manifest
// security_only_of). Each candidate must pass, in this order, the checks
// that protect the device; the first failure refuses the candidate and
// ends the decision:
//
//  1. both repositories list the target identically (errMismatch);
//  2. its manifest decodes, names the product and version, and lists the
//     device's hardware;
//  3. it is newer than the running version: the highest candidate older
//     than the running version is refused as a downgrade, an equal one
//     means up to date, and a lower candidate ends the search;
//  4. its security version is not below the highest ever committed;
//  5. it did not fail on this device before (else the next candidate is
//     considered);
//  6. the fleet lists a valid rollout rule (and, when it sets one, a
//     maintenance window that parses), and the device's bucket is
//     admitted to the wave (a security-only build rides on its feature
//     build's wave); not yet admitted ends the decision, waiting;
//  7. the update policy (Judge: the owner's consent, adverse impact, the
//     maker's kinds, automatic updates off, postponement) lets it install
//     now; a held candidate is recorded and the next one is considered, so
//     a security-only build installs while its feature build waits.
//
// The end of the maker's support period does not stop installs: releases
// the maker still signs are installed.
func choose(s *State, offers []Offer, policy release.Policy, dev Device, now time.Time) Decision {
	if len(offers) == 0 {
		return Decision{Action: "none", Reason: fmt.Sprintf("no release of %s is offered", dev.Product)}
	}
	var (
		held  []Waiting
		notes []string // why other candidates were passed over
	)
	for i := range offers {
		o := &offers[i]
		v := o.Version
		refused := func(err error) Decision { return Decision{Offered: v, Err: err, Held: held, Action: "none"} }
		if o.Agree != nil {
			return refused(o.Agree)
		}
		if o.ManifestErr != nil {
			return refused(refuse(report.ClassManifestInvalid, o.ManifestErr.Error()))
		}
		m := o.Manifest
		switch {
		case m.Product != dev.Product || m.Version != v:
			return refused(refuse(report.ClassNotApplicable, fmt.Sprintf("the manifest of %s names %s %s", release.TargetName(dev.Product, v), m.Product, m.Version)))
		case !m.SupportsHardware(dev.Hardware):
			d := refused(refuse(report.ClassNotApplicable, fmt.Sprintf("%s %s is not for hardware %s (it supports %v)", m.Product, v, dev.Hardware, m.Hardware)))
			d.Skip = SkipIncompatibleHardware
			return d
		}
		switch c := release.CompareVersions(v, s.Version); {
		case c < 0 && i == 0:
			return refused(refuse(report.ClassRollbackVersion, fmt.Sprintf("the offered %s is older than the running %s; downgrades are refused", v, s.Version)))
		case c == 0 && i == 0:
			return ended(offers, held, notes, fmt.Sprintf("%s is up to date (%s)", dev.Product, v), false)
		case c <= 0:
			// A lower candidate, such as a security-only build of a line the
			// device has left already: nothing below is newer either.
			return ended(offers, held, notes, fmt.Sprintf("no other offered release is newer than the running %s", s.Version), false)
		}
		if m.SecurityVersion < s.MaxSecurityVersion {
			return refused(refuse(report.ClassRollbackSecurity, fmt.Sprintf("%s has security version %d, lower than %d already installed on this device; it would reopen fixed vulnerabilities", v, m.SecurityVersion, s.MaxSecurityVersion)))
		}
		if f, ok := s.Failed[v]; ok {
			notes = append(notes, fmt.Sprintf("%s failed on this device before (%s: %s) and is not retried; waiting for a newer release", v, f.ErrorClass, f.Reason))
			continue
		}
		switch {
		case o.RolloutErr != nil:
			return refused(refuse(report.ClassManifestInvalid, o.RolloutErr.Error()))
		case o.Rollout == nil:
			return refused(refuse(report.ClassManifestInvalid, "the fleet repository lists the release without a rollout rule"))
		case o.WindowErr != nil:
			return refused(refuse(report.ClassManifestInvalid, o.WindowErr.Error()))
		}
		wave := v
		if m.SecurityOnlyOf != "" {
			wave = m.SecurityOnlyOf
		}
		if d := rollout.Admit(*o.Rollout, rollout.Bucket(s.Seed, m.Product, wave)); !d.Admitted {
			return ended(offers, held, notes, d.Reason, true)
		}
		verdict := Judge(m, policy, &s.Owner, now)
		if verdict.Install {
			return Decision{Install: o, Offered: v, Held: held, Action: "none",
				Reason: joinReasons(append([]string{verdict.Reason}, passedOver(held, notes)...))}
		}
		held = append(held, Waiting{Version: v, Kind: m.Kind, Hold: verdict.Hold, Reason: verdict.Reason,
			ImpactReasons: m.Impact.Reasons(), Notes: m.Notes, Advisories: m.Advisories, SecurityOnlyOf: m.SecurityOnlyOf, Since: now})
	}
	return ended(offers, held, notes, "", false)
}

// ended is the decision of a pass over the candidates that installs
// nothing and refuses nothing: stop says why the pass ended, wave that it
// waits for a rollout wave.
func ended(offers []Offer, held []Waiting, notes []string, stop string, wave bool) Decision {
	passed := passedOver(held, notes)
	d := Decision{Offered: offers[0].Version, Held: held, Action: "none", Reason: joinReasons(append(passed, stop))}
	if wave || len(passed) > 0 {
		d.Action = "waiting"
	}
	return d
}

// passedOver says why candidates were passed over: the held ones first.
func passedOver(held []Waiting, notes []string) []string {
	var out []string
	for _, w := range held {
		out = append(out, w.Reason)
	}
	return append(out, notes...)
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
