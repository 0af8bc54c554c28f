package agent

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// TestCanStage checks when a compressed payload is staged: only with
// staging on and room for it (what is staged already counts).
func TestCanStage(t *testing.T) {
	dir := t.TempDir()
	free, err := freeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	off := false
	for _, tc := range []struct {
		name   string
		stage  *bool
		length int64
		staged int64 // bytes in payload.tmp with saved progress (-1: none)
		want   bool
	}{
		{"small payload", nil, 1 << 20, -1, true},
		{"staging off", &off, 1 << 20, -1, false},
		{"larger than the free space", nil, free, -1, false},
		{"what is staged counts", nil, free, free - 1<<20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{cfg: &Config{DataDir: dir, StageCompressed: tc.stage}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			p := &Pending{Version: "1.1.0", Length: tc.length}
			os.Remove(a.stagedFile())
			if tc.staged >= 0 {
				f, err := os.Create(a.stagedFile())
				if err != nil {
					t.Fatal(err)
				}
				// A sparse file: its size, not its blocks, is what counts.
				if err := f.Truncate(tc.staged); err != nil {
					t.Fatal(err)
				}
				f.Close()
				p.Staged = &Download{}
			}
			if got := a.canStage(p); got != tc.want {
				t.Fatalf("canStage = %v, want %v (free %d)", got, tc.want, free)
			}
		})
	}
}
