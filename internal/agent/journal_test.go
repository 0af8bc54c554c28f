package agent

import (
	"testing"

	"github.com/uptrust/uptrust/internal/agent/transfer"
)

// provisioned returns a data directory with a provisioned state.json.
func provisioned(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := Provision(dir, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkpoint writes s into the journal as a download checkpoint does.
func checkpoint(t *testing.T, dir string, s *State) {
	t.Helper()
	j, err := transfer.OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	b, err := encodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Write(s.Seq, b); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, dir string) *State {
	t.Helper()
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJournalNewerThanState: a checkpoint written after state.json is what
// LoadState returns; a state.json saved after it wins again.
func TestJournalNewerThanState(t *testing.T) {
	dir := provisioned(t)
	s := load(t, dir)
	s.Phase = PhaseWriting
	s.Pending = &Pending{Version: "1.1.0", Progress: &transfer.Progress{Route: transfer.RouteSlot}}
	for _, off := range []int64{1 << 19, 2 << 19, 3 << 19} {
		s.Pending.Progress.Offset = off
		checkpoint(t, dir, s)
		if got := load(t, dir); got.Pending == nil || got.Pending.Progress.Offset != off || got.Seq != s.Seq {
			t.Fatalf("after the checkpoint at %d LoadState gives %+v (seq %d, want %d)", off, got.Pending, got.Seq, s.Seq)
		}
	}
	s.Phase, s.Pending = PhaseIdle, nil
	if err := saveState(dir, s); err != nil {
		t.Fatal(err)
	}
	if got := load(t, dir); got.Pending != nil || got.Phase != PhaseIdle {
		t.Fatalf("state.json saved after the checkpoints: LoadState gives phase %s, pending %+v", got.Phase, got.Pending)
	}
}
