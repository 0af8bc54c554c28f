package agent

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/rollout"
)

// offer is an offer of m that both repositories agree on, rolled out to
// percent of the fleet.
func offer(m *release.Manifest, percent int) Offer {
	return Offer{Version: m.Version, Manifest: m, Rollout: &rollout.Rule{Percent: percent}}
}

// seedIn returns a rollout seed whose bucket for version of the
// thermostat is below percent (in) or not (out).
func seedIn(t *testing.T, version string, percent int, in bool) []byte {
	t.Helper()
	for i := range 10000 {
		seed := []byte(fmt.Sprintf("seed-%d", i))
		if b := rollout.Bucket(seed, "thermostat", version); (b < percent*rollout.Buckets/100) == in {
			return seed
		}
	}
	t.Fatalf("no seed found")
	return nil
}

func TestChoose(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dev := Device{Product: "thermostat", Hardware: "rev-a"}
	feature := func(v string) *release.Manifest { return manifest(v, release.KindFeature, release.Impact{}) }
	withSecurity := func(m *release.Manifest, sv uint64) *release.Manifest { m.SecurityVersion = sv; return m }
	adverse := func(v string) *release.Manifest {
		return manifest(v, release.KindFeature, release.Impact{DataCollection: release.ChangeMore, DataCollectionText: "usage statistics"})
	}
	securityOnlyOf := func(v, of string) *release.Manifest {
		m := manifest(v, release.KindSecurity, release.Impact{})
		m.SecurityOnly, m.SecurityOnlyOf = true, of
		return m
	}
	base := func() *State {
		return &State{Version: "1.0.0", SecurityVersion: 2, MaxSecurityVersion: 2, Seed: []byte("seed"),
			Failed: map[string]Failure{}, Owner: Owner{Consents: map[string]time.Time{}}}
	}
	waveSeed := seedIn(t, "2.0.0", 50, true)
	notInWave := seedIn(t, "2.0.0", 50, false)

	for _, tc := range []struct {
		name   string
		state  func(*State)
		offers []Offer
		policy *release.Policy
		// want: the version installed, or "" for none.
		install string
		offered string
		class   report.Class // the refusal's class; "" for none
		action  string       // "none" or "waiting", when nothing installs and nothing is refused
		held    []string
		reasons []string // substrings of Reason (or of Err)
	}{
		{name: "nothing offered", offers: nil, action: "none", reasons: []string{"no release of thermostat is offered"}},
		{name: "newer version installs", offers: []Offer{offer(feature("1.1.0"), 100)}, install: "1.1.0", offered: "1.1.0",
			reasons: []string{"installed automatically"}},
		{name: "same version is up to date", offers: []Offer{offer(feature("1.0.0"), 100)}, offered: "1.0.0", action: "none",
			reasons: []string{"thermostat is up to date (1.0.0)"}},
		{name: "older version is a refused downgrade", offers: []Offer{offer(feature("0.9.0"), 100)}, offered: "0.9.0",
			class: report.ClassRollbackVersion, reasons: []string{"older than the running 1.0.0"}},
		{name: "lower security version is refused", offers: []Offer{offer(withSecurity(feature("1.1.0"), 1), 100)}, offered: "1.1.0",
			class: report.ClassRollbackSecurity, reasons: []string{"security version 1, lower than 2"}},
		{name: "security version floor counts, not the running one",
			state:  func(s *State) { s.SecurityVersion, s.MaxSecurityVersion = 2, 3 },
			offers: []Offer{offer(withSecurity(feature("1.1.0"), 2), 100)}, offered: "1.1.0", class: report.ClassRollbackSecurity},
		{name: "other hardware is not applicable", offers: []Offer{offer(func() *release.Manifest {
			m := feature("1.1.0")
			m.Hardware = []string{"rev-b"}
			return m
		}(), 100)}, offered: "1.1.0", class: report.ClassNotApplicable, reasons: []string{"not for hardware rev-a"}},
		{name: "manifest of another product", offers: []Offer{offer(func() *release.Manifest {
			m := feature("1.1.0")
			m.Product = "doorbell"
			return m
		}(), 100)}, offered: "1.1.0", class: report.ClassNotApplicable, reasons: []string{"names doorbell 1.1.0"}},
		{name: "manifest of another version", offers: []Offer{{Version: "1.2.0", Manifest: feature("1.1.0"), Rollout: &rollout.Rule{Percent: 100}}},
			offered: "1.2.0", class: report.ClassNotApplicable, reasons: []string{"names thermostat 1.1.0"}},
		{name: "manifest that does not decode", offers: []Offer{{Version: "1.1.0", ManifestErr: errors.New("manifest: bad kind")}},
			offered: "1.1.0", class: report.ClassManifestInvalid, reasons: []string{"bad kind"}},
		{name: "repositories disagree", offers: []Offer{{Version: "1.1.0", Agree: fmt.Errorf("%w: 1.1.0 is not in the fleet repository", errMismatch)}},
			offered: "1.1.0", class: report.ClassRepoMismatch},
		{name: "no rollout rule", offers: []Offer{{Version: "1.1.0", Manifest: feature("1.1.0")}}, offered: "1.1.0",
			class: report.ClassManifestInvalid, reasons: []string{"without a rollout rule"}},
		{name: "rollout rule that does not decode", offers: []Offer{{Version: "1.1.0", Manifest: feature("1.1.0"), RolloutErr: errors.New("fleet rollout rule: bad")}},
			offered: "1.1.0", class: report.ClassManifestInvalid, reasons: []string{"fleet rollout rule"}},
		{name: "halted rollout waits", offers: []Offer{{Version: "1.1.0", Manifest: feature("1.1.0"), Rollout: &rollout.Rule{Percent: 100, Halted: true}}},
			offered: "1.1.0", action: "waiting", reasons: []string{"halted"}},
		{name: "bucket outside the wave waits", state: func(s *State) { s.Seed = notInWave },
			offers: []Offer{offer(feature("2.0.0"), 50)}, offered: "2.0.0", action: "waiting", reasons: []string{"50% of devices"}},
		{name: "bucket inside the wave installs", state: func(s *State) { s.Seed = waveSeed },
			offers: []Offer{offer(feature("2.0.0"), 50)}, install: "2.0.0", offered: "2.0.0"},
		{name: "a security-only build rides on its feature build's wave", state: func(s *State) { s.Seed = waveSeed },
			offers:  []Offer{offer(adverse("2.0.0"), 50), offer(securityOnlyOf("1.0.1", "2.0.0"), 50)},
			install: "1.0.1", offered: "1.0.1", held: []string{"2.0.0"}, reasons: []string{"security-only build of 2.0.0", "waits for the owner's consent"}},
		{name: "a security-only build outside its feature build's wave waits", state: func(s *State) { s.Seed = notInWave },
			offers: []Offer{offer(securityOnlyOf("1.0.1", "2.0.0"), 50)}, offered: "1.0.1", action: "waiting"},
		{name: "failed before: the next candidate installs",
			state: func(s *State) {
				s.Failed["2.0.0"] = Failure{Version: "2.0.0", ErrorClass: report.ClassHealthCheck, Reason: "unhealthy"}
			},
			offers:  []Offer{offer(feature("2.0.0"), 100), offer(securityOnlyOf("1.0.1", "2.0.0"), 100)},
			install: "1.0.1", offered: "1.0.1", reasons: []string{"2.0.0 failed on this device before (health-check: unhealthy)"}},
		{name: "failed before and nothing else: waits for a newer release",
			state: func(s *State) {
				s.Failed["2.0.0"] = Failure{Version: "2.0.0", ErrorClass: report.ClassHealthCheck, Reason: "unhealthy"}
			},
			offers: []Offer{offer(feature("2.0.0"), 100)}, offered: "2.0.0", action: "waiting", reasons: []string{"not retried"}},
		{name: "a lower candidate ends the search", offers: []Offer{offer(adverse("2.0.0"), 100), offer(securityOnlyOf("0.9.1", "0.9.0"), 100)},
			offered: "2.0.0", action: "waiting", held: []string{"2.0.0"}, reasons: []string{"no other offered release is newer than the running 1.0.0"}},
		{name: "adverse impact waits for consent", offers: []Offer{offer(adverse("1.1.0"), 100)}, offered: "1.1.0", action: "waiting",
			held: []string{"1.1.0"}, reasons: []string{"waits for the owner's consent"}},
		{name: "the owner's consent installs adverse impact", state: func(s *State) { s.Owner.Consents["1.1.0"] = now.Add(-time.Hour) },
			offers: []Offer{offer(adverse("1.1.0"), 100)}, install: "1.1.0", offered: "1.1.0", reasons: []string{"the owner consented"}},
		{name: "postponed by the owner", state: func(s *State) { u := now.Add(time.Hour); s.Owner.PostponedUntil = &u },
			offers: []Offer{offer(feature("1.1.0"), 100)}, offered: "1.1.0", action: "waiting", held: []string{"1.1.0"}, reasons: []string{"postponed"}},
		{name: "a postponement that ended does not hold", state: func(s *State) { u := now.Add(-time.Hour); s.Owner.PostponedUntil = &u },
			offers: []Offer{offer(feature("1.1.0"), 100)}, install: "1.1.0", offered: "1.1.0"},
		{name: "automatic updates off", state: func(s *State) { t := now.Add(-time.Hour); s.Owner.AutoUpdatesOffSince = &t },
			offers: []Offer{offer(feature("1.1.0"), 100)}, offered: "1.1.0", action: "waiting", held: []string{"1.1.0"}, reasons: []string{"automatic updates are off"}},
		{name: "a kind the maker does not install automatically", policy: &release.Policy{AutoInstall: []release.Kind{release.KindSecurity}, MaxPostponeDays: 7},
			offers: []Offer{offer(feature("1.1.0"), 100)}, offered: "1.1.0", action: "waiting", held: []string{"1.1.0"}, reasons: []string{"installs only security releases"}},
		{name: "support ended: signed releases still install",
			state: func(s *State) {
				s.Support = &release.Support{Product: "thermostat", Until: "2025-12-31", Issued: now.AddDate(-2, 0, 0)}
			},
			offers: []Offer{offer(feature("1.1.0"), 100)}, install: "1.1.0", offered: "1.1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			if tc.state != nil {
				tc.state(s)
			}
			policy := s.Support.EffectivePolicy()
			if tc.policy != nil {
				policy = *tc.policy
			}
			before := fmt.Sprintf("%+v", *s)
			d := choose(s, tc.offers, policy, dev, now)
			if after := fmt.Sprintf("%+v", *s); after != before {
				t.Fatalf("choose changed the state:\n%s\n%s", before, after)
			}
			got := ""
			if d.Install != nil {
				got = d.Install.Version
			}
			if got != tc.install || d.Offered != tc.offered {
				t.Fatalf("install %q offered %q, want %q and %q (decision %+v)", got, d.Offered, tc.install, tc.offered, d)
			}
			text := d.Reason
			switch {
			case tc.class != "" && d.Err == nil:
				t.Fatalf("no refusal, want class %s (decision %+v)", tc.class, d)
			case tc.class != "":
				if c := classify(d.Err); c != tc.class {
					t.Fatalf("refused with class %s (%v), want %s", c, d.Err, tc.class)
				}
				text = d.Err.Error()
			case d.Err != nil:
				t.Fatalf("refused: %v", d.Err)
			case tc.install == "" && d.Action != tc.action:
				t.Fatalf("action %q, want %q (reason %q)", d.Action, tc.action, d.Reason)
			}
			var held []string
			for _, w := range d.Held {
				held = append(held, w.Version)
				if !w.Since.Equal(now) {
					t.Errorf("held %s since %v, want %v", w.Version, w.Since, now)
				}
			}
			if strings.Join(held, ",") != strings.Join(tc.held, ",") {
				t.Fatalf("held %v, want %v", held, tc.held)
			}
			for _, r := range tc.reasons {
				if !strings.Contains(text, r) {
					t.Errorf("reason %q does not say %q", text, r)
				}
			}
		})
	}
}

