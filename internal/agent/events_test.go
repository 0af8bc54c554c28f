package agent

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/devicetest"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
)

// acceptedDevice is an accepted managed device of a world behind ds whose
// agents and ds share the fake clock c. (Start c a little ahead of the
// real clock: a clock behind the provisioning time is reported.)
func acceptedDevice(t *testing.T, c *clock.Fake, change func(*Config)) (*testWorld, *devicetest.Server, *testDevice) {
	t.Helper()
	w, ds := managedWorld(t, "version")
	ds.Initial, ds.Clock = EnrolAccepted, c
	d := managedDevice(t, w, ds, ModeManaged, change)
	d.clock = c
	return w, ds, d
}

// flushEvents sends the queued reports, and with them the outcome events,
// as Run does between two checks.
func (d *testDevice) flushEvents() {
	d.t.Helper()
	a := d.agent()
	if err := a.loadDeviceKey(); err != nil {
		d.t.Fatal(err)
	}
	a.FlushReports(context.Background())
}

// eventList lists the events as "kind version[ progress|reason]".
func eventList(es []devicetest.Event) []string {
	var out []string
	for _, e := range es {
		s := e.Kind + " " + e.Version
		switch e.Kind {
		case EvDownloading:
			s += fmt.Sprintf(" %d", e.Progress)
		case EvSkipped:
			s += " " + e.Reason
		}
		out = append(out, s)
	}
	return out
}

func TestManagedUpdateEventsInOrder(t *testing.T) {
	c := clock.NewFake(time.Now().Add(time.Minute))
	w, ds, d := acceptedDevice(t, c, nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	installs(t, d, "1.1.0")
	d.flushEvents()

	es := ds.Events()
	got := eventList(es)
	t.Logf("events %q", got)
	if len(es) < 5 || got[0] != "offered 1.1.0" || got[1] != "downloading 1.1.0 0" {
		t.Fatalf("events %q: want offered, then downloading at 0", got)
	}
	i := 1
	last := -1
	for ; i < len(es) && es[i].Kind == EvDownloading; i++ {
		// The fake clock stands still: only 10-point steps send one.
		if es[i].Progress < last+progressStep && last >= 0 || es[i].Version != "1.1.0" {
			t.Fatalf("events %q: progress not in steps of %d", got, progressStep)
		}
		last = es[i].Progress
	}
	if n := i - 1; n < 2 || n > 11 || last < 90 {
		t.Fatalf("events %q: %d downloading events ending at %d, want 2..11 ending at 90 or more", got, n, last)
	}
	if want := []string{"installing 1.1.0", "rebooting 1.1.0", "succeeded 1.1.0"}; strings.Join(got[i:], ",") != strings.Join(want, ",") {
		t.Fatalf("events %q: after the download want %q", got, want)
	}
	keyID, _ := DeviceKeyID(d.cfg.KeyFile)
	for _, e := range es {
		if e.KeyID != keyID {
			t.Fatalf("event %+v not signed by the device key %s", e, keyID)
		}
	}
	// Up to date: a check sends nothing more.
	if chk, err := d.managedCheck(); err != nil || chk.Action != "none" {
		t.Fatalf("next check: %+v, %v", chk, err)
	}
	if n := len(ds.Events()); n != len(es) {
		t.Fatalf("an up-to-date check sent %d more events", n-len(es))
	}
}

func TestProgressDue(t *testing.T) {
	for _, c := range []struct {
		last, pct int
		since     time.Duration
		want      bool
	}{
		{0, 9, time.Second, false},
		{0, 10, 0, true},
		{40, 49, 29 * time.Second, false},
		{40, 41, 30 * time.Second, true},
		{40, 40, time.Hour, false}, // no progress, no event
		{90, 100, 0, true},
	} {
		if got := progressDue(c.last, c.pct, c.since); got != c.want {
			t.Errorf("progressDue(%d, %d, %v) = %v, want %v", c.last, c.pct, c.since, got, c.want)
		}
	}
}

func TestAnonymousModeSendsNoEvents(t *testing.T) {
	w, ds := managedWorld(t, "version")
	d := managedDevice(t, w, ds, "", nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	installs(t, d, "1.1.0")
	d.agent().FlushReports(context.Background())
	reports := 0
	for _, r := range ds.Requests() {
		switch {
		case r.Path == deviceapi.ReportsPath:
			reports++
		case strings.HasPrefix(r.Path, "/api/device/") || r.Signed:
			t.Fatalf("anonymous agent sent %s %s (signed %v)", r.Method, r.Path, r.Signed)
		}
	}
	if reports == 0 {
		t.Fatal("the anonymous agent sent no report: the test saw no outcome to send")
	}
	if es := ds.Events(); len(es) != 0 {
		t.Fatalf("anonymous agent's events: %+v", es)
	}
}

// eventRequests counts the requests to the events path.
func eventRequests(ds *devicetest.Server) int {
	n := 0
	for _, r := range ds.Requests() {
		if r.Path == deviceEventsPath {
			n++
		}
	}
	return n
}

func TestManagedEventsAreBestEffort(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		hang   bool
	}{{"server error", http.StatusInternalServerError, false}, {"no answer", 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			old := eventTimeout
			eventTimeout = 300 * time.Millisecond
			t.Cleanup(func() { eventTimeout = old })
			c := clock.NewFake(time.Now().Add(time.Minute))
			w, ds, d := acceptedDevice(t, c, nil)
			ds.EventStatus = tc.status
			if tc.hang {
				ds.EventHang = make(chan struct{})
				t.Cleanup(func() { close(ds.EventHang) })
			}
			w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
			w.rollout("1.1.0", 100)
			_, err := d.managedCheck()
			if err != ErrRebooting {
				t.Fatalf("first check: %v, want the reboot into 1.1.0 despite the events", err)
			}
			n := eventRequests(ds)
			if tc.hang && n != 1 {
				t.Fatalf("%d event requests in the check, want 1: after a failed one the check sends none", n)
			}
			if !tc.hang && n < 4 {
				t.Fatalf("%d event requests, want every step tried (a refusal is not a failure of the link)", n)
			}
			installs(t, d, "1.1.0")
			if es := ds.Events(); len(es) != 0 {
				t.Fatalf("events recorded: %+v", es)
			}
		})
	}
}

