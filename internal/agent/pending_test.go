package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
)

// progressOf returns the progress of a download of data cut after n bytes.
func progressOf(t *testing.T, data []byte, n int) payload.Progress {
	t.Helper()
	sum := sha256.Sum256(data)
	r, err := payload.NewResumable(int64(len(data)), map[string][]byte{"sha256": sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Install(context.Background(), bytes.NewReader(data[:n]), nopWriter{}, payload.Checkpoints{}); err == nil {
		t.Fatal("a cut download completed")
	}
	p, err := r.Progress()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadFormat1Progress loads the state.json of an agent that kept a
// route's progress in "download", "staged" or "delta" (state format 1 as
// released) and checks that the install continues from the same progress,
// by the same route; saved again, it is written in the new shape.
func TestLoadFormat1Progress(t *testing.T) {
	data := bytes.Repeat([]byte("firmware "), 4000)
	sum := sha256.Sum256(data)
	pr := progressOf(t, data, 12345)
	states, err := json.Marshal(pr.States)
	if err != nil {
		t.Fatal(err)
	}
	inline := fmt.Sprintf(`"offset": %d, "hash_states": %s, "etag": "\"e1\""`, pr.Offset, states)
	const deltaID = `"from": "1.0.0", "target": "thermostat/1.1.0.from-1.0.0.delta", "length": 36000, "sha256": "dd"`
	dl := release.Delta{From: "1.0.0", Target: "thermostat/1.1.0.from-1.0.0.delta", Length: 36000, SHA256: "dd"}
	for _, tc := range []struct {
		name, progress string // the progress object as format 1 wrote it
		compressed     bool
		route          transfer.Route
		image          int64
	}{
		{"download into the slot", `"download": {` + inline + `}`, false, transfer.RouteSlot, 0},
		{"compressed payload streamed into the slot", `"download": {` + inline + `, "image_offset": 40000}`, true, transfer.RouteZstdStream, 40000},
		{"staged compressed payload", `"staged": {` + inline + `}`, true, transfer.RouteStaged, 0},
		{"delta", `"delta": {` + deltaID + `, ` + inline + `}`, false, transfer.RouteDelta, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			compression := ""
			if tc.compressed {
				compression = `"compression": "zstd", "image_length": 90000, "image_sha256": "` + strings.Repeat("ab", 32) + `",`
			}
			state := fmt.Sprintf(`{"format_version": 1, "seq": 7, "phase": "writing", "version": "1.0.0", "security_version": 1,
  "max_security_version": 1, "seed": "AAAA", "owner": {},
  "pending": {"product": "thermostat", "version": "1.1.0", "security_version": 2, "target": "thermostat/1.1.0",
    "length": %d, "sha256": "%x", "slot": "b", "from": "a", "from_version": "1.0.0", %s %s}}`,
				len(data), sum, compression, tc.progress)
			if err := os.WriteFile(statePath(dir), []byte(state), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			p := s.Pending
			// The "etag" format 1 saved is ignored: the agent no longer
			// keeps or sends one (it used to be decoded into Progress).
			want := &transfer.Progress{Route: tc.route, Progress: pr, Image: tc.image}
			if !reflect.DeepEqual(p.Progress, want) {
				t.Fatalf("progress %+v, want %+v", p.Progress, want)
			}
			if wantDelta := tc.route == transfer.RouteDelta; (p.Delta != nil) != wantDelta || wantDelta && !sameDelta(p.Delta, dl) {
				t.Fatalf("delta %+v", p.Delta)
			}
			// The next check of the same release continues it.
			a := &Agent{cfg: &Config{DataDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			next := *p
			next.Progress, next.Delta = nil, nil
			a.savedProgress(s, &next, &deltaOffer{d: dl})
			saved := next.payloadProgress()
			if tc.route == transfer.RouteDelta {
				saved = next.deltaProgress()
			}
			if saved != p.Progress {
				t.Fatalf("the next check continues from %+v, want %+v", saved, p.Progress)
			}
			r, err := payload.NewResumable(int64(len(data)), map[string][]byte{"sha256": sum[:]})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Restore(saved.Progress); err != nil || r.Offset() != pr.Offset {
				t.Fatalf("restored at %d (%v), want %d", r.Offset(), err, pr.Offset)
			}
			// Saved again: the new shape, read back the same.
			if err := saveState(dir, s); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(statePath(dir))
			if err != nil {
				t.Fatal(err)
			}
			for key, n := range map[string]int{`"download":`: 0, `"staged":`: 0, `"progress":`: 1, `"offset":`: 1, `"etag":`: 0} {
				if got := bytes.Count(b, []byte(key)); got != n {
					t.Errorf("saved state has %s %d times, want %d:\n%s", key, got, n, b)
				}
			}
			back, err := LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Pending, p) {
				t.Fatalf("read back %+v, want %+v", back.Pending, p)
			}
		})
	}
}

// TestPendingContradictoryProgress: progress of the delta route without
// the delta, or a delta without its progress, is dropped.
func TestPendingContradictoryProgress(t *testing.T) {
	for _, in := range []string{
		`{"version": "1.1.0", "progress": {"route": "delta", "offset": 5, "hash_states": null}}`,
		`{"version": "1.1.0", "delta": {"from": "1.0.0", "target": "t", "length": 9, "sha256": "dd"}}`,
		`{"version": "1.1.0", "progress": {"route": "slot", "offset": 5, "hash_states": null},
		  "delta": {"from": "1.0.0", "target": "t", "length": 9, "sha256": "dd"}}`,
	} {
		var p Pending
		if err := json.Unmarshal([]byte(in), &p); err != nil {
			t.Fatal(err)
		}
		if p.Progress != nil || p.Delta != nil || p.Version != "1.1.0" {
			t.Errorf("%s: progress %+v, delta %+v", in, p.Progress, p.Delta)
		}
	}
	// A delta object without hash states (the new shape's identity) is
	// not format 1's progress.
	var p Pending
	if err := json.Unmarshal([]byte(`{"delta": {"from": "1.0.0", "offset": 0}}`), &p); err != nil || p.Progress != nil || p.Delta != nil {
		t.Fatalf("progress %+v, delta %+v, err %v", p.Progress, p.Delta, err)
	}
}
