package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/release"
)

func TestSavedDelta(t *testing.T) {
	d := release.Delta{From: "1.0.0", Target: "thermostat/1.1.0.from-1.0.0.delta", Length: 1000, SHA256: "aa"}
	saved := &DeltaDownload{From: d.From, Target: d.Target, Length: d.Length, SHA256: d.SHA256, Download: Download{Progress: payload.Progress{Offset: 300}}}
	pending := func() *Pending {
		return &Pending{Version: "1.1.0", Target: "thermostat/1.1.0", Length: 5000, SHA256: "bb", Slot: "b", From: "a"}
	}
	offer := &deltaOffer{d: d}
	for _, tc := range []struct {
		name   string
		phase  Phase
		prev   func(p *Pending)
		next   func(p *Pending)
		offer  *deltaOffer
		expect bool
	}{
		{"same release and delta", PhaseWriting, nil, nil, offer, true},
		{"not writing", PhaseArming, nil, nil, offer, false},
		{"no delta offered now", PhaseWriting, nil, nil, nil, false},
		{"offered delta refused", PhaseWriting, nil, nil, &deltaOffer{d: d, err: errors.New("repositories disagree")}, false},
		{"another delta", PhaseWriting, nil, nil, &deltaOffer{d: release.Delta{From: d.From, Target: d.Target, Length: d.Length, SHA256: "cc"}}, false},
		{"a delta from another version", PhaseWriting, nil, nil, &deltaOffer{d: release.Delta{From: "1.0.1", Target: d.Target, Length: d.Length, SHA256: d.SHA256}}, false},
		{"another release", PhaseWriting, nil, func(p *Pending) { p.Version, p.Target, p.SHA256 = "1.2.0", "thermostat/1.2.0", "dd" }, offer, false},
		{"another slot", PhaseWriting, nil, func(p *Pending) { p.Slot = "a" }, offer, false},
		{"a full download saved as well", PhaseWriting, func(p *Pending) { p.Download = &Download{} }, nil, offer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a := &Agent{cfg: &Config{DataDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := os.WriteFile(a.deltaFile(), []byte("partial"), 0o600); err != nil {
				t.Fatal(err)
			}
			prev, next := pending(), pending()
			prev.Delta = saved
			if tc.prev != nil {
				tc.prev(prev)
			}
			if tc.next != nil {
				tc.next(next)
			}
			s := &State{Phase: tc.phase, Pending: prev}
			got := a.savedDelta(s, next, tc.offer)
			_, statErr := os.Stat(a.deltaFile())
			if tc.expect {
				if got != saved || statErr != nil {
					t.Fatalf("savedDelta = %+v, file %v; want the saved progress and the file kept", got, statErr)
				}
				return
			}
			if got != nil || !errors.Is(statErr, os.ErrNotExist) {
				t.Fatalf("savedDelta = %+v, file %v; want nil and the file removed", got, statErr)
			}
		})
	}
}

// The saved delta progress survives state.json: the embedded Download's
// offset, hash states and ETag sit beside the delta's identity.
func TestDeltaDownloadJSON(t *testing.T) {
	in := &DeltaDownload{From: "1.0.0", Target: "t.delta", Length: 9, SHA256: "ab",
		Download: Download{Progress: payload.Progress{Offset: 4, States: map[string][]byte{"sha256": {1, 2}}}, ETag: `"e"`}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"from", "target", "length", "sha256", "offset", "hash_states", "etag"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("field %q missing in %s", k, b)
		}
	}
	var out DeltaDownload
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Offset != 4 || out.ETag != `"e"` || !bytes.Equal(out.States["sha256"], []byte{1, 2}) || out.From != "1.0.0" {
		t.Fatalf("round trip: %+v", out)
	}
}

// While a delta download is saved, status shows the delta's counter and
// how much of it is saved.
func TestLastDownloadWhileDeltaSaved(t *testing.T) {
	s := &State{
		Pending: &Pending{Version: "1.1.0", SHA256: "full", Delta: &DeltaDownload{From: "1.0.0", SHA256: "dsum", Download: Download{Progress: payload.Progress{Offset: 7}}}},
		Downloads: []DownloadCount{
			{Version: "1.1.0", SHA256: "dsum", DeltaFrom: "1.0.0", Bytes: 9},
			{Version: "1.0.9", SHA256: "x", Bytes: 1},
		},
	}
	if d := lastDownload(s); d == nil || d.DeltaFrom != "1.0.0" || d.Bytes != 9 {
		t.Fatalf("lastDownload = %+v, want the delta's counter", d)
	}
	// Applied from the delta, now arming: still the delta's counter.
	s.Pending.Delta = nil
	s.LastDelta = &DeltaOutcome{Version: "1.1.0", From: "1.0.0", Used: true}
	if d := lastDownload(s); d == nil || d.DeltaFrom != "1.0.0" || d.Bytes != 9 {
		t.Fatalf("lastDownload after the delta was applied = %+v, want the delta's counter", d)
	}
	// The delta failed and the full payload was fetched instead.
	s.LastDelta.Used = false
	if d := lastDownload(s); d != nil && d.Version == "1.1.0" {
		t.Fatalf("lastDownload with the delta unused and no full counter = %+v, want none of 1.1.0", d)
	}
	s.Downloads = append(s.Downloads, DownloadCount{Version: "1.1.0", SHA256: "full", Bytes: 5})
	if d := lastDownload(s); d == nil || d.DeltaFrom != "" || d.Bytes != 5 {
		t.Fatalf("lastDownload = %+v, want the full payload's counter", d)
	}
}
