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

// TestManagedOwnView: the real agent in managed mode updates from its own
// fleet view. Of two accepted devices under one rollout percent, the one
// the server selected updates and the other is offered nothing (its own
// view lists no release), while the shared view anonymous devices read
// still carries the percent; a halted rollout offers nothing to anyone,
// and resuming it updates both.
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
	const rolloutID = product + "/1.1.0"
	// Enrol until two devices fall in different percent steps of the
	// rollout's buckets.
	type enrolled struct {
		d      *sim.Device
		bucket int
	}
	var devs []enrolled
	var lo, hi *enrolled
	for i := 0; i < 5 && hi == nil; i++ {
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
		known := map[int]bool{}
		for _, e := range devs {
			known[e.bucket] = true
		}
		for _, sd := range all {
			b := rollout.WaveBucket(rolloutID, sd.ID)
			if !known[b] {
				devs = append(devs, enrolled{d, b})
			}
		}
		for a := range devs {
			for b := range devs {
				if devs[a].bucket/100 < devs[b].bucket/100 {
					lo, hi = &devs[a], &devs[b]
				}
			}
		}
	}
	if hi == nil {
		t.Fatal("five devices in one percent step of the buckets")
	}
	percent := hi.bucket / 100 // admits buckets below percent*100: lo, not hi
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", percent)
	w.cycle(lo.d)
	w.assertRunning(lo.d, "1.1.0")
	if chk := w.cycle(hi.d); chk.Action != "none" || !strings.Contains(chk.Reason, "no release") {
		t.Errorf("the unselected device: %q (%s), want none: no release offered", chk.Action, chk.Reason)
	}
	w.assertRunning(hi.d, "1.0.0")
	// The shared view (unsigned, as anonymous devices read it) still
	// offers the release under the percent.
	if r := sharedRule(t, w.url, rolloutID); r.Percent != percent || r.Halted {
		t.Errorf("the shared view's rule %+v, want percent %d", r, percent)
	}

	// Halted: nobody is offered 1.2.0; resumed: both update.
	w.publish("1.2.0", 3, release.KindSecurity)
	w.rollout("1.2.0", 100)
	if _, err := w.p.ChangeRollout(ctx, product, func(r *store.Rollout) { r.Halted = true }); err != nil {
		t.Fatal(err)
	}
	w.reload()
	for _, e := range []*enrolled{lo, hi} {
		if chk := w.cycle(e.d); chk.Action != "none" {
			t.Errorf("%s under a halted rollout: %q (%s)", e.d.Name, chk.Action, chk.Reason)
		}
	}
	w.assertRunning(lo.d, "1.1.0")
	w.assertRunning(hi.d, "1.0.0")
	if _, err := w.p.ChangeRollout(ctx, product, func(r *store.Rollout) { r.Halted = false }); err != nil {
		t.Fatal(err)
	}
	w.reload()
	for _, e := range []*enrolled{lo, hi} {
		w.cycle(e.d)
		w.assertRunning(e.d, "1.2.0")
	}
}

// sharedRule reads the shared fleet view unsigned, as an anonymous device
// does, and returns the rollout rule of target.
func sharedRule(t *testing.T, base, target string) *rollout.Rule {
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
	tf, ok := tg.Signed.Targets[target]
	if !ok || tf.Custom == nil {
		t.Fatalf("the shared view does not offer %s", target)
	}
	r, err := rollout.RuleFromCustom(*tf.Custom)
	if err != nil || r == nil {
		t.Fatalf("rule of %s: %v", target, err)
	}
	return r
}
