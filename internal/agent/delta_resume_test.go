package agent

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
)

// TestSavedProgress: the next check continues saved progress only for
// the same release, slot and route (and, for a delta, the same delta
// offered again), and removes the staged payload and the delta file it
// does not continue from.
func TestSavedProgress(t *testing.T) {
	d := release.Delta{From: "1.0.0", Target: "thermostat/1.1.0.from-1.0.0.delta", Length: 1000, SHA256: "aa"}
	deltaSaved := func(p *Pending) {
		p.setDeltaProgress(d, &transfer.Progress{Route: transfer.RouteDelta, Progress: payload.Progress{Offset: 300}})
	}
	saved := func(route transfer.Route) func(p *Pending) {
		return func(p *Pending) {
			p.setPayloadProgress(&transfer.Progress{Route: route, Progress: payload.Progress{Offset: 300}})
		}
	}
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
		{"same release and delta", PhaseWriting, deltaSaved, nil, offer, true},
		{"not writing", PhaseArming, deltaSaved, nil, offer, false},
		{"no delta offered now", PhaseWriting, deltaSaved, nil, nil, false},
		{"offered delta refused", PhaseWriting, deltaSaved, nil, &deltaOffer{d: d, err: errors.New("repositories disagree")}, false},
		{"another delta", PhaseWriting, deltaSaved, nil, &deltaOffer{d: release.Delta{From: d.From, Target: d.Target, Length: d.Length, SHA256: "cc"}}, false},
		{"a delta from another version", PhaseWriting, deltaSaved, nil, &deltaOffer{d: release.Delta{From: "1.0.1", Target: d.Target, Length: d.Length, SHA256: d.SHA256}}, false},
		{"another release", PhaseWriting, deltaSaved, func(p *Pending) { p.Version, p.Target, p.SHA256 = "1.2.0", "thermostat/1.2.0", "dd" }, offer, false},
		{"another slot", PhaseWriting, deltaSaved, func(p *Pending) { p.Slot = "a" }, offer, false},
		{"a full download saved", PhaseWriting, saved(transfer.RouteSlot), nil, offer, true},
		{"a full download of another release", PhaseWriting, saved(transfer.RouteSlot), func(p *Pending) { p.SHA256 = "dd" }, nil, false},
		{"a streamed compressed payload", PhaseWriting, saved(transfer.RouteZstdStream), nil, nil, true},
		{"a staged payload", PhaseWriting, saved(transfer.RouteStaged), nil, offer, true},
		{"a staged payload for another slot", PhaseWriting, saved(transfer.RouteStaged), func(p *Pending) { p.Slot = "a" }, nil, false},
		{"nothing saved", PhaseWriting, nil, nil, offer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a := &Agent{cfg: &Config{DataDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			files := []string{a.files().DeltaFile(), a.files().StagedFile()}
			for _, f := range files {
				if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			prev, next := pending(), pending()
			if tc.prev != nil {
				tc.prev(prev)
			}
			if tc.next != nil {
				tc.next(next)
			}
			s := &State{Phase: tc.phase, Pending: prev}
			a.savedProgress(s, next, tc.offer)
			var kept []string
			for _, f := range files {
				if _, err := os.Stat(f); err == nil {
					kept = append(kept, filepath.Base(f))
				}
			}
			if !tc.expect {
				if next.Progress != nil || next.Delta != nil || len(kept) > 0 {
					t.Fatalf("progress %+v, delta %+v, files %v kept; want none", next.Progress, next.Delta, kept)
				}
				return
			}
			if next.Progress != prev.Progress || next.Delta != prev.Delta {
				t.Fatalf("progress %+v, delta %+v; want the saved %+v, %+v", next.Progress, next.Delta, prev.Progress, prev.Delta)
			}
			want := map[transfer.Route][]string{transfer.RouteDelta: {"delta.tmp"}, transfer.RouteStaged: {"payload.tmp"}}[prev.Progress.Route]
			if !slices.Equal(kept, want) {
				t.Fatalf("files %v kept, want %v", kept, want)
			}
		})
	}
}

// While a delta download is saved, status shows the delta's counter and
// how much of it is saved.
func TestLastDownloadWhileDeltaSaved(t *testing.T) {
	s := &State{
		Pending: &Pending{Version: "1.1.0", SHA256: "full", Delta: &DeltaID{From: "1.0.0", SHA256: "dsum"},
			Progress: &transfer.Progress{Route: transfer.RouteDelta, Progress: payload.Progress{Offset: 7}}},
		Downloads: []DownloadCount{
			{Version: "1.1.0", SHA256: "dsum", DeltaFrom: "1.0.0", Bytes: 9},
			{Version: "1.0.9", SHA256: "x", Bytes: 1},
		},
	}
	if d := lastDownload(s); d == nil || d.DeltaFrom != "1.0.0" || d.Bytes != 9 {
		t.Fatalf("lastDownload = %+v, want the delta's counter", d)
	}
	// Applied from the delta, now arming: still the delta's counter.
	s.Pending.Progress, s.Pending.Delta = nil, nil
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
