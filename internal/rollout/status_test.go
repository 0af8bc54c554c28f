package rollout

import (
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	p := testPlan()
	c := []Counts{{Members: 100, Succeeded: 95, Failed: 5}, {Members: 900, Succeeded: 90, Failed: 6, RolledBack: 4, Skipped: 3}, {}, {}}
	for _, tc := range []struct {
		st   State
		want string
	}{
		{NewState(), "pending,pending,pending,pending"},
		{State{Phase: PhaseActive, Wave: 1, Since: t0}, "passed,active,pending,pending"},
		{State{Phase: PhasePaused, Wave: 1, Since: t0}, "passed,paused,pending,pending"},
		{State{Phase: PhaseHalted, Wave: 1, Since: t0}, "passed,halted,pending,pending"},
		{State{Phase: PhaseAborted, Wave: 1, Since: t0}, "passed,aborted,cancelled,cancelled"},
		{State{Phase: PhaseComplete, Wave: 3, Since: t0}, "passed,passed,passed,passed"},
	} {
		ws, err := Status(p, tc.st, c)
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, w := range ws {
			states = append(states, w.State)
		}
		if got := strings.Join(states, ","); got != tc.want {
			t.Errorf("%+v: states %s, want %s", tc.st, got, tc.want)
		}
	}
	ws, err := Status(p, State{Phase: PhaseActive, Wave: 1, Since: t0}, c)
	if err != nil {
		t.Fatal(err)
	}
	if w := ws[0]; w.Wave != 1 || w.Share != "1%" || w.FailurePercent != 5 || w.Failing || w.Counts != c[0] {
		t.Errorf("wave 1: %+v (5 %% is not above the 5 %% maximum)", w)
	}
	if w := ws[1]; w.Wave != 2 || w.Share != "10%" || w.FailurePercent != 10 || !w.Failing {
		t.Errorf("wave 2: %+v", w)
	}
	if w := ws[2]; w.FailurePercent != 0 || w.Failing {
		t.Errorf("wave 3 with nothing finished: %+v", w)
	}
	if _, err := Status(p, NewState(), c[:2]); err == nil || !strings.Contains(err.Error(), "2 wave counts for a plan of 4 waves") {
		t.Errorf("short counts: %v", err)
	}
	if _, err := Status(p, NewState(), []Counts{{Skipped: -1}, {}, {}, {}}); err == nil || !strings.Contains(err.Error(), "skipped count -1 is negative") {
		t.Errorf("negative counts: %v", err)
	}
}
