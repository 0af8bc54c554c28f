package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// TestCorruptStateRecovers: a device whose state.json and the state before
// it are unreadable keeps updating, keeps its anti-rollback floor, says so
// in status and reports it once; before, every later check failed until
// the device was re-provisioned, which reset the floor.
func TestCorruptStateRecovers(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 3, release.KindSecurity)
	w.rollout("1.1.0", 100)
	d := w.device("d", 0)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	for _, name := range []string{"state.json", "state.prev.json"} {
		if err := os.WriteFile(filepath.Join(d.Config.DataDir, name), []byte("\x00garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w.publish("1.2.0", 3, release.KindFix)
	w.rollout("1.2.0", 100)
	w.cycle(d)
	st := w.assertRunning(d, "1.2.0")
	if st.MaxSecurityVersion != 3 {
		t.Fatalf("anti-rollback floor %d after recovery, want 3", st.MaxSecurityVersion)
	}
	found := false
	for _, warn := range st.Warnings {
		found = found || strings.Contains(warn, "was recovered") && strings.Contains(warn, "rebuilt the state from")
	}
	if !found {
		t.Fatalf("status warnings %q do not say the state was recovered", st.Warnings)
	}
	w.assertReport(report.OutcomeFailed, report.ClassStateRecovered)
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil || s.Recovered == nil || !s.Recovered.Reported {
		t.Fatalf("state after the check: %+v, %v", s, err)
	}
}
