package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/release"
)

// TestPowerLossCoversTheStateMachine walks the agent's state table: it cuts
// power at every step the table lists (each step's power-loss point), in a
// scenario that takes it, boots the device, checks that it boots a verified
// image, and lets it finish. It fails if a step of the table has no
// scenario here, or if a phase's restart entry never ran.
func TestPowerLossCoversTheStateMachine(t *testing.T) {
	errArm := errors.New("test: the bootloader environment cannot be written")
	cut, passed := map[string]bool{}, map[string]bool{}
	defer func() {
		for _, tr := range agent.Transitions() {
			if !cut[tr.Point] {
				t.Errorf("no scenario cuts power at step %q (%s to %s)", tr.Point, tr.From, tr.To)
			}
		}
		for phase, p := range agent.RestartPoints() {
			if !passed[p] {
				t.Errorf("the restart entry of phase %s never ran", phase)
			}
		}
	}()
	for _, tc := range []struct {
		// cuts are the points to cut power at, one per cycle, in order.
		cuts      []string
		unhealthy bool
		tamper    bool // the payload is altered on the way until the cuts are done
		armFault  bool // arming fails until the cuts are done
		want      string
	}{
		{cuts: []string{"writing"}, want: "1.1.0"},
		{cuts: []string{"arming"}, want: "1.1.0"},
		{cuts: []string{"rebooting"}, want: "1.1.0"},
		{cuts: []string{"committing"}, want: "1.1.0"},
		{cuts: []string{"idle-after-commit"}, want: "1.1.0"},
		{cuts: []string{"reverting"}, unhealthy: true, want: "1.0.0"},
		{cuts: []string{"idle-after-rollback"}, unhealthy: true, want: "1.0.0"},
		// A write cut before any saved progress: the restart forgets it.
		{cuts: []string{"writing", "idle-after-interrupted-write"}, want: "1.1.0"},
		// A payload refused by its hash: the partial install is dropped.
		{cuts: []string{"idle-after-drop"}, tamper: true, want: "1.1.0"},
		// The bootloader cannot be armed: the install is abandoned.
		{cuts: []string{"idle-after-abandon"}, armFault: true, want: "1.1.0"},
		// Power lost again at the start of each restart.
		{cuts: []string{"arming", "restart-arming"}, want: "1.1.0"},
		{cuts: []string{"rebooting", "restart-rebooting"}, want: "1.1.0"},
		{cuts: []string{"committing", "restart-committing"}, want: "1.1.0"},
		{cuts: []string{"reverting", "restart-reverting"}, unhealthy: true, want: "1.0.0"},
		{cuts: []string{"writing", "restart-writing"}, want: "1.1.0"},
	} {
		// Each scenario gets its own world: a tampering proxy must not
		// leak into the next one.
		t.Run(fmt.Sprint(tc.cuts), func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			w.publish("1.1.0", 2, release.KindSecurity)
			w.rollout("1.1.0", 100)
			d := w.device("d", 0)
			if tc.unhealthy {
				d.Health = func(contextT) error { return errUnhealthy }
			}
			if tc.tamper {
				w.proxy.rewrite(isPayload("1.1.0"), func(_ string, b []byte) []byte {
					b[len(b)/2] ^= 0x40
					return b
				})
			}
			if tc.armFault {
				d.Fault = func(op string, at fileslot.FaultPoint) error {
					if op == "arm" && at == fileslot.BeforeEnvWrite {
						return errArm
					}
					return nil
				}
			}
			for _, point := range tc.cuts {
				fired := false
				d.PowerLoss = func(p string) error {
					passed[p] = true
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
				cut[point] = true
				if _, err := d.Boot(); err != nil {
					t.Fatal(err)
				}
				assertBootsKnownImage(t, w, d)
			}
			w.proxy.clear()
			d.Fault = nil
			d.PowerLoss = func(p string) error { passed[p] = true; return nil }
			for range 3 {
				w.cycle(d)
			}
			w.assertRunning(d, tc.want)
		})
	}
}
