package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/release"
)

// TestOwnerPostpone: the owner may postpone automatic updates within the
// maker's limit (here 7 days), and not beyond; a cancelled or lapsed
// postponement holds nothing.
func TestOwnerPostpone(t *testing.T) {
	w := newWorld(t, worldOptions{})
	if _, err := w.p.SetPolicy(context.Background(), product, release.Policy{AutoInstall: []release.Kind{release.KindSecurity, release.KindFix}, MaxPostponeDays: 7}); err != nil {
		t.Fatal(err)
	}
	w.reload()
	d := w.device("d", 0)
	lapsed := w.device("lapsed", 0)
	events := notifyHook(t, d)
	w.cycle(d) // learns the maker's policy
	w.cycle(lapsed)
	now := time.Now()

	code, _, stderr := ownerCLI(t, d, "", now, "postpone", "8d")
	if code != 1 || !strings.Contains(stderr, "8d is longer than the maker allows: at most 7 days") {
		t.Fatalf("postpone beyond the limit: %d %q", code, stderr)
	}
	code, out, stderr := ownerCLI(t, d, "", now, "postpone", "72h")
	if code != 0 || !strings.Contains(out, "automatic updates postponed until") {
		t.Fatalf("postpone 72h: %d %q %q", code, out, stderr)
	}
	// Postponed four days ago for three days: over by now.
	if code, _, stderr := ownerCLI(t, lapsed, "", now.Add(-4*24*time.Hour), "postpone", "3d"); code != 0 {
		t.Fatalf("postpone 3d: %d %q", code, stderr)
	}

	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	chk := w.cycle(d)
	if chk.Action != "waiting" || !strings.Contains(chk.Reason, "updates are postponed by the owner until") {
		t.Fatalf("check while postponed: %+v", chk)
	}
	st := w.assertRunning(d, "1.0.0")
	if st.PostponedUntil == nil || !st.PostponedUntil.Equal(now.Add(72*time.Hour).UTC()) || len(st.Waiting) != 1 || st.Waiting[0].Hold != agent.HoldPostponed {
		t.Fatalf("status while postponed: %+v", st)
	}
	if e := only(events(), agent.EventNeedsConsent); len(e) != 1 || e[0].Hold != agent.HoldPostponed {
		t.Fatalf("events while postponed: %+v", e)
	}
	w.cycle(lapsed)
	w.assertRunning(lapsed, "1.1.0")

	if code, out, _ := ownerCLI(t, d, "", now, "postpone", "--cancel"); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %d %q", code, out)
	}
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}
