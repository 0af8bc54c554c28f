package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/sim"
)

// TestOwnerAutoUpdatesOff: with automatic updates off not even a security
// release installs, status warns, and the owner can still install one
// release by consent; turned back on, updates install again.
func TestOwnerAutoUpdatesOff(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	byConsent := w.device("by-consent", 0)
	events := notifyHook(t, d)
	now := time.Now()
	for _, dev := range []*sim.Device{d, byConsent} {
		if code, out, stderr := ownerCLI(t, dev, "", now, "policy", "auto-updates", "off"); code != 0 || !strings.Contains(out, "automatic updates are off") {
			t.Fatalf("%s: policy auto-updates off: %d %q %q", dev.Name, code, out, stderr)
		}
	}
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)

	chk := w.cycle(d)
	want := "automatic updates are off since " + now.UTC().Format(time.DateOnly) + " (owner's choice); run uptrust-agent consent 1.1.0 to install"
	if chk.Action != "waiting" || !strings.Contains(chk.Reason, want) {
		t.Fatalf("check while off: %+v, want reason %q", chk, want)
	}
	st := w.assertRunning(d, "1.0.0")
	if st.AutoUpdates != "off" || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "automatic updates are off since") {
		t.Fatalf("status while off: %+v", st)
	}
	code, out, _ := ownerCLI(t, d, "", now, "status")
	if code != 0 || !strings.Contains(out, "WARNING:          automatic updates are off since") || !strings.Contains(out, "waiting:          1.1.0 (security)") {
		t.Fatalf("status text while off: %d\n%s", code, out)
	}
	if e := only(events(), agent.EventNeedsConsent); len(e) != 1 || e[0].Hold != agent.HoldAutoOff || e[0].Version != "1.1.0" {
		t.Fatalf("events while off: %+v", e)
	}

	// One release by consent, automatic updates stay off.
	w.cycle(byConsent)
	if code, _, stderr := ownerCLI(t, byConsent, "", now, "consent", "1.1.0", "--yes"); code != 0 {
		t.Fatalf("consent: %d %q", code, stderr)
	}
	w.cycle(byConsent)
	if st := w.assertRunning(byConsent, "1.1.0"); st.AutoUpdates != "off" {
		t.Fatalf("consent turned automatic updates on: %+v", st)
	}

	if code, out, _ := ownerCLI(t, d, "", now.Add(time.Minute), "policy", "auto-updates", "on"); code != 0 || !strings.Contains(out, "on again") {
		t.Fatalf("policy auto-updates on: %d %q", code, out)
	}
	w.cycle(d)
	st = w.assertRunning(d, "1.1.0")
	if st.AutoUpdates != "on" || len(st.Warnings) != 0 || len(st.OwnerHistory) != 2 ||
		st.OwnerHistory[0].Action != "auto-updates-off" || st.OwnerHistory[1].Action != "auto-updates-on" {
		t.Fatalf("status after turning updates on: %+v", st)
	}
}
