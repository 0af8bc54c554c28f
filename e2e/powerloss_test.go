package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/sim"
)

// TestPowerLossAtEveryStep cuts power at every persisted step of an install
// (and of a rollback), boots the device, and checks that it always boots a
// verified image and ends where it should: updated, or rolled back when the
// new release is unhealthy.
func TestPowerLossAtEveryStep(t *testing.T) {
	type cut struct {
		point   string // agent step, or "<op>/<fault point>" in the slot backend
		healthy bool
	}
	var cuts []cut
	for _, p := range []string{"writing", "mid-write", "arming", "after-arm", "rebooting", "committing", "after-commit", "idle-after-commit",
		"arm/" + string(fileslot.BeforeEnvWrite), "arm/" + string(fileslot.AfterEnvWrite),
		"commit/" + string(fileslot.BeforeEnvWrite), "commit/" + string(fileslot.AfterEnvWrite)} {
		cuts = append(cuts, cut{p, true})
	}
	for _, p := range []string{"writing", "arming", "rebooting", "reverting", "after-revert", "idle-after-rollback",
		"revert/" + string(fileslot.BeforeEnvWrite), "revert/" + string(fileslot.AfterEnvWrite)} {
		cuts = append(cuts, cut{p, false})
	}
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	for i, c := range cuts {
		name := fmt.Sprintf("cut-%02d", i)
		t.Run(fmt.Sprintf("%s/healthy=%v", c.point, c.healthy), func(t *testing.T) {
			d := w.device(name, 0)
			if !c.healthy {
				d.Health = func(contextT) error { return errUnhealthy }
			}
			fired := false
			fire := func(p string) error {
				if !fired && p == c.point {
					fired = true
					return agent.ErrPowerLoss
				}
				return nil
			}
			d.PowerLoss = fire
			d.Fault = func(op string, at fileslot.FaultPoint) error { return fire(op + "/" + string(at)) }
			_, err := d.Cycle(context.Background())
			if !fired {
				t.Fatalf("power-loss point %q never reached (cycle: %v)", c.point, err)
			}
			if !errors.Is(err, agent.ErrPowerLoss) {
				t.Fatalf("cycle after power loss: %v, want ErrPowerLoss", err)
			}
			// Power comes back: the bootloader runs and must find a
			// verified image.
			if _, err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			assertBootsKnownImage(t, w, d)
			d.PowerLoss, d.Fault = nil, nil
			for range 3 {
				w.cycle(d)
			}
			if c.healthy {
				w.assertRunning(d, "1.1.0")
			} else {
				st := w.assertRunning(d, "1.0.0")
				if _, ok := st.Failed["1.1.0"]; !ok {
					t.Fatalf("rollback not recorded: %+v", st)
				}
			}
		})
	}
}

// assertBootsKnownImage checks that the booted slot holds exactly one of the
// published images.
func assertBootsKnownImage(t *testing.T, w *world, d *sim.Device) {
	t.Helper()
	for v, img := range w.images {
		slot, sum, err := d.BootedImage(context.Background(), int64(len(img)))
		if err != nil {
			continue
		}
		want := sha256.Sum256(img)
		if sum == hex.EncodeToString(want[:]) {
			t.Logf("after power loss the device boots %s from slot %s", v, slot)
			return
		}
	}
	t.Fatalf("after power loss the booted slot holds no verified image")
}

// cutPowerAt runs a cycle that loses power at the agent step point, powers
// the device on again and checks that it boots a verified image. The hook is
// removed afterwards.
func cutPowerAt(t *testing.T, w *world, d *sim.Device, point string) {
	t.Helper()
	fired := false
	d.PowerLoss = func(p string) error {
		if !fired && p == point {
			fired = true
			return agent.ErrPowerLoss
		}
		return nil
	}
	_, err := d.Cycle(context.Background())
	if !fired || !errors.Is(err, agent.ErrPowerLoss) {
		t.Fatalf("power loss at %s: fired %v, cycle %v", point, fired, err)
	}
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	assertBootsKnownImage(t, w, d)
	d.PowerLoss = nil
}