func TestManagedSkipEventsOncePerVersionAndReason(t *testing.T) {
	c := clock.NewFake(time.Now().Add(time.Minute))
	w, ds, d := acceptedDevice(t, c, nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	ctx := context.Background()
	if _, err := SetAutoUpdates(ctx, d.cfg.DataDir, false, c.Now(), nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if chk, err := d.managedCheck(); err != nil || chk.Action != "waiting" {
			t.Fatalf("check with automatic updates off: %+v, %v", chk, err)
		}
	}
	if got := eventList(ds.Events()); strings.Join(got, ",") != "skipped 1.1.0 owner_consent_missing" {
		t.Fatalf("events %q: want one owner_consent_missing skip", got)
	}
	if _, err := SetAutoUpdates(ctx, d.cfg.DataDir, true, c.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Postpone(ctx, d.cfg.DataDir, 24*time.Hour, c.Now(), nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if chk, err := d.managedCheck(); err != nil || chk.Action != "waiting" {
			t.Fatalf("check while postponed: %+v, %v", chk, err)
		}
	}
	want := "skipped 1.1.0 owner_consent_missing,skipped 1.1.0 postponed_by_owner"
	if got := eventList(ds.Events()); strings.Join(got, ",") != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if s := d.state(); strings.Join(s.SkipsSent, ",") != "1.1.0|postponed_by_owner" || s.Version != "1.0.0" {
		t.Fatalf("skips remembered %q, running %s", s.SkipsSent, s.Version)
	}
}

func TestManagedSkipIncompatibleHardware(t *testing.T) {
	c := clock.NewFake(time.Now().Add(time.Minute))
	w, ds, d := acceptedDevice(t, c, func(c *Config) { c.Hardware = "rev-z" })
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	for range 2 {
		if chk, err := d.managedCheck(); err != nil || chk.Action != "rejected" || !strings.Contains(chk.Reason, "not for hardware rev-z") {
			t.Fatalf("check: %+v, %v", chk, err)
		}
	}
	if got := eventList(ds.Events()); strings.Join(got, ",") != "skipped 1.1.0 incompatible_hardware" {
		t.Fatalf("events %q: want one incompatible_hardware skip", got)
	}
}

// The contract server accepts the skip reasons the real server does.
func TestSkipReasonsAreTheServers(t *testing.T) {
	for _, r := range []string{SkipIncompatibleHardware, SkipConsentMissing, SkipPostponed, SkipOutsideWindow} {
		if !slices.Contains(project.SkipReasons, r) {
			t.Errorf("skip reason %q is not one the server accepts (%v)", r, project.SkipReasons)
		}
	}
	if got := devicetest.SkipReasons(); !slices.Equal(got, project.SkipReasons) {
		t.Errorf("devicetest accepts %v, the server %v", got, project.SkipReasons)
	}
}
