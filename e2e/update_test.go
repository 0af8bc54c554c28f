package e2e

import (
	"testing"

	"github.com/uptrust/uptrust/internal/release"
)

func TestUpdateAndHealthRollback(t *testing.T) {
	w := newWorld(t, worldOptions{})
	good := w.device("good", 0)
	bad := w.device("bad", 0)
	bad.Health = func(ctx contextT) error { return errUnhealthy }

	chk := w.cycle(good)
	if chk.Action != "none" {
		t.Fatalf("nothing offered yet, got %+v", chk)
	}
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	w.cycle(good)
	st := w.assertRunning(good, "1.1.0")
	if st.MaxSecurityVersion != 2 || st.BootedSlot != "b" {
		t.Fatalf("status after update: %+v", st)
	}
	w.assertReport("installed", "")

	w.cycle(bad)
	st = w.assertRunning(bad, "1.0.0")
	if f, ok := st.Failed["1.1.0"]; !ok || f.ErrorClass != "health-check" {
		t.Fatalf("failed releases: %+v", st.Failed)
	}
	w.assertReport("rolled_back", "health-check")
	// A failed release is not retried.
	chk = w.cycle(bad)
	if chk.Action != "waiting" {
		t.Fatalf("retry check: %+v", chk)
	}
	w.assertRunning(bad, "1.0.0")
}
