package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// checkAndInstall refreshes the repositories, decides, and installs when
// the decision says so. Refusals are recorded in state.json (LastCheck) and
// reported once; they are not errors of the agent.
func (a *Agent) checkAndInstall(ctx context.Context, s *State) (*Check, error) {
	chk := &Check{At: a.clock.Now().UTC(), Action: "none"}
	if a.cfg.Managed() && a.conditionalCheck(ctx, s, chk.At) {
		// The fleet view verified at the last full check is still the
		// server's (quick.go): nothing changed, the check ends here.
		chk.Reason = "the fleet view is unchanged since the last full check (304 Not Modified)"
		if s.LastCheck != nil {
			chk.Offered = s.LastCheck.Offered
		}
		s.LastCheck = chk
		return chk, a.record(s)
	}
	d, err := a.decide(ctx, s, a.refTime(ctx, s))
	if err == nil {
		err = d.Err
	}
	chk.Offered = d.Offered
	if s.Phase == PhaseWriting && (err != nil || d.Install == nil) {
		if derr := a.dropPartial(s, err); derr != nil {
			return chk, derr
		}
	}
	if err == nil || d.Err != nil {
		// The check reached the server: say which offered releases it does
		// not install and why (managed mode; once per version and reason).
		skips := heldSkips(d.Held)
		if d.Skip != "" {
			skips = append(skips, skip{Version: d.Offered, Reason: d.Skip})
		}
		var installing string
		if d.Install != nil {
			installing = d.Install.Version
		}
		a.skipEvents(ctx, s, skips, installing)
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
					version = report.VersionUnknown
				}
				a.enqueue(ctx, a.cfg.Product, version, outcomeOf(class), class)
				s.LastReported = key
			}
		}
		s.LastCheck = chk
		if serr := a.record(s); serr != nil {
			return chk, serr
		}
		a.log.Warn("update refused", "class", class, "reason", chk.Reason)
		return chk, nil
	}
	chk.Action, chk.Reason = d.Action, d.Reason
	s.LastCheck = chk
	if d.Install == nil {
		return chk, a.record(s)
	}
	a.offeredEvent(ctx, s, d.Install.Version)
	err = a.install(ctx, s, d.Install)
	return s.LastCheck, err
}

// dropPartial gives up a download interrupted in an earlier check, because
// this check installs nothing (err nil) or was refused (err). A network
// error keeps it: the server may be restarting, and the next check can
// still resume.
func (a *Agent) dropPartial(s *State, err error) error {
	if err != nil && classify(err) == report.ClassNetwork {
		a.log.Info("keeping the interrupted download for the next check", "version", s.Pending.Version, "err", err)
		return nil
	}
	a.log.Info("dropping the interrupted download: this check does not install it", "version", s.Pending.Version, "err", err)
	a.dropHint()
	a.dropDeltaFile()
	a.dropStagedFile()
	return a.enter(s, stepDropped)
}

// decide refreshes both repositories, gathers the offers and decides
// among them (choose), all at the reference time now (see refTime). It
// records in s what the refresh brought: the time,
// the offered versions, the support declaration (acceptSupport) and the
// releases held for the owner (hold, which notifies the owner). A refresh
// that fails returns its error; a refused release is the Decision's Err.
//
// The two repositories are refreshed one after the other, so a publication
// that lands between the two requests makes them disagree once, through no
// fault of either. When the agreement check fails (errMismatch), decide
// refreshes both once more and decides again; a second disagreement is
// refused.
func (a *Agent) decide(ctx context.Context, s *State, now time.Time) (Decision, error) {
	now = now.UTC()
	s.FullRefresh = nil
	for attempt := 0; ; attempt++ {
		r, err := a.refresh(ctx, now)
		if err != nil {
			return Decision{}, err
		}
		if len(r.recovered) > 0 {
			s.Recovered = &Recovery{At: now, What: strings.Join(r.recovered, "; ")}
			a.reportRecovery(ctx, s)
		}
		s.LastRefresh = &now
		a.acceptSupport(ctx, r, s, now)
		offers := gatherOffers(r, a.cfg.Product, s.Version)
		s.Offered = versions(offers)
		d := choose(s, offers, s.Support.EffectivePolicy(), Device{Product: a.cfg.Product, Hardware: a.cfg.Hardware}, now)
		if attempt == 0 && errors.Is(d.Err, errMismatch) {
			a.log.Info("the repositories disagree; refreshing both once more in case a release was published between the two requests", "err", d.Err)
			continue
		}
		s.Waiting = a.hold(s, d.Held, now)
		keepWindow(s, offers, d, a.clock.Now())
		a.recordFull(s, r, a.clock.Now().UTC(), d.Err == nil && d.Install == nil && d.Skip == "" && len(d.Held) == 0 && !pendingWork(s))
		return d, nil
	}
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
