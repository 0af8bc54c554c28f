package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/managed"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/sim"
	"github.com/uptrust/uptrust/internal/store"
)

// managedRollout starts a managed rollout of version in waves (such as
// "50%,100%") for the devices filter selects: a wave advances once all
// its devices (at most 1000) succeeded, with no soak; a failure ratio
// above 50 % halts it. The server reloads.
func (w *world) managedRollout(version, filter, waves string) project.ManagedRollout {
	w.t.Helper()
	pl, err := rollout.ParsePlan(rollout.PlanFlags{Waves: waves, MaxFailure: "50%", MinSuccess: "1000", Soak: "0s"}, w.p.Clock.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	r, err := w.p.StartManagedRollout(context.Background(), product, version, filter, pl)
	if err != nil {
		w.t.Fatal(err)
	}
	w.reload()
	return r
}

// TestManagedOwnView: the real agent in managed mode updates from its own
// fleet view through a managed rollout in waves, which publishes nothing
// in the shared fleet view: the device's targets come from the release
// repository. Of the devices the rollout selects, those of the open
// first wave update; those of the second wave are offered nothing until
// the decision loop (Tick) opens it, then update too; a device outside
// the selection is offered nothing throughout.
func TestManagedOwnView(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOptions{})
	w.withDevices(managed.New(w.p))
	if _, err := w.p.SetProductMode(ctx, product, store.ModeManaged); err != nil {
		t.Fatal(err)
	}
	tok, err := w.p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: product, Uses: 10, AutoAccept: true})
	if err != nil {
		t.Fatal(err)
	}
	// Four devices: three tagged pilot, one not.
	sims := map[string]*sim.Device{}
	var pilots []string
	outside := ""
	for i := range 4 {
		d := w.device(fmt.Sprintf("v%d", i), 1)
		if err := d.SetConfig(func(c *agent.Config) { c.Mode = agent.ModeManaged; c.EnrollmentToken = tok.Text }); err != nil {
			t.Fatal(err)
		}
		if chk := w.cycle(d); chk.Action != "none" {
			t.Fatalf("first check of an auto-accepted device with nothing offered: %q (%s)", chk.Action, chk.Reason)
		}
		all, err := w.p.Devices(ctx, store.DeviceFilter{})
		if err != nil || len(all) != i+1 {
			t.Fatalf("devices: %d, %v", len(all), err)
		}
		for _, sd := range all {
			if sims[sd.ID] == nil {
				sims[sd.ID] = d
				if i < 3 {
					pilots = append(pilots, sd.ID)
					if err := w.p.AddDeviceLabel(ctx, sd.ID, store.LabelTag, "pilot"); err != nil {
						t.Fatal(err)
					}
				} else {
					outside = sd.ID
				}
			}
		}
	}
	w.publish("1.1.0", 2, release.KindSecurity)
	// A rollout whose first wave holds some pilots and not all (the
	// buckets depend on the random rollout ID: abort and start again
	// until they split).
	var ro project.ManagedRollout
	var first, second []string
	for range 30 {
		ro = w.managedRollout("1.1.0", "tag=pilot", "50%,100%")
		first, second = nil, nil
		for _, id := range pilots {
			if ro.Plan.WaveOf(rollout.WaveBucket(ro.ID, id)) == 0 {
				first = append(first, id)
			} else {
				second = append(second, id)
			}
		}
		if len(first) > 0 && len(second) > 0 {
			break
		}
		if _, err := w.p.AbortRollout(ctx, ro.ID, "the waves did not split the pilots"); err != nil {
			t.Fatal(err)
		}
	}
	if len(first) == 0 || len(second) == 0 {
		t.Fatal("30 rollouts never split three pilots over two waves")
	}
	for _, id := range first {
		w.cycle(sims[id])
		w.assertRunning(sims[id], "1.1.0")
	}
	for _, id := range append(append([]string(nil), second...), outside) {
		if chk := w.cycle(sims[id]); chk.Action != "none" || !strings.Contains(chk.Reason, "no release") {
			t.Errorf("device %s (not in an open wave): %q (%s), want none: no release offered", id, chk.Action, chk.Reason)
		}
		w.assertRunning(sims[id], "1.0.0")
	}
	// The shared view (what anonymous devices read) offers nothing.
	if offered := sharedTargets(t, w.url); offered[product+"/1.1.0"] {
		t.Errorf("a managed rollout published %s/1.1.0 in the shared fleet view", product)
	}
	// Every device of the first wave succeeded: the decision loop opens
	// the second.
	if steps, err := w.p.Tick(ctx); err != nil || steps == 0 {
		t.Fatalf("Tick: %d steps, %v", steps, err)
	}
	st, err := w.p.RolloutStatus(ctx, ro.ID)
	if err != nil || st.Rollout.State.Wave != 1 {
		t.Fatalf("after Tick: %+v, %v; want the second wave open", st.Rollout.State, err)
	}
	w.reload()
	for _, id := range second {
		w.cycle(sims[id])
		w.assertRunning(sims[id], "1.1.0")
	}
	if chk := w.cycle(sims[outside]); chk.Action != "none" {
		t.Errorf("the device outside the selection: %q (%s)", chk.Action, chk.Reason)
	}
	w.assertRunning(sims[outside], "1.0.0")
}

// sharedTargets reads the shared fleet view unsigned, as an anonymous
// device does, and returns the target paths it lists.
func sharedTargets(t *testing.T, base string) map[string]bool {
	t.Helper()
	read := func(path string) []byte {
		code, body, _ := get(t, base+"/repo/fleet/metadata/"+path)
		if code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		return body
	}
	ts, err := metadata.Timestamp().FromBytes(read("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := metadata.Snapshot().FromBytes(read(fmt.Sprintf("%d.snapshot.json", ts.Signed.Meta["snapshot.json"].Version)))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := metadata.Targets().FromBytes(read(fmt.Sprintf("%d.targets.json", snap.Signed.Meta["targets.json"].Version)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for p := range tg.Signed.Targets {
		out[p] = true
	}
	return out
}
