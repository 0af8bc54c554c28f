package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/release"
)

// TestPowerLossCoversTheStateMachine walks the agent's state table. Each
// scenario cuts power at one or more points (one per cycle), boots the
// device, checks that it boots a verified image, lets it finish, and checks
// where it ends. Together the scenarios must take every step of the table
// from every phase the table allows it from (agent.Transitions), cut power
// at every step's point, and run every phase's restart entry; the test
// fails naming what no scenario reached.
func TestPowerLossCoversTheStateMachine(t *testing.T) {
	errArm := errors.New("test: the bootloader environment cannot be written")
	cut, passed := map[string]bool{}, map[string]bool{}
	taken := map[agent.Transition]bool{}
	defer func() {
		for _, tr := range agent.Transitions() {
			if !taken[tr] {
				t.Errorf("no scenario takes step %q from %s to %s", tr.Point, tr.From, tr.To)
			}
			if !cut[tr.Point] {
				t.Errorf("no scenario cuts power at step %q", tr.Point)
			}
		}
		for phase, p := range agent.RestartPoints() {
			if !passed[p] {
				t.Errorf("the restart entry of phase %s never ran", phase)
			}
		}
	}()
	for _, tc := range []struct {
		// cuts are the points to cut power at, one per cycle, in order;
		// "point#n" cuts at the n-th time the cycle passes point.
		cuts      []string
		unhealthy bool
		big       bool // a 10 MiB payload, so that downloads save progress
		tamper    bool // the payload is altered on the way until the cuts are done
		armFault  bool // arming fails until the cuts are done
		commit    bool // after the cuts, someone else commits the booted slot
		fallback  bool // after the cuts, the device boots until the bootloader falls back
		want      string
	}{
		{cuts: []string{"writing"}, want: "1.1.0"},
		{cuts: []string{"arming"}, want: "1.1.0"},
		{cuts: []string{"rebooting"}, want: "1.1.0"},
		{cuts: []string{"rebooting"}, unhealthy: true, want: "1.0.0"},
		{cuts: []string{"committing"}, want: "1.1.0"},
		{cuts: []string{"idle-after-commit"}, want: "1.1.0"},
		{cuts: []string{"reverting"}, unhealthy: true, want: "1.0.0"},
		{cuts: []string{"idle-after-rollback"}, unhealthy: true, want: "1.0.0"},
		// Armed, then power lost: the device comes up on trial in the new
		// slot and the restart runs the trial.
		{cuts: []string{"after-arm"}, want: "1.1.0"},
		{cuts: []string{"after-arm"}, unhealthy: true, want: "1.0.0"},
		// Someone committed the new slot while the agent was rebooting.
		{cuts: []string{"rebooting"}, commit: true, want: "1.1.0"},
		// The bootloader gave the new slot up before the agent saw it.
		{cuts: []string{"rebooting"}, fallback: true, want: "1.0.0"},
		{cuts: []string{"committing"}, fallback: true, want: "1.0.0"},
		// A download cut after saved progress: the next check takes it over.
		{cuts: []string{"mid-write#12"}, big: true, want: "1.1.0"},
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
		name := fmt.Sprint(tc.cuts)
		for flag, on := range map[string]bool{"unhealthy": tc.unhealthy, "commit": tc.commit, "fallback": tc.fallback} {
			if on {
				name += "/" + flag
			}
		}
		// Each scenario gets its own world: a tampering proxy must not
		// leak into the next one.
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			if tc.big {
				w.publishBig("1.1.0", 2, bigSize)
			} else {
				w.publish("1.1.0", 2, release.KindSecurity)
				w.rollout("1.1.0", 100)
			}
			d := w.device("d", 0)
			d.Step = func(tr agent.Transition) { taken[tr] = true }
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
			for _, c := range tc.cuts {
				point, nth := c, 1
				if p, n, ok := strings.Cut(c, "#"); ok {
					point = p
					fmt.Sscan(n, &nth)
				}
				seen := 0
				d.PowerLoss = func(p string) error {
					passed[p] = true
					if p == point {
						if seen++; seen == nth {
							return agent.ErrPowerLoss
						}
					}
					return nil
				}
				_, err := d.Cycle(context.Background())
				if seen < nth || !errors.Is(err, agent.ErrPowerLoss) {
					t.Fatalf("power loss at %s: passed it %d times, cycle %v", c, seen, err)
				}
				cut[point] = true
				if _, err := d.Boot(); err != nil {
					t.Fatal(err)
				}
				assertBootsKnownImage(t, w, d)
			}
			if tc.commit {
				if err := d.Backend().Commit(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if tc.fallback {
				for i := 0; ; i++ {
					booted, err := d.Boot()
					if err != nil {
						t.Fatal(err)
					}
					if booted == slot.A {
						break
					}
					if i == 10 {
						t.Fatal("the bootloader never fell back")
					}
				}
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
