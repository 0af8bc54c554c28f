package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/sim"
)

// TestClockBehindExpiredTimestamp: a device whose clock reads 1970 (no
// real-time clock, before NTP) is served metadata whose timestamp expired
// a day before the device was provisioned. It checks expiry against its
// provisioning time, not its clock: it refuses the frozen metadata
// (metadata-expired), warns in status and through the notify hook, and
// reports the clock (clock-behind) besides the refusal.
func TestClockBehindExpiredTimestamp(t *testing.T) {
	// The project signed everything 50 hours ago; timestamps live 24 h.
	w := offered(t, worldOptions{projectClock: clock.NewFake(time.Now().Add(-50 * time.Hour))})
	d := w.device("d", 0)
	events := notifyHook(t, d)
	epoch := time.Unix(0, 0).UTC()
	d.Clock = clock.NewFake(epoch)

	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", report.ClassMetadataExpired, report.OutcomeRejected)
	assertClockBehind(t, w, d, st, events(), epoch)
	if !strings.Contains(st.LastCheck.Reason, "expired") {
		t.Fatalf("reason %q does not say the metadata expired", st.LastCheck.Reason)
	}

	// The next check of the same stretch neither notifies nor reports the
	// clock again.
	w.cycle(d)
	if n := len(only(events(), agent.EventClockBehind)); n != 1 {
		t.Fatalf("%d clock-behind events after two checks, want 1", n)
	}
	if n := w.reportCount(report.OutcomeFailed, report.ClassClockBehind); n != 1 {
		t.Fatalf("%d clock-behind reports after two checks, want 1", n)
	}
}

// TestClockBehindStillUpdates: a clock behind the floor does not stop a
// device from installing genuine, unexpired releases; it warns.
func TestClockBehindStillUpdates(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	events := notifyHook(t, d)
	epoch := time.Unix(0, 0).UTC()
	d.Clock = clock.NewFake(epoch)

	w.cycle(d)
	st := w.assertRunning(d, "1.1.0")
	assertClockBehind(t, w, d, st, events(), epoch)
	if st.LastRefresh == nil || st.LastRefresh.Before(time.Now().Add(-time.Hour)) {
		t.Fatalf("last refresh %v: want the reference time the check used, not the clock", st.LastRefresh)
	}
}

// assertClockBehind checks that status (JSON and text), the notify hook
// and the server's reports say the clock was behind the provisioning time.
func assertClockBehind(t *testing.T, w *world, d *sim.Device, st *agent.Status, events []agent.Event, clockReads time.Time) {
	t.Helper()
	cb := st.ClockBehind
	if cb == nil || cb.Source != agent.FloorProvisioned || !cb.Clock.Equal(clockReads) || cb.Floor.Before(time.Now().Add(-time.Hour)) {
		t.Fatalf("status clock_behind %+v, want the clock behind the provisioning time", cb)
	}
	var warned bool
	for _, wn := range st.Warnings {
		warned = warned || strings.Contains(wn, "clock reads 1970-01-01 00:00 UTC, earlier than the device's provisioning time")
	}
	if !warned {
		t.Fatalf("status warnings %q do not say the clock is behind", st.Warnings)
	}
	e := only(events, agent.EventClockBehind)
	if len(e) != 1 || e[0].FloorSource != agent.FloorProvisioned || e[0].Clock == nil || !e[0].Clock.Equal(clockReads) ||
		e[0].Floor == nil || !e[0].Floor.Equal(cb.Floor) || !strings.Contains(e[0].Message, "until the clock is set") {
		t.Fatalf("clock-behind events %+v, want one matching %+v", e, cb)
	}
	if code, out, _ := ownerCLI(t, d, "", clockReads, "status"); code != 0 ||
		!strings.Contains(out, "WARNING:          the device's clock reads 1970-01-01 00:00 UTC, earlier than the device's provisioning time") {
		t.Fatalf("uptrust-agent status (exit %d) does not warn of the clock:\n%s", code, out)
	}
	w.assertReport(report.OutcomeFailed, report.ClassClockBehind)
}
