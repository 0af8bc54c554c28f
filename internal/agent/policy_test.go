package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/release"
)

func manifest(version string, kind release.Kind, impact release.Impact) *release.Manifest {
	if impact.DataCollection == "" {
		impact.DataCollection = release.ChangeNone
	}
	if impact.Functionality == "" {
		impact.Functionality = release.ChangeNone
	}
	return &release.Manifest{Product: "thermostat", Version: version, Hardware: []string{"rev-a"}, SecurityVersion: 2,
		Kind: kind, Impact: impact, Payload: release.Payload{Type: "rootfs", Compression: "none"}}
}

func TestJudge(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(48*time.Hour)
	offSince := now.AddDate(0, 0, -3)
	more := release.Impact{DataCollection: release.ChangeMore, DataCollectionText: "usage statistics every hour"}
	fewer := release.Impact{Functionality: release.ChangeLess, FunctionalityText: "the local web interface is removed"}
	recipients := release.Impact{NewRecipients: []string{"analytics.example"}, NewRecipientsText: "crash dumps"}
	securityOnly := manifest("1.1.1", release.KindSecurity, release.Impact{})
	securityOnly.SecurityOnly, securityOnly.SecurityOnlyOf = true, "2.0.0"
	onlySecurity := release.Policy{AutoInstall: []release.Kind{release.KindSecurity}, MaxPostponeDays: 30}

	for _, tc := range []struct {
		name    string
		m       *release.Manifest
		maker   release.Policy
		owner   Owner
		hold    string   // "" means install
		reasons []string // substrings of the reason
	}{
		{name: "security release installs", m: manifest("1.1.0", release.KindSecurity, release.Impact{}),
			reasons: []string{"1.1.0 is a security release without adverse impact", "maker's policy"}},
		{name: "more data collection waits", m: manifest("2.0.0", release.KindFeature, more), hold: HoldAdverse,
			reasons: []string{"2.0.0 waits for the owner's consent", "collects more data: usage statistics every hour", "uptrust-agent consent 2.0.0"}},
		{name: "removed function waits", m: manifest("2.0.0", release.KindFix, fewer), hold: HoldAdverse,
			reasons: []string{"removes functionality: the local web interface is removed"}},
		{name: "new recipients wait", m: manifest("2.0.0", release.KindSecurity, recipients), hold: HoldAdverse,
			reasons: []string{"new recipients (analytics.example): crash dumps"}},
		{name: "consent lifts adverse impact", m: manifest("2.0.0", release.KindFeature, more),
			owner:   Owner{Consents: map[string]time.Time{"2.0.0": past}},
			reasons: []string{"the owner consented to 2.0.0 on 2026-03-01"}},
		{name: "consent is per version", m: manifest("2.0.1", release.KindFeature, more),
			owner: Owner{Consents: map[string]time.Time{"2.0.0": past}}, hold: HoldAdverse},
		{name: "kind outside the maker's policy waits", m: manifest("1.2.0", release.KindFeature, release.Impact{}), maker: onlySecurity,
			hold: HoldKind, reasons: []string{"1.2.0 is a feature release", "installs only security releases automatically", "uptrust-agent consent 1.2.0"}},
		{name: "adverse impact is named before the kind", m: manifest("2.0.0", release.KindFeature, more), maker: onlySecurity, hold: HoldAdverse},
		{name: "auto-updates off holds security releases", m: manifest("1.1.0", release.KindSecurity, release.Impact{}),
			owner: Owner{AutoUpdatesOffSince: &offSince}, hold: HoldAutoOff,
			reasons: []string{"automatic updates are off since 2026-02-26 (owner's choice)", "run uptrust-agent consent 1.1.0 to install"}},
		{name: "consent lifts auto-updates off", m: manifest("1.1.0", release.KindSecurity, release.Impact{}),
			owner: Owner{AutoUpdatesOffSince: &offSince, Consents: map[string]time.Time{"1.1.0": now}}},
		{name: "postponement holds", m: manifest("1.1.0", release.KindSecurity, release.Impact{}),
			owner: Owner{PostponedUntil: &future}, hold: HoldPostponed,
			reasons: []string{"postponed by the owner until 2026-03-03 12:00 UTC"}},
		{name: "lapsed postponement does not hold", m: manifest("1.1.0", release.KindSecurity, release.Impact{}),
			owner: Owner{PostponedUntil: &past}},
		{name: "consent lifts a postponement", m: manifest("1.1.0", release.KindSecurity, release.Impact{}),
			owner: Owner{PostponedUntil: &future, Consents: map[string]time.Time{"1.1.0": now}}},
		{name: "auto-updates off is named before a postponement", m: manifest("1.1.0", release.KindSecurity, release.Impact{}),
			owner: Owner{PostponedUntil: &future, AutoUpdatesOffSince: &offSince}, hold: HoldAutoOff},
		{name: "security-only build installs", m: securityOnly, maker: onlySecurity,
			reasons: []string{"1.1.1 is the security-only build of 2.0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maker := tc.maker
			if maker.AutoInstall == nil {
				maker = release.DefaultPolicy()
			}
			v := Judge(tc.m, maker, &tc.owner, now)
			if v.Install != (tc.hold == "") || v.Hold != tc.hold {
				t.Fatalf("Judge = %+v, want hold %q", v, tc.hold)
			}
			for _, want := range tc.reasons {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("reason %q lacks %q", v.Reason, want)
				}
			}
		})
	}
}