// TestDeltaRules: a delta serves an install only when both repositories
// agree on it, it is smaller than the full payload, and the active slot
// holds exactly its source image.
func TestDeltaRules(t *testing.T) {
	src := strings.Repeat("ab", 32)
	d := release.Delta{From: "1.0.0", Target: "thermostat/1.1.0.delta-from-1.0.0", Length: 1000, SHA256: strings.Repeat("cd", 32),
		SourceLength: 4096, SourceSHA256: src}
	for _, tc := range []struct {
		name    string
		offer   *deltaOffer
		payload int64
		active  string
		want    string // substring of the refusal; "" to use the delta
		source  bool   // the refusal is errDeltaSource
	}{
		{name: "smaller, agreed, matching source", offer: &deltaOffer{d: d}, payload: 5000, active: src},
		{name: "repositories disagree on the delta", offer: &deltaOffer{d: d, err: fmt.Errorf("%w: not in the fleet repository", errMismatch)},
			payload: 5000, active: src, want: "not in the fleet repository"},
		{name: "not smaller than the payload", offer: &deltaOffer{d: d}, payload: 1000, active: src, want: "not smaller than the 1000-byte payload"},
		{name: "active slot holds another image", offer: &deltaOffer{d: d}, payload: 5000, active: strings.Repeat("ef", 32), source: true,
			want: "the delta is for " + src},
		{name: "active slot shorter than the source", offer: &deltaOffer{d: d}, payload: 5000, active: "", source: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := deltaWorth(tc.offer, tc.payload)
			if err == nil {
				err = deltaSource(tc.offer.d, "a", tc.active)
			}
			switch {
			case tc.want == "" && !tc.source && err != nil:
				t.Fatalf("refused: %v", err)
			case (tc.want != "" || tc.source) && err == nil:
				t.Fatalf("used, want a refusal")
			case err != nil && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("refused with %q, want %q", err, tc.want)
			case err != nil && errors.Is(err, errDeltaSource) != tc.source:
				t.Fatalf("refusal %v: errDeltaSource %v, want %v", err, errors.Is(err, errDeltaSource), tc.source)
			}
		})
	}
}
