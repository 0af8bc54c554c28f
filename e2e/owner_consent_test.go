package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
)

// TestOwnerConsentGating: a release that collects more data waits for the
// owner's consent, with its notes, impact and advisories shown before the
// question; once consented, it installs.
func TestOwnerConsentGating(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	events := notifyHook(t, d)
	w.publishSpec(project.ReleaseSpec{Version: "2.0.0", Kind: release.KindFeature, SecurityVersion: 2, Impact: moreData,
		Notes: "A cloud dashboard for your heating.", Advisories: []release.Advisory{{ID: "CVE-2026-1111", Summary: "remote crash in the pairing service"}}})
	w.rollout("2.0.0", 100)

	for range 2 {
		chk := w.cycle(d)
		if chk.Action != "waiting" || !strings.Contains(chk.Reason, "2.0.0 waits for the owner's consent because it collects more data: sends hourly usage statistics") {
			t.Fatalf("check: %+v", chk)
		}
	}
	st := w.assertRunning(d, "1.0.0")
	if len(st.Waiting) != 1 || st.Waiting[0].Version != "2.0.0" || st.Waiting[0].Hold != agent.HoldAdverse ||
		st.Waiting[0].Notes != "A cloud dashboard for your heating." || len(st.Waiting[0].Advisories) != 1 {
		t.Fatalf("waiting: %+v", st.Waiting)
	}
	consent := only(events(), agent.EventNeedsConsent)
	if len(consent) != 1 || consent[0].Version != "2.0.0" || consent[0].Product != product || consent[0].Hold != agent.HoldAdverse ||
		!slices.Equal(consent[0].ImpactReasons, []string{"collects more data: " + moreData.DataCollectionText}) ||
		consent[0].Advisories[0].ID != "CVE-2026-1111" || consent[0].Message == "" {
		t.Fatalf("needs-consent events after two checks: %+v", consent)
	}

	now := time.Now()
	code, out, _ := ownerCLI(t, d, "", now, "status")
	if code != 0 || !strings.Contains(out, "waiting:          2.0.0 (feature) 2.0.0 waits for the owner's consent") ||
		!strings.Contains(out, "impact: collects more data") || !strings.Contains(out, "fixes: CVE-2026-1111") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	code, _, stderr := ownerCLI(t, d, "", now, "consent", "2.0.1", "--yes")
	if code != 1 || !strings.Contains(stderr, "2.0.1: it does not wait for consent (waiting: 2.0.0)") {
		t.Fatalf("consent to a release that does not wait: %d %q", code, stderr)
	}

	// Declined: nothing changes.
	code, out, stderr = ownerCLI(t, d, "n\n", now, "consent", "2.0.0")
	if code != 1 || !strings.Contains(stderr, "not given") {
		t.Fatalf("declined consent: %d %q", code, stderr)
	}
	prompt := strings.Index(out, "Install 2.0.0? [y/N]")
	for _, shown := range []string{"A cloud dashboard for your heating.", "impact:   collects more data: sends hourly usage statistics",
		"fixes:    CVE-2026-1111: remote crash in the pairing service"} {
		if i := strings.Index(out, shown); i < 0 || prompt < 0 || i > prompt {
			t.Errorf("%q is not shown before the question:\n%s", shown, out)
		}
	}
	w.cycle(d)
	w.assertRunning(d, "1.0.0")

	code, out, stderr = ownerCLI(t, d, "y\n", now, "consent", "2.0.0")
	if code != 0 || !strings.Contains(out, "consent to 2.0.0 recorded") {
		t.Fatalf("consent: %d %q %q", code, out, stderr)
	}
	w.cycle(d)
	st = w.assertRunning(d, "2.0.0")
	if len(st.Waiting) != 0 || st.Consents["2.0.0"].IsZero() {
		t.Fatalf("after consent: %+v", st)
	}
	w.assertReport("installed", "")
	if got := only(events(), agent.EventInstalled); len(got) != 1 || got[0].Version != "2.0.0" {
		t.Fatalf("installed events: %+v", got)
	}
}

// TestOwnerSecurityOnlyFallback: while the feature build 2.0.0 waits for
// consent, the device installs its security-only build 1.1.1; after the
// owner consents, it moves on to 2.0.0.
func TestOwnerSecurityOnlyFallback(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	w.publishSpec(project.ReleaseSpec{Version: "2.0.0", Kind: release.KindFeature, SecurityVersion: 3, Impact: moreData})
	w.publishSpec(project.ReleaseSpec{Version: "1.1.1", Kind: release.KindSecurity, SecurityVersion: 3, SecurityOnlyOf: "2.0.0",
		Advisories: []release.Advisory{{ID: "CVE-2026-2222"}}})
	w.rollout("2.0.0", 100) // offers the security-only companion too

	w.cycle(d)
	st := w.assertRunning(d, "1.1.1")
	if !slices.Equal(st.Offered, []string{"2.0.0", "1.1.1"}) || st.MaxSecurityVersion != 3 {
		t.Fatalf("status after the fallback: %+v", st)
	}
	if len(st.Waiting) != 1 || st.Waiting[0].Version != "2.0.0" {
		t.Fatalf("waiting after the fallback: %+v", st.Waiting)
	}
	chk := w.cycle(d)
	if chk.Action != "waiting" || !strings.Contains(chk.Reason, "2.0.0 waits for the owner's consent") ||
		!strings.Contains(chk.Reason, "no other offered release is newer than the running 1.1.1") {
		t.Fatalf("second check: %+v", chk)
	}
	w.assertRunning(d, "1.1.1")

	if code, _, stderr := ownerCLI(t, d, "", time.Now(), "consent", "--yes", "2.0.0"); code != 0 {
		t.Fatalf("consent: %d %s", code, stderr)
	}
	w.cycle(d)
	w.assertRunning(d, "2.0.0")
}

// TestOwnerKindOutsideMakersPolicy: the maker's policy installs only
// security releases automatically; a feature release without adverse
// impact then waits for consent.
func TestOwnerKindOutsideMakersPolicy(t *testing.T) {
	w := newWorld(t, worldOptions{})
	if _, err := w.p.SetPolicy(context.Background(), product, release.Policy{AutoInstall: []release.Kind{release.KindSecurity}, MaxPostponeDays: 30}); err != nil {
		t.Fatal(err)
	}
	w.reload()
	d := w.device("d", 0)
	w.publish("1.1.0", 2, release.KindFeature)
	w.rollout("1.1.0", 100)
	chk := w.cycle(d)
	if chk.Action != "waiting" || !strings.Contains(chk.Reason, "1.1.0 is a feature release and the maker's policy installs only security releases automatically") {
		t.Fatalf("check: %+v", chk)
	}
	st := w.assertRunning(d, "1.0.0")
	if !slices.Equal(st.MakerPolicy.AutoInstall, []release.Kind{release.KindSecurity}) || len(st.Waiting) != 1 || st.Waiting[0].Hold != agent.HoldKind {
		t.Fatalf("status: %+v", st)
	}
	if code, _, stderr := ownerCLI(t, d, "", time.Now(), "consent", "1.1.0", "--yes"); code != 0 {
		t.Fatalf("consent: %d %s", code, stderr)
	}
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}
