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
	"github.com/uptrust/uptrust/internal/report"
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
	refreshed := now.Add(-time.Hour).UTC()
	s.LastRefresh = &refreshed
	s.LastCheck = &Check{At: now.Add(-time.Hour).UTC(), Offered: "1.1.0", Action: "waiting",
		Reason: "the rollout of 1.1.0 has reached 10% of devices; this one is not among them yet"}
	if supportUntil != "" {
		s.Support = &release.Support{Product: "thermostat", Model: "T1", Hardware: []string{"rev-a"}, Until: supportUntil, Issued: now.AddDate(-1, 0, 0)}
	}
	s.Failed["1.0.5"] = Failure{Version: "1.0.5", ErrorClass: report.ClassHealthCheck, Reason: "service did not start", At: now.AddDate(0, -1, 0)}
	if err := saveState(cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	q := &reportQueue{dir: reportsDir(cfg)}
	if err := q.add(report.Report{Product: "thermostat", Version: "1.0.5", Outcome: "rolled_back", ErrorClass: report.ClassHealthCheck}); err != nil {
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
		!strings.Contains(j.LastCheck.Reason, "not among them yet") || j.Failed["1.0.5"].ErrorClass != report.ClassHealthCheck {
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

func TestStatusOwnerChoicesAndWarnings(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg, slots := statusFixture(t, now, "2030-12-31")
	s, err := LoadState(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	off, until := now.AddDate(0, 0, -2), now.Add(48*time.Hour)
	stale := now.AddDate(0, 0, -20)
	s.LastRefresh = &stale
	s.Offered = []string{"2.0.0", "1.1.1"}
	s.Owner.AutoUpdatesOffSince = &off
	s.Owner.PostponedUntil = &until
	s.Owner.Consents["1.9.0"] = off
	s.Support.Policy = &release.Policy{AutoInstall: []release.Kind{release.KindSecurity, release.KindFix}, MaxPostponeDays: 14}
	s.SupportRefused = &SupportRefusal{OfferedUntil: "2028-01-01", AcceptedUntil: "2030-12-31", At: now}
	s.Waiting = []Waiting{{Version: "2.0.0", Kind: release.KindFeature, Hold: HoldAdverse, Reason: "2.0.0 waits for the owner's consent",
		ImpactReasons: []string{"collects more data: hourly statistics"}, Advisories: []release.Advisory{{ID: "CVE-2026-0001", Summary: "overflow"}}}}
	if err := saveState(cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(context.Background(), cfg, slots, now)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	st.WriteText(&text)
	for _, want := range []string{
		"offered:          2.0.0, 1.1.1",
		"waiting:          2.0.0 (feature) 2.0.0 waits for the owner's consent",
		"impact: collects more data: hourly statistics",
		"fixes: CVE-2026-0001: overflow",
		"auto-updates:     off since 2026-02-27 12:00 UTC (owner's choice); the maker installs security and fix releases",
		"postponed until:  2026-03-03 12:00 UTC (owner's choice; the maker allows up to 14 days)",
		"consented:        1.9.0",
		"WARNING:          automatic updates are off since 2026-02-27 12:00 UTC (owner's choice)",
		"WARNING:          no fresh signed update information since 2026-02-09 12:00 UTC (20 days): the device may be cut off from updates",
		"WARNING:          the maker signed a support declaration ending on 2028-01-01, earlier than the 2030-12-31 accepted",
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
		Offered     []string `json:"offered"`
		AutoUpdates string   `json:"auto_updates"`
		Postponed   string   `json:"postponed_until"`
		Stale       bool     `json:"metadata_stale"`
		Waiting     []struct {
			Version string   `json:"version"`
			Hold    string   `json:"hold"`
			Impact  []string `json:"impact_reasons"`
		} `json:"waiting"`
		Policy struct {
			MaxPostponeDays int `json:"max_postpone_days"`
		} `json:"maker_policy"`
		Refused struct {
			Offered string `json:"offered_until"`
		} `json:"support_refused"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Offered) != 2 || j.AutoUpdates != "off" || j.Postponed != "2026-03-03T12:00:00Z" || !j.Stale || len(j.Waiting) != 1 ||
		j.Waiting[0].Hold != HoldAdverse || len(j.Waiting[0].Impact) != 1 || j.Policy.MaxPostponeDays != 14 || j.Refused.Offered != "2028-01-01" {
		t.Fatalf("JSON status: %s", b)
	}

	// A lapsed postponement is not shown.
	st, err = ReadStatus(context.Background(), cfg, slots, until.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.PostponedUntil != nil {
		t.Fatalf("lapsed postponement shown: %v", st.PostponedUntil)
	}
}
