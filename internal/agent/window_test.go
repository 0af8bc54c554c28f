package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

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
