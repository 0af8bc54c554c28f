package project_test

import (
	"errors"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// TestChangeRolloutLostUpdate: a change made by another handle (another
// replica) between ChangeRollout's read and its write makes the write
// fail with ErrRolloutChanged and leaves the other change in place; a
// precondition that refuses the state read is returned as is, nothing
// written.
func TestChangeRolloutLostUpdate(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 1, "1.1.0"))
	if _, err := p.StartRollout(ctx, "thermostat", "1.1.0", 10); err != nil {
		t.Fatal(err)
	}
	q, err := project.Open(ctx, p.Dir, project.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	clk.Advance(time.Minute)
	_, err = p.ChangeRollout(ctx, "thermostat", func(ro *store.Rollout) {
		// Runs between p's read and p's write.
		if _, err := q.ChangeRollout(ctx, "thermostat", func(ro *store.Rollout) { ro.Percent = 30 }); err != nil {
			t.Fatal(err)
		}
		ro.Percent = 20
	})
	if !errors.Is(err, project.ErrRolloutChanged) {
		t.Fatalf("change over a concurrent one: %v, want ErrRolloutChanged", err)
	}
	if ro, err := p.Store.Rollout(ctx, "thermostat"); err != nil || ro.Percent != 30 {
		t.Fatalf("rollout %+v (%v), want the concurrent change's 30%%", ro, err)
	}
	stale := errors.New("stale")
	_, err = p.ChangeRolloutIf(ctx, "thermostat", func(store.Rollout) error { return stale },
		func(ro *store.Rollout) { ro.Percent = 40 })
	if !errors.Is(err, stale) {
		t.Fatalf("refusing precondition: %v", err)
	}
	if ro, err := p.ChangeRollout(ctx, "thermostat", func(ro *store.Rollout) { ro.Percent = 50 }); err != nil || ro.Percent != 50 {
		t.Fatalf("change with nobody in between: %+v, %v", ro, err)
	}
	if ro, err := p.Store.Rollout(ctx, "thermostat"); err != nil || ro.Percent != 50 {
		t.Fatalf("rollout %+v (%v), want 50%%", ro, err)
	}
}
