package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/devicetest"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
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

// setFleetWindow re-signs the fleet repository with the online fleet keys
// so that the target of version carries what a managed device's own view
// carries: the rollout, the wave and window ("" for none).
func (w *testWorld) setFleetWindow(version, window string) {
	w.t.Helper()
	ctx := context.Background()
	load := func(name string) repo.Signer {
		k, err := keys.Load(filepath.Join(w.p.Dir, "keys", "online", name+".key"), nil)
		if err != nil {
			w.t.Fatal(err)
		}
		return k
	}
	now, life := time.Now().UTC(), w.p.Lifetimes()
	err := w.p.Store.Update(ctx, func(tx store.Tx) error {
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoFleet, repo.RoleTargets, now, life, func(t *metadata.TargetsType) error {
			tf := t.Targets[release.TargetName("thermostat", version)]
			if tf == nil || tf.Custom == nil {
				return fmt.Errorf("the fleet does not offer %s", version)
			}
			var c rollout.Custom
			if err := json.Unmarshal(*tf.Custom, &c); err != nil {
				return err
			}
			c.Uptrust.Managed = &rollout.ManagedCustom{Rollout: "r-test", Wave: 1, Window: window}
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			raw := json.RawMessage(b)
			tf.Custom = &raw
			return nil
		}, load("fleet-targets"))
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoFleet, now, life, load("fleet-snapshot"), load("fleet-timestamp"))
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.reload()
}

// windowAhead is a daily window in UTC that opens at t+2h and closes an
// hour later, with t truncated to the minute.
func windowAhead(t time.Time) (string, time.Time) {
	open := t.UTC().Truncate(time.Minute).Add(2 * time.Hour)
	close := open.Add(time.Hour)
	return fmt.Sprintf("daily %s-%s UTC", open.Format("15:04"), close.Format("15:04")), open
}

// downloadedBytes is what the device received for version so far.
func downloadedBytes(s *State, version string) int64 {
	for _, d := range s.Downloads {
		if d.Version == version {
			return d.Bytes
		}
	}
	return 0
}

