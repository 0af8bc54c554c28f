package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/release"
)

// statusFixture provisions a device whose last check was offered 1.1.0 and
// is waiting for its rollout bucket, with a support declaration until
// supportUntil.
func statusFixture(t *testing.T, now time.Time, supportUntil string) (*Config, slot.Backend) {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{Server: "https://updates.example.com", Product: "thermostat", Hardware: "rev-a", DataDir: filepath.Join(dir, "data"),
		ReleaseRoot: filepath.Join(dir, "release.json"), FleetRoot: filepath.Join(dir, "fleet.json"),
		Slot: SlotConfig{Backend: "file", Dir: filepath.Join(dir, "slots")}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := fileslot.Create(cfg.Slot.Dir, strings.NewReader("factory"), 3); err != nil {
		t.Fatal(err)
	}
	if err := Provision(cfg.DataDir, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	s, err := LoadState(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	s.LastCheck = &Check{At: now.Add(-time.Hour).UTC(), Offered: "1.1.0", Action: "waiting",
		Reason: "the rollout of 1.1.0 has reached 10% of devices; this one is not among them yet"}
	if supportUntil != "" {
		s.Support = &release.Support{Product: "thermostat", Model: "T1", Hardware: []string{"rev-a"}, Until: supportUntil, Issued: now.AddDate(-1, 0, 0)}
	}
	s.Failed["1.0.5"] = Failure{Version: "1.0.5", ErrorClass: ClassHealthCheck, Reason: "service did not start", At: now.AddDate(0, -1, 0)}
	if err := saveState(cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	q := &reportQueue{dir: reportsDir(cfg)}
	if err := q.add(Report{Product: "thermostat", Version: "1.0.5", Outcome: "rolled_back", ErrorClass: ClassHealthCheck}); err != nil {
		t.Fatal(err)
	}
	return cfg, fileslot.New(cfg.Slot.Dir)
}

func TestStatusTextAndJSON(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg, slots := statusFixture(t, now, "2030-12-31")
	st, err := ReadStatus(context.Background(), cfg, slots, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "1.0.0" || st.BootedSlot != slot.A || st.Phase != PhaseIdle || st.QueuedReports != 1 || st.SupportUntil != "2030-12-31" {
		t.Fatalf("status: %+v", st)
	}
	if len(st.Warnings) != 0 {
		t.Errorf("unexpected warnings: %q", st.Warnings)
	}

	var text bytes.Buffer
	st.WriteText(&text)
	for _, want := range []string{
		"1.0.0",                     // running version
		"slot a",                    // booted slot
		"offered:          1.1.0",   // offered release
		"decision:         waiting", // decision
		"not among them yet",        // reason
		"supported until:  2030-12-31",
		"failed release:   1.0.5 (health-check) service did not start",
		"queued reports:   1",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text status lacks %q:\n%s", want, text.String())
		}
	}

	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Version   string `json:"version"`
		Booted    string `json:"booted_slot"`
		LastCheck struct {
			Offered string `json:"offered"`
			Action  string `json:"action"`
			Reason  string `json:"reason"`
		} `json:"last_check"`
		Failed map[string]Failure `json:"failed"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Version != "1.0.0" || j.Booted != "a" || j.LastCheck.Offered != "1.1.0" || j.LastCheck.Action != "waiting" ||
		!strings.Contains(j.LastCheck.Reason, "not among them yet") || j.Failed["1.0.5"].ErrorClass != ClassHealthCheck {
		t.Fatalf("JSON status: %s", b)
	}
}

func TestStatusSupportEnded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// The last day of support is still supported.
	cfg, slots := statusFixture(t, now, "2026-03-01")
	st, err := ReadStatus(context.Background(), cfg, slots, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 0 {
		t.Fatalf("warnings on the last day of support: %q", st.Warnings)
	}

	cfg, slots = statusFixture(t, now, "2025-06-30")
	st, err = ReadStatus(context.Background(), cfg, slots, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "support") || !strings.Contains(st.Warnings[0], "2025-06-30") {
		t.Fatalf("warnings after support ended: %q", st.Warnings)
	}
	var text bytes.Buffer
	st.WriteText(&text)
	if !strings.Contains(text.String(), "WARNING:") || !strings.Contains(text.String(), "2025-06-30") {
		t.Fatalf("text status does not warn about ended support:\n%s", text.String())
	}
	b, _ := json.Marshal(st)
	if !strings.Contains(string(b), `"warnings":["security support for this device ended on 2025-06-30"]`) {
		t.Fatalf("JSON status: %s", b)
	}
}

func TestStatusStaleAndNoCheck(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg, slots := statusFixture(t, now, "")
	// Three poll intervals (6h default) without a check is worth a warning.
	st, err := ReadStatus(context.Background(), cfg, slots, now.Add(20*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "last update check was 21h0m0s ago") {
		t.Fatalf("warnings for a stale check: %q", st.Warnings)
	}

	s, err := LoadState(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	s.LastCheck = nil
	s.Phase = PhaseRebooting
	s.Pending = &Pending{Version: "1.1.0", Slot: slot.B, From: slot.A}
	if err := saveState(cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	st, err = ReadStatus(context.Background(), cfg, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Installing != "1.1.0" || st.Phase != PhaseRebooting || st.BootedSlot != "" {
		t.Fatalf("status while installing: %+v", st)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "no update check") {
		t.Fatalf("warnings without a check: %q", st.Warnings)
	}
	var text bytes.Buffer
	st.WriteText(&text)
	if !strings.Contains(text.String(), "installing:       1.1.0 (step: rebooting)") || !strings.Contains(text.String(), "slot -") {
		t.Fatalf("text status while installing:\n%s", text.String())
	}
}

func TestStatusUnreadableBootloader(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg, _ := statusFixture(t, now, "")
	st, err := ReadStatus(context.Background(), cfg, fileslot.New(filepath.Join(t.TempDir(), "nothing")), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "bootloader") {
		t.Fatalf("warnings with an unreadable bootloader: %q", st.Warnings)
	}
}

func TestStatusNotProvisioned(t *testing.T) {
	cfg := &Config{DataDir: t.TempDir()}
	if _, err := ReadStatus(context.Background(), cfg, nil, time.Now()); err != ErrNotProvisioned {
		t.Fatalf("ReadStatus without state = %v, want ErrNotProvisioned", err)
	}
}
