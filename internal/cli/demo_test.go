package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/demo"
	"github.com/uptrust/uptrust/internal/store"
)

// TestDemoManaged runs `uptrust demo --managed --json` and checks its
// promise against the counts: wave 1 succeeds and the decision loop opens
// wave 2; the failing devices of wave 2 roll back and the rollout halts
// itself there, naming the wave, its ratio and the threshold; no device
// of wave 3 was offered the release and each still runs 1.0.0; the text
// summary says so in words.
func TestDemoManaged(t *testing.T) {
	r := run(t, nil, "demo", "--managed", "--json", "--devices", "20", "--waves", "10%,40%,100%", "--max-failure", "20%", "--min-success", "2", "--soak", "0s")
	if r.code != 0 {
		t.Fatalf("demo --managed --json: %v", r)
	}
	var s demo.ManagedSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, r.stdout)
	}
	if s.Phase != "halted" || s.HaltedWave != 2 || s.Threshold != "20%" || !strings.Contains(s.Reason, "wave 2 of 3") || !strings.Contains(s.Reason, "20%") {
		t.Fatalf("rollout %s, halted in wave %d (%q, threshold %s); want halted in wave 2 above 20%%", s.Phase, s.HaltedWave, s.Reason, s.Threshold)
	}
	if len(s.Waves) != 3 {
		t.Fatalf("%d waves in the JSON, want 3", len(s.Waves))
	}
	members := [4]int{}
	failing, succeeded2 := 0, 0
	for _, d := range s.Results {
		members[d.Wave]++
		switch {
		case d.Wave == 1 && (d.After != "1.1.0" || !d.Offered):
			t.Errorf("%s of wave 1 runs %s (offered %v), want 1.1.0", d.Name, d.After, d.Offered)
		case d.Wave == 2 && d.Failing:
			failing++
			if d.After != "1.0.0" || len(d.Events) == 0 || d.Events[len(d.Events)-1] != store.EventRolledBack {
				t.Errorf("failing %s runs %s after %v, want 1.0.0 after rolled_back", d.Name, d.After, d.Events)
			}
		case d.Wave == 2:
			succeeded2++
			if d.After != "1.1.0" {
				t.Errorf("healthy %s of wave 2 runs %s", d.Name, d.After)
			}
		case d.Wave == 3 && (d.Offered || d.After != "1.0.0" || len(d.Events) != 0):
			t.Errorf("%s of wave 3 was offered the release (%v) or runs %s", d.Name, d.Events, d.After)
		}
	}
	w1, w2, w3 := s.Waves[0], s.Waves[1], s.Waves[2]
	if w1.State != "passed" || w1.Counts.Members != members[1] || w1.Counts.Succeeded != members[1] || w1.Counts.RolledBack != 0 {
		t.Errorf("wave 1: %+v, want passed with all %d succeeded", w1, members[1])
	}
	if w2.State != "halted" || !w2.Failing || w2.Counts.Members != members[2] || w2.Counts.RolledBack != failing || w2.Counts.Succeeded != succeeded2 || failing == 0 {
		t.Errorf("wave 2: %+v, want halted with %d rolled back and %d succeeded of %d", w2, failing, succeeded2, members[2])
	}
	if w3.State != "pending" || w3.Counts.Members != members[3] || w3.Counts.Members == 0 || w3.Counts.Offered+w3.Counts.Succeeded+w3.Counts.Failed+w3.Counts.RolledBack != 0 {
		t.Errorf("wave 3: %+v, want pending, %d members, nothing offered", w3, members[3])
	}
	if s.NeverOffered != members[3] {
		t.Errorf("never offered: %d, want the %d devices of wave 3", s.NeverOffered, members[3])
	}
	if n := len(s.Decisions); n < 2 || !strings.Contains(s.Decisions[n-2], "advance: wave 1 of 3") || !strings.Contains(s.Decisions[n-1], "halt: wave 2 of 3") {
		t.Errorf("decisions %q, want the advance past wave 1, then the halt in wave 2", s.Decisions)
	}
	if !strings.Contains(r.stderr, "==>") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}

	// The text summary says it in words.
	r = run(t, nil, "demo", "--managed", "--devices", "12")
	if r.code != 0 || !strings.Contains(r.stdout, "The rollout halted itself in wave 2") || !strings.Contains(r.stdout, "above the 20% allowed") ||
		!strings.Contains(r.stdout, "were never offered 1.1.0 and still run 1.0.0") || !strings.Contains(r.stdout, "never offered") {
		t.Errorf("demo --managed: %v", r)
	}
}

// TestDemoManagedBadInput: flags the managed demo cannot run with are
// clear errors before anything runs.
func TestDemoManagedBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--waves", "50%,100%"}, "need --managed"},
		{[]string{"--managed", "--waves", "50%,100%"}, "at least three waves"},
		{[]string{"--managed", "--soak", "1h"}, "does not wait"},
		{[]string{"--managed", "--max-failure", "lots"}, "lots"},
		{[]string{"--managed", "--devices", "-2"}, "-2"},
		{[]string{"--managed", "--waves", "40%,10%,100%"}, "not above wave 1"},
	} {
		r := run(t, nil, append([]string{"demo"}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stdout+r.stderr, "==> uptrust init") {
			t.Errorf("demo %v: code %d, stderr %q; want an error naming %q before anything runs", c.args, r.code, r.stderr, c.want)
		}
	}
}
