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

// TestCorruptMetadataCacheRecovers: a garbage cached root, timestamp,
// snapshot or targets file of either repository does not stop the device:
// a cached non-root file that does not parse is fetched again, and an
// unreadable cached root is replaced by re-walking the root chain from the
// provisioned one.
func TestCorruptMetadataCacheRecovers(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	for _, repo := range []string{"release", "fleet"} {
		for _, file := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
			t.Run(repo+"/"+file, func(t *testing.T) {
				d := w.device(repo+"-"+strings.TrimSuffix(file, ".json"), 0)
				if chk := w.cycle(d); chk == nil {
					t.Fatal("no check")
				}
				w.assertRunning(d, "1.1.0")
				path := filepath.Join(d.Config.DataDir, "tuf", repo, file)
				if err := os.WriteFile(path, []byte("\x00garbage{"), 0o600); err != nil {
					t.Fatal(err)
				}
				chk := w.cycle(d)
				if chk.Action != "none" || chk.ErrorClass != "" {
					t.Fatalf("check after a garbage cached %s: %+v", file, chk)
				}
				s, err := agent.LoadState(d.Config.DataDir)
				if err != nil || s.Recovered == nil || !strings.Contains(s.Recovered.What, "cached "+repo+" metadata "+file) || !s.Recovered.Reported {
					t.Fatalf("recovery record %+v, %v", s.Recovered, err)
				}
			})
		}
	}
}

// TestUnreadableRootCannotLowerTheRootVersion: when the cached root is
// unreadable, the chain walked again from the provisioned root must reach
// the newest root version the device trusted before (floor.json).
func TestUnreadableRootCannotLowerTheRootVersion(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	d := w.device("d", 0)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	floor := filepath.Join(d.Config.DataDir, "floor.json")
	b, err := os.ReadFile(floor)
	if err != nil || !strings.Contains(string(b), `"roots":{"fleet":1,"release":1}`) {
		t.Fatalf("floor.json %s, %v; want both root versions kept", b, err)
	}
	// As if this device had trusted release root 5 before its cache broke.
	if err := os.WriteFile(floor, []byte(strings.Replace(string(b), `"release":1`, `"release":5`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Config.DataDir, "tuf", "release", "root.json"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	chk := w.cycle(d)
	if chk.Action != "rejected" || chk.ErrorClass != report.ClassMetadataRollback || !strings.Contains(chk.Reason, "below version 5") {
		t.Fatalf("check: %+v; want a refused root rollback", chk)
	}
}
