package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/release"
)

// ownerState provisions a data dir whose last check left 2.0.0 waiting for
// consent, under a maker's policy allowing 7 days of postponement.
func ownerState(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := Provision(dir, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Support = &release.Support{Product: "thermostat", Until: "2030-01-01",
		Policy: &release.Policy{AutoInstall: []release.Kind{release.KindSecurity}, MaxPostponeDays: 7}}
	s.Waiting = []Waiting{{Version: "2.0.0", Kind: release.KindFeature, Hold: HoldAdverse, Reason: "2.0.0 waits for the owner's consent"}}
	if err := saveState(dir, s); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConsent(t *testing.T) {
	ctx := context.Background()
	dir := ownerState(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	err := Consent(ctx, dir, "3.0.0", now, nil)
	if !errors.Is(err, ErrNotWaiting) || !strings.Contains(err.Error(), "3.0.0") || !strings.Contains(err.Error(), "waiting: 2.0.0") {
		t.Fatalf("consent to a release that does not wait: %v", err)
	}
	if err := Consent(ctx, dir, "2.0.0", now, nil); err != nil {
		t.Fatal(err)
	}
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if at, ok := s.Owner.Consents["2.0.0"]; !ok || !at.Equal(now) || len(s.Owner.Consents) != 1 {
		t.Fatalf("consents: %v", s.Owner.Consents)
	}
	if len(s.Owner.History) != 1 || s.Owner.History[0].Action != "consent" || s.Owner.History[0].Version != "2.0.0" {
		t.Fatalf("history: %+v", s.Owner.History)
	}

	s.Waiting = nil
	if err := saveState(dir, s); err != nil {
		t.Fatal(err)
	}
	if err := Consent(ctx, dir, "2.0.0", now, nil); !errors.Is(err, ErrNotWaiting) || !strings.Contains(err.Error(), "no release waits") {
		t.Fatalf("consent with nothing waiting: %v", err)
	}
	if err := Consent(ctx, filepath.Join(t.TempDir(), "none"), "2.0.0", now, nil); !errors.Is(err, ErrNotProvisioned) {
		t.Fatalf("consent without state: %v", err)
	}
}

func TestPostponeAndCancel(t *testing.T) {
	ctx := context.Background()
	dir := ownerState(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := Postpone(ctx, dir, 8*24*time.Hour, now, nil); !errors.Is(err, ErrPostponeLimit) || !strings.Contains(err.Error(), "at most 7 days") {
		t.Fatalf("postponing beyond the maker's limit: %v", err)
	}
	until, err := Postpone(ctx, dir, 72*time.Hour, now, nil)
	if err != nil || !until.Equal(now.Add(72*time.Hour)) {
		t.Fatalf("postpone 72h: %v, %v", until, err)
	}
	s, _ := LoadState(dir)
	if s.Owner.PostponedUntil == nil || !s.Owner.PostponedUntil.Equal(until) || !s.Owner.PostponedSince.Equal(now) {
		t.Fatalf("owner after postponing: %+v", s.Owner)
	}
	was, err := CancelPostpone(ctx, dir, now.Add(time.Hour), nil)
	if err != nil || !was {
		t.Fatalf("cancel: %v, %v", was, err)
	}
	if was, err := CancelPostpone(ctx, dir, now.Add(time.Hour), nil); err != nil || was {
		t.Fatalf("second cancel: %v, %v", was, err)
	}
	s, _ = LoadState(dir)
	if s.Owner.PostponedUntil != nil || s.Owner.PostponedSince != nil {
		t.Fatalf("owner after cancelling: %+v", s.Owner)
	}
	var actions []string
	for _, c := range s.Owner.History {
		actions = append(actions, c.Action)
	}
	if strings.Join(actions, ",") != "postpone,postpone-cancel" {
		t.Fatalf("history: %v", actions)
	}
}

func TestSetAutoUpdates(t *testing.T) {
	ctx := context.Background()
	dir := ownerState(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, step := range []struct{ on, changed bool }{{true, false}, {false, true}, {false, false}, {true, true}} {
		changed, err := SetAutoUpdates(ctx, dir, step.on, now.Add(time.Duration(i)*time.Hour), nil)
		if err != nil || changed != step.changed {
			t.Fatalf("step %d (on=%v): changed %v err %v", i, step.on, changed, err)
		}
		s, _ := LoadState(dir)
		if off := s.Owner.AutoUpdatesOffSince; (off == nil) != step.on {
			t.Fatalf("step %d: off since %v", i, off)
		}
		if i == 2 && !s.Owner.AutoUpdatesOffSince.Equal(now.Add(time.Hour)) {
			t.Fatalf("turning off twice moved the date to %v", s.Owner.AutoUpdatesOffSince)
		}
	}
	s, _ := LoadState(dir)
	if len(s.Owner.History) != 2 || s.Owner.History[0].Action != "auto-updates-off" || s.Owner.History[1].Action != "auto-updates-on" {
		t.Fatalf("history: %+v", s.Owner.History)
	}
}

func TestOwnerHistoryIsBounded(t *testing.T) {
	var o Owner
	for i := range maxHistory + 10 {
		o.record(OwnerChange{Action: "consent", Version: fmt.Sprintf("1.0.%d", i)})
	}
	if len(o.History) != maxHistory || o.History[0].Version != "1.0.10" || o.History[maxHistory-1].Version != fmt.Sprintf("1.0.%d", maxHistory+9) {
		t.Fatalf("history holds %d from %+v, want the latest %d", len(o.History), o.History[0], maxHistory)
	}
}

// TestOwnerCommandWaitsForTheAgent: a consent given while a check cycle
// holds the state lock is applied after the cycle saved its state, not
// overwritten by it.
func TestOwnerCommandWaitsForTheAgent(t *testing.T) {
	ctx := context.Background()
	dir := ownerState(t)
	unlock, err := lockState(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Consent(ctx, dir, "2.0.0", time.Now(), func() { close(busy) })
	}()
	<-busy
	// The "cycle" rewrites the state it loaded before the consent.
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.LastReported = "cycle"
	if err := saveState(dir, s); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, err = LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Owner.Consents["2.0.0"]; !ok || s.LastReported != "cycle" {
		t.Fatalf("after both: consents %v, last reported %q", s.Owner.Consents, s.LastReported)
	}

	// A command gives up when its context ends while it waits.
	unlock, err = lockState(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cctx, cancel := context.WithCancel(ctx)
	_, err = SetAutoUpdates(cctx, dir, false, time.Now(), cancel)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting with a cancelled context: %v", err)
	}
}

// TestStateWithoutOwnerFields: a state.json written before the owner's
// fields existed reads as "no choices made".
func TestStateWithoutOwnerFields(t *testing.T) {
	dir := ownerState(t)
	old := `{"format_version":1,"phase":"idle","version":"1.0.0","security_version":1,"max_security_version":1,"seed":"AAAA"}`
	if err := os.WriteFile(statePath(dir), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Owner.Consents == nil || s.Owner.AutoUpdatesOffSince != nil || s.Owner.PostponedUntil != nil || s.Waiting != nil || s.Notified == nil {
		t.Fatalf("old state: %+v", s)
	}
	if v := Judge(manifest("1.1.0", release.KindSecurity, release.Impact{}), s.Support.EffectivePolicy(), &s.Owner, time.Now()); !v.Install {
		t.Fatalf("old state holds a security release: %+v", v)
	}
}
