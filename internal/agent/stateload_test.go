package agent

import (
	"os"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/transfer"
)

// savedTwice returns a provisioned data directory whose state was saved
// twice more (so state.prev.json exists), with the anti-rollback floor at
// 3, and the state of its last save.
func savedTwice(t *testing.T) (string, *State) {
	t.Helper()
	dir := t.TempDir()
	if err := Provision(dir, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Version, s.SecurityVersion, s.MaxSecurityVersion = "1.1.0", 3, 3
	if err := keepFloor(dir, s); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.9", "1.1.0"} {
		s.Offered = []string{v}
		if err := saveState(dir, s); err != nil {
			t.Fatal(err)
		}
	}
	return dir, s
}

func TestLoadStateRecovers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state []byte // state.json's content; nil: removed
		// prev, when set, replaces state.prev.json (nil: kept)
		prev        []byte
		removeFloor bool
		// want: the Offered of the state taken ("" for a state rebuilt
		// from the floor), and a substring of Recovered.What.
		want, what string
	}{
		{name: "empty", state: []byte{}, want: "1.0.9", what: "state.json is corrupt"},
		{name: "garbage", state: []byte("\x00\x01garbage"), want: "1.0.9", what: "is corrupt"},
		{name: "cut short", state: []byte(`{"format_version": 1, "phase": "idle", "vers`), want: "1.0.9", what: "is corrupt"},
		{name: "future format", state: []byte(`{"format_version": 9}`), want: "1.0.9", what: "format 9 not supported"},
		{name: "missing", state: nil, want: "1.0.9", what: "state.json is missing"},
		{name: "both unreadable: rebuilt from the floor", state: []byte("x"), prev: []byte("y"), want: "", what: "rebuilt the state from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, saved := savedTwice(t)
			if tc.state == nil {
				os.Remove(statePath(dir))
			} else if err := os.WriteFile(statePath(dir), tc.state, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.prev != nil {
				if err := os.WriteFile(prevStatePath(dir), tc.prev, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(s.Offered, ","); got != tc.want {
				t.Fatalf("took the state offering %q, want %q", got, tc.want)
			}
			if s.Recovered == nil || !strings.Contains(s.Recovered.What, tc.what) {
				t.Fatalf("recovered %+v, want it to say %q", s.Recovered, tc.what)
			}
			if s.MaxSecurityVersion != 3 || s.Version != "1.1.0" || s.Phase != PhaseIdle {
				t.Fatalf("running %s, floor %d, phase %s; want 1.1.0, 3, idle", s.Version, s.MaxSecurityVersion, s.Phase)
			}
			if len(s.Seed) != 32 || !strings.Contains(tc.what, "rebuilt") && string(s.Seed) != string(saved.Seed) {
				t.Fatalf("seed %x", s.Seed)
			}
		})
	}
}

func TestLoadStateWithoutAnythingToRecoverFrom(t *testing.T) {
	dir, _ := savedTwice(t)
	for _, p := range []string{statePath(dir), prevStatePath(dir)} {
		if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(floorPath(dir))
	if _, err := LoadState(dir); err == nil || !strings.Contains(err.Error(), "no anti-rollback floor") || !strings.Contains(err.Error(), "state.json is corrupt") {
		t.Fatalf("load: %v", err)
	}
	if _, err := LoadState(t.TempDir()); err != ErrNotProvisioned {
		t.Fatalf("empty data directory: %v, want ErrNotProvisioned", err)
	}
}

// TestLoadStateSkipsAnUndecodableJournalRecord: a journal record whose
// checksum holds but whose content does not decode is passed over.
func TestLoadStateSkipsAnUndecodableJournalRecord(t *testing.T) {
	dir, saved := savedTwice(t)
	j, err := transfer.OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Write(saved.Seq+1, []byte(`{"format_version": 1, "phase": `)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Seq != saved.Seq || s.Recovered == nil || !strings.Contains(s.Recovered.What, "state.journal is corrupt") {
		t.Fatalf("took save %d (want %d), recovered %+v", s.Seq, saved.Seq, s.Recovered)
	}
}

// TestLoadStateRaisesTheFloor: a state older than the floor (taken from
// state.prev.json, say) never lowers it.
func TestLoadStateRaisesTheFloor(t *testing.T) {
	dir, s := savedTwice(t)
	s.MaxSecurityVersion = 1
	if err := saveState(dir, s); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxSecurityVersion != 3 || got.Recovered == nil {
		t.Fatalf("floor %d, recovered %+v; want 3 and a note", got.MaxSecurityVersion, got.Recovered)
	}
}

// TestLoadStateKeepsTheFloorOfAnOlderDataDirectory: a data directory from
// before floor.json gets one at its first load.
func TestLoadStateKeepsTheFloorOfAnOlderDataDirectory(t *testing.T) {
	dir, _ := savedTwice(t)
	os.Remove(floorPath(dir))
	if _, err := LoadState(dir); err != nil {
		t.Fatal(err)
	}
	f, err := readFloor(dir)
	if err != nil || f == nil || f.MaxSecurityVersion != 3 || f.Version != "1.1.0" {
		t.Fatalf("floor %+v, %v", f, err)
	}
}
