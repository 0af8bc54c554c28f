package project_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// TestWaveCountsMatch: on a random fleet under a fake clock — enrolments
// (late ones too), inventory changes, groups joined and left, events of
// every kind for the rollouts' versions and another, decommissions,
// erasures, pauses, a newer rollout superseding part of the fleet, and
// the decision loop's own steps — the incremental counts (what the
// decision loop reads) equal after every round the straightforward count
// that reads every device and its latest event again, for every rollout,
// and so do rollout.Decide's decisions on them. Most rounds are counted
// by deltas alone (fewer full reloads than rounds).
func TestWaveCountsMatch(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) { testWaveCountsMatch(t, db) })
	}
}

func testWaveCountsMatch(t *testing.T, db string) {
	ctx := t.Context()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 15))
	f := newWavesFleet(t, db)
	addRelease(t, f.p, releaseSpec("thermostat", "1.2.0", 3, "firmware 1.2.0"))
	hw := []string{"rev-a", "rev-b"}
	var live []string // accepted devices
	enroll := func() {
		d := f.enroll(map[string]string{"hardware": hw[rnd.IntN(2)], "version": "1.0.0"})
		live = append(live, d.ID)
	}
	for range 40 {
		enroll()
	}
	if err := f.p.AddDeviceLabel(ctx, live[0], store.LabelGroup, "lab"); err != nil {
		t.Fatal(err)
	}
	start := func(version, filter, waves string) project.ManagedRollout {
		r, err := f.p.StartManagedRollout(ctx, "thermostat", version, filter, f.plan(waves, "30%", 3, 10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ids := []string{start("1.1.0", "", "10%,50%,100%").ID}
	kinds := []string{store.EventOffered, store.EventDownloading, store.EventInstalling, store.EventRebooting,
		store.EventSucceeded, store.EventSucceeded, store.EventFailed, store.EventRolledBack, store.EventSkipped}
	versions := []string{"1.1.0", "1.2.0", "1.0.0"}
	pick := func() (int, string) {
		i := rnd.IntN(len(live))
		return i, live[i]
	}
	const rounds = 40
	compared := 0
	compare := func(round int) {
		t.Helper()
		for _, id := range ids {
			inc, direct, err := f.p.WaveCounts(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(inc, direct) {
				t.Fatalf("round %d, rollout %s: incremental counts %+v, straightforward %+v", round, id, inc, direct)
			}
			m, err := f.p.ManagedRollout(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			now := f.clk.Now()
			s1, step1, err1 := rollout.Decide(m.Plan, m.State, inc, now)
			s2, step2, err2 := rollout.Decide(m.Plan, m.State, direct, now)
			if !reflect.DeepEqual(s1, s2) || !reflect.DeepEqual(step1, step2) || fmt.Sprint(err1) != fmt.Sprint(err2) {
				t.Fatalf("round %d, rollout %s: decisions differ: %+v %+v vs %+v %+v", round, id, s1, step1, s2, step2)
			}
			compared++
		}
	}
	for round := range rounds {
		if round == 10 { // a newer rollout supersedes the rev-b devices
			ids = append(ids, start("1.2.0", "hardware=rev-b", "50%,100%").ID)
		}
		if round == 20 { // and a third the lab group
			ids = append(ids, start("1.2.0", "group=lab", "100%").ID)
		}
		for range 8 {
			switch op := rnd.IntN(100); {
			case op < 15:
				enroll()
			case op < 25:
				_, id := pick()
				if _, err := f.p.UpdateInventory(ctx, id, map[string]string{"hardware": hw[rnd.IntN(2)], "version": "1.0.0"}); err != nil {
					t.Fatal(err)
				}
			case op < 32:
				_, id := pick()
				if err := f.p.AddDeviceLabel(ctx, id, store.LabelGroup, "lab"); err != nil && !errors.Is(err, store.ErrConflict) {
					t.Fatal(err)
				}
			case op < 36:
				_, id := pick()
				if err := f.p.RemoveDeviceLabel(ctx, id, store.LabelGroup, "lab"); err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
			case op < 38 && len(live) > 20:
				i, id := pick()
				if _, err := f.p.DecommissionDevice(ctx, id); err != nil {
					t.Fatal(err)
				}
				live = slices.Delete(live, i, i+1)
			case op < 39 && len(live) > 20:
				i, id := pick()
				if err := f.p.EraseDevice(ctx, id); err != nil {
					t.Fatal(err)
				}
				live = slices.Delete(live, i, i+1)
			default:
				_, id := pick()
				e := store.DeviceEvent{Kind: kinds[rnd.IntN(len(kinds))], Version: versions[rnd.IntN(len(versions))]}
				if e.Kind == store.EventSkipped {
					e.Reason = "postponed_by_owner"
				}
				if e.Kind == store.EventFailed {
					e.ErrorClass = "health-check"
				}
				if _, err := f.p.AddDeviceEvent(ctx, id, e); err != nil {
					t.Fatal(err)
				}
			}
			f.clk.Advance(time.Duration(rnd.IntN(20)) * time.Second)
		}
		switch rnd.IntN(10) {
		case 0:
			if _, err := f.p.PauseRollout(ctx, ids[rnd.IntN(len(ids))], "check"); err != nil && !errors.Is(err, rollout.ErrTransition) {
				t.Fatal(err)
			}
		case 1:
			if _, err := f.p.ResumeRollout(ctx, ids[rnd.IntN(len(ids))]); err != nil && !errors.Is(err, rollout.ErrTransition) {
				t.Fatal(err)
			}
		case 2, 3, 4:
			f.clk.Advance(5 * time.Minute)
			f.tick() // the decision loop's own steps, on incremental counts
		}
		compare(round)
	}
	// An erasure and a decommissioning seconds after a count (before the
	// next check of the number of devices) leave the counts at once.
	reloads := f.p.CountReloads()
	for _, op := range []string{"erase", "decommission"} {
		f.clk.Advance(time.Second)
		id := live[len(live)-1]
		live = live[:len(live)-1]
		var err error
		if op == "erase" {
			err = f.p.EraseDevice(ctx, id)
		} else {
			_, err = f.p.DecommissionDevice(ctx, id)
		}
		if err != nil {
			t.Fatal(err)
		}
		compare(rounds)
	}
	if n := f.p.CountReloads(); n != reloads {
		t.Errorf("%d full reloads after an erasure and a decommissioning, want none", n-reloads)
	}
	reloads = f.p.CountReloads()
	t.Logf("%d comparisons, %d full reloads, %d devices accepted", compared, reloads, len(live))
	if reloads >= rounds/2 {
		t.Errorf("%d full reloads in %d rounds: the deltas are not used", reloads, rounds)
	}
}