func TestMaintenanceWindowDownloadsOutsideInstallsInside(t *testing.T) {
	c := clock.NewFake(time.Now().Add(time.Minute))
	w, ds, d := acceptedDevice(t, c, nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	win, open := windowAhead(c.Now())
	w.setFleetWindow("1.1.0", win)

	// Outside: downloaded into the inactive slot and verified, not armed.
	chk, err := d.managedCheck()
	if err != nil {
		t.Fatalf("check outside the window: %v", err)
	}
	nextOpen := open.Format(time.RFC3339)
	if chk.Action != "waiting" || !strings.Contains(chk.Reason, "outside the maintenance window "+win) || !strings.Contains(chk.Reason, nextOpen) {
		t.Fatalf("check outside the window: %+v; want waiting, naming %q and %s", chk, win, nextOpen)
	}
	s := d.state()
	if s.Phase != PhaseWriting || s.Pending == nil || !s.Pending.Ready || s.Version != "1.0.0" {
		t.Fatalf("state outside the window: phase %s pending %+v running %s", s.Phase, s.Pending, s.Version)
	}
	if s.Window == nil || s.Window.Window != win || s.Window.Version != "1.1.0" || s.Window.Rollout != "r-test" {
		t.Fatalf("kept window %+v", s.Window)
	}
	got := downloadedBytes(s, "1.1.0")
	if got != int64(len(w.images["1.1.0"])) {
		t.Fatalf("downloaded %d bytes, want the whole payload", got)
	}
	// The bootloader was not touched.
	if st, err := d.agent().slots.State(context.Background()); err != nil || st.Trial || st.Primary != st.Booted {
		t.Fatalf("bootloader outside the window: %+v, %v", st, err)
	}
	st, err := ReadStatus(context.Background(), d.cfg, nil, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Window == nil || st.WindowOpen || !st.ReadyToInstall || st.NextInstall == nil || !st.NextInstall.Equal(open) {
		t.Fatalf("status: window %+v open %v ready %v next %v; want next install at %s", st.Window, st.WindowOpen, st.ReadyToInstall, st.NextInstall, open)
	}
	var text strings.Builder
	st.WriteText(&text)
	if !strings.Contains(text.String(), "maint. window:    "+win+" (closed now") || !strings.Contains(text.String(), "next install:     "+nextOpen) {
		t.Fatalf("status text:\n%s", text.String())
	}

	// Still outside: nothing downloaded again, the skip not sent again.
	c.Advance(30 * time.Minute)
	if chk, err := d.managedCheck(); err != nil || chk.Action != "waiting" {
		t.Fatalf("second check outside: %+v, %v", chk, err)
	}
	if again := downloadedBytes(d.state(), "1.1.0"); again != got {
		t.Fatalf("the second check outside the window downloaded again (%d bytes, was %d)", again, got)
	}
	evs := eventList(ds.Events())
	if n := strings.Count(strings.Join(evs, ","), "skipped 1.1.0 outside_maintenance_window"); n != 1 {
		t.Fatalf("events %q: want one outside_maintenance_window skip", evs)
	}
	for _, e := range evs {
		if strings.HasPrefix(e, EvInstalling) || strings.HasPrefix(e, EvRebooting) || strings.HasPrefix(e, "offered") && e != "offered 1.1.0" {
			t.Fatalf("events outside the window %q", evs)
		}
	}

	// Inside: the slot is verified again and armed.
	c.Set(open.Add(5 * time.Minute))
	if _, err := d.managedCheck(); err != ErrRebooting {
		t.Fatalf("check inside the window: %v, want the reboot", err)
	}
	if _, err := fileslot.Boot(d.slots); err != nil {
		t.Fatal(err)
	}
	s = installs(t, d, "1.1.0")
	if b := downloadedBytes(s, "1.1.0"); b != got {
		t.Fatalf("installing inside the window downloaded again (%d bytes, was %d)", b, got)
	}
	d.flushEvents()
	evs = eventList(ds.Events())
	tail := strings.Join(evs[len(evs)-3:], ",")
	if tail != "installing 1.1.0,rebooting 1.1.0,succeeded 1.1.0" || strings.Count(strings.Join(evs, ","), "offered") != 1 {
		t.Fatalf("events %q", evs)
	}
}

func TestMaintenanceWindowReadyImageDamagedIsWrittenAgain(t *testing.T) {
	c := clock.NewFake(time.Now().Add(time.Minute))
	w, _, d := acceptedDevice(t, c, nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	win, open := windowAhead(c.Now())
	w.setFleetWindow("1.1.0", win)
	if chk, err := d.managedCheck(); err != nil || chk.Action != "waiting" {
		t.Fatalf("check outside: %+v, %v", chk, err)
	}
	// Something wrote into the inactive slot meanwhile.
	a := d.agent()
	s := d.state()
	wr, err := a.slots.OpenWriter(context.Background(), s.Pending.Slot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wr.Write([]byte("not the image")); err != nil {
		t.Fatal(err)
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	c.Set(open.Add(time.Minute))
	s = installs(t, d, "1.1.0")
	if b := downloadedBytes(s, "1.1.0"); b != 2*int64(len(w.images["1.1.0"])) {
		t.Fatalf("downloaded %d bytes, want the payload twice (the damaged slot written again)", b)
	}
}

func TestMaintenanceWindowKeptOffline(t *testing.T) {
	c := clock.NewFake(time.Now().Add(time.Minute))
	w, ds, d := acceptedDevice(t, c, nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	win, open := windowAhead(c.Now())
	w.setFleetWindow("1.1.0", win)
	var down atomic.Bool
	next := ds.Next
	ds.Next = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(rw, r)
	})
	if chk, err := d.managedCheck(); err != nil || chk.Action != "waiting" {
		t.Fatalf("check outside: %+v, %v", chk, err)
	}
	down.Store(true)
	c.Set(open.Add(10 * time.Minute))
	chk, err := d.managedCheck()
	if err == ErrRebooting || chk == nil || chk.Action == "waiting" {
		t.Fatalf("check with the server down: %+v, %v; want a failed check", chk, err)
	}
	s := d.state()
	if s.Version != "1.0.0" || s.Pending == nil || !s.Pending.Ready || s.Window == nil || s.Window.Window != win {
		t.Fatalf("state offline: running %s, pending %+v, window %+v; want the image and the window kept", s.Version, s.Pending, s.Window)
	}
	st, err := ReadStatus(context.Background(), d.cfg, nil, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Window == nil || !st.WindowOpen || st.NextInstall == nil || !st.NextInstall.Equal(c.Now()) {
		t.Fatalf("status offline: %+v open %v next %v", st.Window, st.WindowOpen, st.NextInstall)
	}
	// Back online inside the window: it installs without downloading again.
	down.Store(false)
	s = installs(t, d, "1.1.0")
	if b := downloadedBytes(s, "1.1.0"); b != int64(len(w.images["1.1.0"])) {
		t.Fatalf("downloaded %d bytes, want the payload once", b)
	}
}

func TestMaintenanceWindowInvalidRefused(t *testing.T) {
	for _, win := range []string{"Mon-Fry 02:00-04:00 UTC", "daily 02:00-04:00 Mars/Olympus_Mons", "daily 25:00-04:00 UTC"} {
		t.Run(strings.Fields(win)[0]+strings.Fields(win)[1], func(t *testing.T) {
			c := clock.NewFake(time.Now().Add(time.Minute))
			w, ds, d := acceptedDevice(t, c, nil)
			w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
			w.rollout("1.1.0", 100)
			w.setFleetWindow("1.1.0", win)
			chk, err := d.managedCheck()
			if err != nil {
				t.Fatal(err)
			}
			if chk.Action != "rejected" || !strings.Contains(chk.Reason, fmt.Sprintf("maintenance window %q", win)) {
				t.Fatalf("check: %+v; want a refusal naming the window", chk)
			}
			s := d.state()
			if s.Phase != PhaseIdle || s.Pending != nil || downloadedBytes(s, "1.1.0") != 0 || s.Version != "1.0.0" || s.Window != nil {
				t.Fatalf("state: phase %s pending %+v downloads %+v window %+v", s.Phase, s.Pending, s.Downloads, s.Window)
			}
			for _, e := range ds.Events() {
				if e.Kind != EvSkipped || e.Reason == SkipOutsideWindow {
					t.Fatalf("event %+v for a refused release", e)
				}
			}
		})
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

func TestWindowWait(t *testing.T) {
	now := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC) // a Monday
	ready := &State{Phase: PhaseWriting, Pending: &Pending{Version: "1.1.0", Ready: true},
		Window: &KeptWindow{Window: "Mon-Fri 22:00-23:00 UTC", Version: "1.1.0"}}
	if d, ok := windowWaitOf(ready, now, 7*time.Second); !ok || d != 2*time.Hour+7*time.Second {
		t.Fatalf("ready before the window: %v, %v; want 2h7s", d, ok)
	}
	if d, ok := windowWaitOf(ready, now.Add(2*time.Hour+time.Minute), 0); !ok || d != 0 {
		t.Fatalf("ready inside the window: %v, %v; want 0", d, ok)
	}
	downloading := *ready
	downloading.Pending = &Pending{Version: "1.1.0"}
	noWindow := *ready
	noWindow.Window = nil
	bad := *ready
	bad.Window = &KeptWindow{Window: "Mon-Fry 22:00-23:00 UTC"}
	for name, s := range map[string]*State{"downloading": &downloading, "no window": &noWindow, "bad window": &bad, "idle": {Phase: PhaseIdle}} {
		if d, ok := windowWaitOf(s, now, 0); ok {
			t.Errorf("%s: wait %v, want none (the poll interval applies)", name, d)
		}
	}
	if closed, why := windowClosed(&bad, now); !closed || !strings.Contains(why, `"Mon-Fry 22:00-23:00 UTC"`) {
		t.Errorf("a kept window that does not parse: closed %v, %q; want closed, naming it", closed, why)
	}
}

func TestMaintenanceWindowRemovedFromTheView(t *testing.T) {
	c := clock.NewFake(time.Now().Add(time.Minute))
	w, _, d := acceptedDevice(t, c, nil)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	win, _ := windowAhead(c.Now())
	w.setFleetWindow("1.1.0", win)
	if chk, err := d.managedCheck(); err != nil || chk.Action != "waiting" {
		t.Fatalf("check outside: %+v, %v", chk, err)
	}
	// The operator drops the window: the next check replaces the kept one
	// and installs at once, from the image waiting in the slot.
	w.setFleetWindow("1.1.0", "")
	if _, err := d.managedCheck(); err != ErrRebooting {
		t.Fatalf("check without a window: %v, want the reboot", err)
	}
	s := d.state()
	if s.Window != nil || downloadedBytes(s, "1.1.0") != int64(len(w.images["1.1.0"])) {
		t.Fatalf("kept window %+v, downloads %+v; want none kept and the payload downloaded once", s.Window, s.Downloads)
	}
}
