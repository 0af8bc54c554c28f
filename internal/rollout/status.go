package rollout

import "fmt"

// WaveStatus is one wave in a rollout's status view, the same for the API
// and the CLI (`uptrust rollout status`).
type WaveStatus struct {
	// Wave is the wave's number for people, 1-based.
	Wave int `json:"wave"`
	// Share is the wave's cumulative share of the selected devices: "10%".
	Share string `json:"share"`
	// State is one of: pending (not started), active, paused, halted
	// (the rollout is, at this wave), passed, cancelled (not started and
	// the rollout was aborted), aborted (active when it was aborted).
	State  string `json:"state"`
	Counts Counts `json:"counts"`
	// FailurePercent is failed plus rolled back over finished, in percent;
	// 0 when none has finished.
	FailurePercent float64 `json:"failure_percent"`
	// Failing reports whether the ratio is above the plan's MaxFailure, as
	// Decide judges it.
	Failing bool `json:"failing"`
}

// Status returns the status view of every wave of a rollout, in order.
func Status(p Plan, st State, counts []Counts) ([]WaveStatus, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := st.validate(p); err != nil {
		return nil, err
	}
	if len(counts) != len(p.Waves) {
		return nil, fmt.Errorf("rollout: %d wave counts for a plan of %d waves", len(counts), len(p.Waves))
	}
	out := make([]WaveStatus, len(p.Waves))
	for k, c := range counts {
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("rollout: %s: %w", p.waveName(k), err)
		}
		ws := WaveStatus{Wave: k + 1, Share: FormatShare(p.Waves[k]), Counts: c, State: waveState(st, k)}
		if fin := c.Finished(); fin > 0 {
			ws.FailurePercent = float64(c.Failed+c.RolledBack) * 100 / float64(fin)
		}
		_, ws.Failing = p.failing(k, c)
		out[k] = ws
	}
	return out, nil
}

func waveState(st State, k int) string {
	switch {
	case st.Phase == PhaseComplete && k <= st.Wave:
		return "passed"
	case st.Phase == PhaseScheduled:
		return "pending"
	case k < st.Wave:
		return "passed"
	case k > st.Wave && st.Phase == PhaseAborted:
		return "cancelled"
	case k > st.Wave:
		return "pending"
	}
	return string(st.Phase) // active, paused, halted, aborted
}
