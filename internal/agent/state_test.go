package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/report"
)

func TestProvisionSeed(t *testing.T) {
	d1, d2 := filepath.Join(t.TempDir(), "data"), filepath.Join(t.TempDir(), "data")
	for _, d := range []string{d1, d2} {
		if err := Provision(d, "1.0.0", 3); err != nil {
			t.Fatal(err)
		}
	}
	s1, err := LoadState(d1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadState(d2)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1.Seed) != 32 || len(s2.Seed) != 32 {
		t.Fatalf("seed lengths %d and %d, want 32", len(s1.Seed), len(s2.Seed))
	}
	if bytes.Equal(s1.Seed, s2.Seed) {
		t.Fatal("two provisions produced the same seed")
	}
	if bytes.Equal(s1.Seed, make([]byte, 32)) {
		t.Fatal("seed is all zero")
	}
	if s1.FormatVersion != 1 || s1.Phase != PhaseIdle || s1.Version != "1.0.0" ||
		s1.SecurityVersion != 3 || s1.MaxSecurityVersion != 3 || s1.Pending != nil || s1.Failed == nil {
		t.Fatalf("provisioned state: %+v", s1)
	}
	info, err := os.Stat(statePath(d1))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		t.Errorf("state.json mode %v: readable by others (it holds the seed)", info.Mode().Perm())
	}
}

func TestProvisionTwiceRefused(t *testing.T) {
	d := filepath.Join(t.TempDir(), "data")
	if err := Provision(d, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(statePath(d))
	if err != nil {
		t.Fatal(err)
	}
	err = Provision(d, "2.0.0", 9)
	if err == nil || !strings.Contains(err.Error(), "provisioned already") {
		t.Fatalf("second Provision = %v, want a refusal", err)
	}
	after, err := os.ReadFile(statePath(d))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a refused Provision changed state.json")
	}
}

func TestLoadStateNotProvisioned(t *testing.T) {
	if _, err := LoadState(t.TempDir()); !errors.Is(err, ErrNotProvisioned) {
		t.Fatalf("LoadState of an empty dir = %v, want ErrNotProvisioned", err)
	}
}

func TestLoadStateCorrupt(t *testing.T) {
	d := t.TempDir()
	for _, content := range []string{"", "{", "\x00\x00\x00", `{"format_version": "one"}`} {
		if err := os.WriteFile(statePath(d), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadState(d)
		if err == nil || !strings.Contains(err.Error(), statePath(d)) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("LoadState(%q) = %v, want a corrupt-state error naming %s", content, err, statePath(d))
		}
		if errors.Is(err, ErrNotProvisioned) {
			t.Errorf("corrupt state reported as not provisioned")
		}
	}
}

func TestLoadStateUnknownFormat(t *testing.T) {
	d := t.TempDir()
	for _, content := range []string{`{"format_version": 2, "phase": "idle"}`, `{"phase": "idle"}`} {
		if err := os.WriteFile(statePath(d), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadState(d); err == nil || !strings.Contains(err.Error(), "format") {
			t.Errorf("LoadState(%s) = %v, want an unsupported-format error", content, err)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	d := filepath.Join(t.TempDir(), "data")
	if err := Provision(d, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	s, err := LoadState(d)
	if err != nil {
		t.Fatal(err)
	}
	s.Phase = PhaseRebooting
	s.Pending = &Pending{Product: "thermostat", Version: "1.1.0", SecurityVersion: 2, Target: "thermostat/1.1.0",
		Length: 42, SHA256: strings.Repeat("ab", 32), Slot: "b", From: "a", FromVersion: "1.0.0"}
	s.Failed["0.9.0"] = Failure{Version: "0.9.0", ErrorClass: report.ClassHealthCheck, Reason: "boom"}
	if err := saveState(d, s); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(d)
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != PhaseRebooting || *got.Pending != *s.Pending || got.Failed["0.9.0"].Reason != "boom" || !bytes.Equal(got.Seed, s.Seed) {
		t.Fatalf("round trip: %+v", got)
	}
	// Only state.json, the state it replaced and the anti-rollback floor
	// are left: the atomic write leaves no temporary files.
	entries, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "state.json" && n != "state.prev.json" && n != "floor.json" {
			t.Errorf("stray file %s in the data dir", e.Name())
		}
	}
}
