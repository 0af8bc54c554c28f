package agent

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/release"
)

// Holds: the owner rules that keep a release from installing by itself.
// They are persisted (Waiting.Hold) and shown in status; never renumber or
// reuse one.
const (
	// HoldAdverse: the release collects more data, adds data recipients or
	// removes functionality (release.Impact.Adverse).
	HoldAdverse = "adverse-impact"
	// HoldKind: the maker's policy does not install this kind
	// automatically (release.Policy.AutoInstall).
	HoldKind = "kind-not-automatic"
	// HoldAutoOff: the owner turned automatic updates off.
	HoldAutoOff = "auto-updates-off"
	// HoldPostponed: the owner postponed automatic updates.
	HoldPostponed = "postponed"
)

// Verdict is what the owner's and maker's rules say about one release.
type Verdict struct {
	// Install is true when the release may install now.
	Install bool
	// Hold is the rule that holds it; empty when Install.
	Hold string
	// Reason says in plain words which rule applied.
	Reason string
}

// Judge applies the update policy to a release that passed every other
// check of the agent (agreement of both repositories, product, hardware,
// newer version, security version, not failed before, rollout admitted).
// The rules, in order:
//
//  1. a release the owner consented to installs;
//  2. a release with adverse impact waits for consent;
//  3. a kind the maker's policy does not install automatically waits for
//     consent;
//  4. while the owner has automatic updates off, every release waits;
//  5. while the owner's postponement lasts, every release waits;
//  6. anything else installs.
//
// Judge is pure: the caller passes the time.
func Judge(m *release.Manifest, maker release.Policy, o *Owner, now time.Time) Verdict {
	v := m.Version
	if at, ok := o.Consents[v]; ok {
		return Verdict{Install: true, Reason: fmt.Sprintf("the owner consented to %s on %s", v, day(at))}
	}
	consent := fmt.Sprintf("run uptrust-agent consent %s to install", v)
	if m.Impact.Adverse() {
		return Verdict{Hold: HoldAdverse, Reason: fmt.Sprintf("%s waits for the owner's consent because it %s; %s",
			v, strings.Join(m.Impact.Reasons(), "; it "), consent)}
	}
	if !maker.Auto(m.Kind) {
		return Verdict{Hold: HoldKind, Reason: fmt.Sprintf("%s is a %s release and the maker's policy installs only %s releases automatically; %s",
			v, m.Kind, kinds(maker.AutoInstall), consent)}
	}
	if o.AutoUpdatesOffSince != nil {
		return Verdict{Hold: HoldAutoOff, Reason: fmt.Sprintf("automatic updates are off since %s (owner's choice); %s",
			day(*o.AutoUpdatesOffSince), consent)}
	}
	if o.PostponedUntil != nil && now.Before(*o.PostponedUntil) {
		return Verdict{Hold: HoldPostponed, Reason: fmt.Sprintf("updates are postponed by the owner until %s; %s now",
			o.PostponedUntil.UTC().Format(timeFormat), consent)}
	}
	why := fmt.Sprintf("%s is a %s release without adverse impact, installed automatically under the maker's policy", v, m.Kind)
	if m.SecurityOnlyOf != "" {
		why = fmt.Sprintf("%s is the security-only build of %s, installed automatically under the maker's policy", v, m.SecurityOnlyOf)
	}
	return Verdict{Install: true, Reason: why}
}

// ErrPostponeLimit is returned when a postponement would exceed the
// maker's limit.
var ErrPostponeLimit = errors.New("agent: postponement refused")

// PostponeUntil returns the end of a postponement of d asked at now, and
// the start the maker's limit counts from: the start of a postponement
// still in force, else now. It refuses (ErrPostponeLimit) a postponement
// that would end more than MaxPostponeDays after that start. Pure.
func PostponeUntil(maker release.Policy, o *Owner, now time.Time, d time.Duration) (until, since time.Time, err error) {
	if d <= 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("agent: postpone by %v: want a positive duration such as 72h or 7d", d)
	}
	since = now
	if o.PostponedUntil != nil && now.Before(*o.PostponedUntil) && o.PostponedSince != nil {
		since = *o.PostponedSince
	}
	until = now.Add(d)
	limit := since.Add(time.Duration(maker.MaxPostponeDays) * 24 * time.Hour)
	switch {
	case maker.MaxPostponeDays == 0:
		return time.Time{}, time.Time{}, fmt.Errorf("%w: the maker's policy does not allow postponing updates (max_postpone_days 0)", ErrPostponeLimit)
	case until.After(limit) && since.Equal(now):
		return time.Time{}, time.Time{}, fmt.Errorf("%w: %s is longer than the maker allows: at most %d days",
			ErrPostponeLimit, formatDuration(d), maker.MaxPostponeDays)
	case until.After(limit):
		return time.Time{}, time.Time{}, fmt.Errorf("%w: the maker allows at most %d days, counted from %s when updates were first postponed; they can be postponed until %s at the latest",
			ErrPostponeLimit, maker.MaxPostponeDays, since.UTC().Format(timeFormat), limit.UTC().Format(timeFormat))
	}
	return until, since, nil
}

// timeFormat is how times are shown to the owner.
const timeFormat = "2006-01-02 15:04 MST"

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// kinds lists kinds in plain words: "security and fix".
func kinds(ks []release.Kind) string {
	if len(ks) == 0 {
		return "no"
	}
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// formatDuration shows whole days as "7d", anything else as Go does.
func formatDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
