package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/store"
)

// installs checks that a device installs version in one cycle, and
// returns its state.
func installs(t *testing.T, d *testDevice, version string) *State {
	t.Helper()
	if _, err := d.cycle(); err != nil {
		t.Fatalf("cycle: %v", err)
	}
	s := d.state()
	if s.Version != version || s.Phase != PhaseIdle || s.Pending != nil {
		t.Fatalf("state %s %s, pending %+v; want %s installed", s.Version, s.Phase, s.Pending, version)
	}
	return s
}

func TestCheckInstallsTheFullPayload(t *testing.T) {
	w := newTestWorld(t)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	w.rollout("1.1.0", 100)
	d := w.device()
	s := installs(t, d, "1.1.0")
	if s.MaxSecurityVersion != 2 || s.ActiveHash == nil || s.LastDelta != nil {
		t.Fatalf("state after install: max security %d, active hash %+v, last delta %+v", s.MaxSecurityVersion, s.ActiveHash, s.LastDelta)
	}
	if c := s.Downloads[len(s.Downloads)-1]; !c.Complete || c.Bytes != int64(len(w.images["1.1.0"])) {
		t.Fatalf("download count %+v", c)
	}
	// Nothing newer: the next check is up to date.
	if chk, err := d.cycle(); err != nil || chk.Action != "none" || !strings.Contains(chk.Reason, "up to date") {
		t.Fatalf("second check: %+v, %v", chk, err)
	}
}

func TestCheckInstallsFromADelta(t *testing.T) {
	w := newTestWorld(t)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFix, SecurityVersion: 1, DeltaFrom: []string{"1.0.0"}})
	w.rollout("1.1.0", 100)
	d := w.device()
	s := installs(t, d, "1.1.0")
	if s.LastDelta == nil || !s.LastDelta.Used || s.LastDelta.From != "1.0.0" {
		t.Fatalf("last delta %+v, want used from 1.0.0", s.LastDelta)
	}
}

func TestCheckInstallsACompressedPayload(t *testing.T) {
	for _, stage := range []bool{true, false} {
		t.Run(map[bool]string{true: "staged", false: "streamed"}[stage], func(t *testing.T) {
			w := newTestWorld(t)
			w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFix, SecurityVersion: 1,
				Compression: release.CompressionZstd, ZstdFrame: 256 << 10})
			w.rollout("1.1.0", 100)
			d := w.device()
			d.change = func(c *Config) { c.StageCompressed = &stage }
			installs(t, d, "1.1.0")
		})
	}
}

func TestCheckRollsBackAnUnhealthyRelease(t *testing.T) {
	w := newTestWorld(t)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFix, SecurityVersion: 1})
	w.rollout("1.1.0", 100)
	d := w.device()
	d.healthy = false
	if _, err := d.cycle(); err != nil {
		t.Fatal(err)
	}
	s := d.state()
	if s.Version != "1.0.0" || s.Failed["1.1.0"].ErrorClass != report.ClassHealthCheck {
		t.Fatalf("running %s, failed %+v", s.Version, s.Failed)
	}
	// Not retried.
	d.healthy = true
	if chk, err := d.cycle(); err != nil || chk.Action != "waiting" || !strings.Contains(chk.Reason, "not retried") {
		t.Fatalf("next check: %+v, %v", chk, err)
	}
}

func TestCheckWaitsForTheOwner(t *testing.T) {
	w := newTestWorld(t)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFeature, SecurityVersion: 1,
		Impact: release.Impact{DataCollection: release.ChangeMore, DataCollectionText: "usage statistics", Functionality: release.ChangeNone}})
	w.rollout("1.1.0", 100)
	d := w.device()
	chk, err := d.cycle()
	if err != nil {
		t.Fatal(err)
	}
	s := d.state()
	if chk.Action != "waiting" || len(s.Waiting) != 1 || s.Waiting[0].Hold != HoldAdverse || s.Version != "1.0.0" {
		t.Fatalf("check %+v, waiting %+v", chk, s.Waiting)
	}
}

