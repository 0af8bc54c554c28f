package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMirrorCommand(t *testing.T) {
	proj := devProject(t)
	for _, args := range [][]string{
		{"mirror"},
		{"mirror", "copy", "x"},
		{"mirror", "export"},
		{"mirror", "export", "a", "b"},
		{"mirror", "sync", "x", "--grace", "-1h"},
		{"mirror", "export", "x", "--grace", "1h"}, // sync only
	} {
		r := run(t, nil, append(args, "--dir", proj)...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage:") {
			t.Errorf("uptrust %s: want a usage error (exit 2), got %v", strings.Join(args, " "), r)
		}
	}

	out := filepath.Join(t.TempDir(), "mirror")
	r := mustRun(t, nil, "mirror", "export", out, "--dir", proj)
	for _, want := range []string{"files written", "/repo/release: timestamp v", "/repo/fleet: timestamp v", "at least every 6h\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("export output lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "repo", "release", "metadata", "timestamp.json")); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, nil, "mirror", "sync", out, "--grace", "0", "--verify", "--dir", proj)
	if !strings.Contains(r.stdout, "0 files written") || !strings.Contains(r.stdout, "0 removed") {
		t.Errorf("a sync with nothing new changed something:\n%s", r.stdout)
	}

	// Failures exit 1 and say what and where.
	r = run(t, nil, "mirror", "export", out, "--dir", proj)
	if r.code != 1 || !strings.Contains(r.stderr, out) || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("export into a mirror: %v", r)
	}
	other := t.TempDir()
	r = run(t, nil, "mirror", "sync", other, "--dir", proj)
	if r.code != 1 || !strings.Contains(r.stderr, "not a mirror") || !strings.Contains(r.stderr, "export first") {
		t.Errorf("sync of a plain directory: %v", r)
	}
}