func TestPostponeUntil(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	maker := release.Policy{AutoInstall: []release.Kind{release.KindSecurity}, MaxPostponeDays: 7}

	until, since, err := PostponeUntil(maker, &Owner{}, now, 72*time.Hour)
	if err != nil || !until.Equal(now.Add(72*time.Hour)) || !since.Equal(now) {
		t.Fatalf("72h: until %v since %v err %v", until, since, err)
	}
	if _, _, err := PostponeUntil(maker, &Owner{}, now, 7*day); err != nil {
		t.Fatalf("exactly the limit: %v", err)
	}
	_, _, err = PostponeUntil(maker, &Owner{}, now, 8*day)
	if !errors.Is(err, ErrPostponeLimit) || !strings.Contains(err.Error(), "8d is longer than the maker allows: at most 7 days") {
		t.Fatalf("8d: %v", err)
	}

	// Renewing a postponement in force counts from its start.
	first, firstUntil := now, now.Add(5*day)
	o := &Owner{PostponedSince: &first, PostponedUntil: &firstUntil}
	later := now.Add(3 * day)
	if _, since, err := PostponeUntil(maker, o, later, 4*day); err != nil || !since.Equal(first) {
		t.Fatalf("renewal up to the limit: since %v err %v", since, err)
	}
	_, _, err = PostponeUntil(maker, o, later, 5*day)
	if !errors.Is(err, ErrPostponeLimit) || !strings.Contains(err.Error(), "at most 7 days, counted from 2026-03-01 12:00 UTC") ||
		!strings.Contains(err.Error(), "until 2026-03-08 12:00 UTC at the latest") {
		t.Fatalf("renewal beyond the limit: %v", err)
	}
	// Once it has lapsed, a new postponement starts afresh.
	if _, since, err := PostponeUntil(maker, o, now.Add(6*day), 7*day); err != nil || !since.Equal(now.Add(6*day)) {
		t.Fatalf("after the postponement lapsed: since %v err %v", since, err)
	}

	if _, _, err := PostponeUntil(release.Policy{MaxPostponeDays: 0}, &Owner{}, now, time.Hour); !errors.Is(err, ErrPostponeLimit) ||
		!strings.Contains(err.Error(), "does not allow postponing") {
		t.Fatalf("maker allows none: %v", err)
	}
	if _, _, err := PostponeUntil(maker, &Owner{}, now, 0); err == nil || errors.Is(err, ErrPostponeLimit) {
		t.Fatalf("zero duration: %v", err)
	}
}