// TestCheckDropsAnInterruptedDownloadItNoLongerInstalls: a download cut
// after a checkpoint stays in phase writing; when the rollout is halted the
// next check gives it up (idle-after-drop).
func TestCheckDropsAnInterruptedDownloadItNoLongerInstalls(t *testing.T) {
	w := newTestWorld(t)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFix, SecurityVersion: 1})
	w.rollout("1.1.0", 100)
	d := w.device()
	writes := 0
	d.power = func(p string) error {
		if p == "mid-write" {
			if writes++; writes == 3 {
				return ErrPowerLoss
			}
		}
		return nil
	}
	d.change = func(c *Config) { c.PowerLossBudget = 256 << 10 }
	if _, err := d.cycle(); err == nil {
		t.Fatal("the power loss did not stop the cycle")
	}
	if s := d.state(); s.Phase != PhaseWriting || s.Pending == nil {
		t.Fatalf("after the power loss: phase %s, pending %+v", s.Phase, s.Pending)
	}
	if _, err := w.p.ChangeRollout(t.Context(), "thermostat", func(r *store.Rollout) { r.Halted = true }); err != nil {
		t.Fatal(err)
	}
	w.reload()
	var points []string
	d.power = func(p string) error { points = append(points, p); return nil }
	chk, err := d.cycle()
	if err != nil {
		t.Fatal(err)
	}
	if s := d.state(); s.Phase != PhaseIdle || s.Pending != nil || chk.Action != "waiting" || !strings.Contains(strings.Join(points, ","), "idle-after-drop") {
		t.Fatalf("after the halt: phase %s, check %+v, points %v", s.Phase, chk, points)
	}
}

func TestCheckRefusesWhatItMustNot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  project.ReleaseSpec
		state func(*State)
		class report.Class
	}{
		{name: "security version below the floor", spec: project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFix, SecurityVersion: 1},
			state: func(s *State) { s.MaxSecurityVersion = 5 }, class: report.ClassRollbackSecurity},
		{name: "older than the running release", spec: project.ReleaseSpec{Version: "0.9.0", Kind: release.KindFix, SecurityVersion: 1},
			class: report.ClassRollbackVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorld(t)
			w.publish(tc.spec)
			w.rollout(tc.spec.Version, 100)
			d := w.device()
			if tc.state != nil {
				s := d.state()
				tc.state(s)
				if err := saveState(d.cfg.DataDir, s); err != nil {
					t.Fatal(err)
				}
			}
			chk, err := d.cycle()
			if err != nil || chk.Action != "rejected" || chk.ErrorClass != tc.class {
				t.Fatalf("check %+v, %v; want rejected, %s", chk, err, tc.class)
			}
		})
	}
}

// flipBlobByte alters the stored payload of version in place, as a
// corrupted mirror would serve it, and returns the function that restores
// it.
func flipBlobByte(t *testing.T, w *testWorld, version string) func() {
	t.Helper()
	sum := sha256.Sum256(w.images[version])
	path := filepath.Join(w.p.Dir, "blobs", "sha256", hex.EncodeToString(sum[:1]), hex.EncodeToString(sum[:]))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func() {
		b[len(b)/2] ^= 0x40
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flip()
	return flip
}

// TestCheckRefusesATamperedPayload: a payload that does not match its
// signed hashes is refused, reported once, and the install given up
// (idle-after-drop); the genuine payload installs at the next check.
func TestCheckRefusesATamperedPayload(t *testing.T) {
	w := newTestWorld(t)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFix, SecurityVersion: 1})
	w.rollout("1.1.0", 100)
	restore := flipBlobByte(t, w, "1.1.0")
	d := w.device()
	reports := true
	d.change = func(c *Config) { c.Reports = &reports }
	var points []string
	d.power = func(p string) error { points = append(points, p); return nil }
	chk, err := d.cycle()
	if err != nil {
		t.Fatal(err)
	}
	s := d.state()
	if chk.Action != "rejected" || chk.ErrorClass != report.ClassPayloadHash || s.Phase != PhaseIdle || s.Pending != nil ||
		!slices.Contains(points, "idle-after-drop") || s.LastReported != "1.1.0|"+string(report.ClassPayloadHash) {
		t.Fatalf("check %+v, phase %s, points %v, last reported %q", chk, s.Phase, points, s.LastReported)
	}
	restore()
	installs(t, d, "1.1.0")
}

// TestCheckFallsBackFromADeltaForAnotherSource: when the active slot does
// not hold the delta's source image, the delta is not used, the reason is
// recorded, and the full payload installs in the same check.
func TestCheckFallsBackFromADeltaForAnotherSource(t *testing.T) {
	w := newTestWorld(t)
	w.publish(project.ReleaseSpec{Version: "1.1.0", Kind: release.KindFix, SecurityVersion: 1, DeltaFrom: []string{"1.0.0"}})
	w.rollout("1.1.0", 100)
	d := w.device()
	img := filepath.Join(d.slots, fileslot.ImageFile(slot.A))
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := installs(t, d, "1.1.0")
	if s.LastDelta == nil || s.LastDelta.Used || !strings.Contains(s.LastDelta.Reason, "does not hold the delta's source image") {
		t.Fatalf("last delta %+v, want not used for another source", s.LastDelta)
	}
	if c := s.Downloads[len(s.Downloads)-1]; c.DeltaFrom != "" || !c.Complete {
		t.Fatalf("download count %+v, want the full payload", c)
	}
}
