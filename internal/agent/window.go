package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/rollout"
)

// Maintenance windows (docs/device-protocol.md).
//
// A managed device's own fleet view may carry, in the custom metadata of
// the target it offers, "uptrust"."managed"."window": a weekly window in
// rollout.ParseWindow syntax ("Mon-Fri 02:00-04:00 Europe/Berlin"). The
// agent then downloads at any time but arms the bootloader and reboots
// only while the window is open, by the device's own clock
// (Clock.Now, not the reference time of the metadata checks):
//
//   - outside the window the check downloads the image into the inactive
//     slot and verifies it (the running slot is never touched), then stops:
//     phase writing with Pending.Ready, action "waiting" with a reason that
//     names the window and its next opening (rollout.Window.Next), and one
//     skipped event, outside_maintenance_window, per version;
//   - a later check that still installs the same release into the same
//     slot, inside the window, reads the slot back, verifies it against the
//     signed length and hash and arms it; a slot that no longer verifies is
//     written again. A check that installs something else, or nothing,
//     drops it as any interrupted write;
//   - a window that does not parse (a bad day, time or zone, or a zone the
//     device does not know) refuses the release: an error naming the
//     window, and nothing installs;
//   - the window is kept in state.json (State.Window) as the last
//     successful check verified it. When the server cannot be reached the
//     device keeps it and shows it in status; it installs nothing without
//     a successful check of both repositories, and its next successful
//     check replaces the window with the one the fresh view carries (or
//     removes it). A server can only change the window through metadata
//     signed with the online fleet keys.
//
// The time zones come from the system's zoneinfo, or from the copy
// embedded in the agent binary (time/tzdata, cmd/uptrust-agent) on
// devices that have none.

// KeptWindow is a verified maintenance window (State.Window).
type KeptWindow struct {
	// Window is the window in its canonical form (rollout.Window.String).
	Window string `json:"window"`
	// Version is the release it applies to, Rollout the rollout that
	// offers it (when the view names one).
	Version string `json:"version"`
	Rollout string `json:"rollout,omitempty"`
	// Verified is when the check that read it from verified metadata ran.
	Verified time.Time `json:"verified"`
}

// fleetWindow reads the maintenance window of a fleet target: nil when
// it has none; an error naming the window when it does not parse.
func fleetWindow(fleet *metadata.TargetFiles) (*rollout.Window, string, error) {
	if fleet == nil || fleet.Custom == nil {
		return nil, "", nil
	}
	var c rollout.Custom
	if err := json.Unmarshal(*fleet.Custom, &c); err != nil {
		return nil, "", fmt.Errorf("fleet custom metadata: %w", err)
	}
	m := c.Uptrust.Managed
	if m == nil || m.Window == "" {
		return nil, "", nil
	}
	w, err := rollout.ParseWindow(m.Window)
	if err != nil {
		return nil, m.Rollout, fmt.Errorf("the maintenance window %q of the signed fleet view does not parse, nothing installs: %w", m.Window, err)
	}
	return &w, m.Rollout, nil
}

// keepWindow records in s the window of the offer the decision is about
// (the one it installs, else the one it names): the window verified by
// this check, or none. A window that did not parse leaves s as it was
// (the decision refused the release).
func keepWindow(s *State, offers []Offer, d Decision, now time.Time) {
	o := d.Install
	if o == nil {
		for i := range offers {
			if offers[i].Version == d.Offered {
				o = &offers[i]
			}
		}
	}
	switch {
	case o != nil && o.WindowErr != nil:
		return
	case o == nil || o.Window == nil:
		s.Window = nil
		return
	}
	s.Window = &KeptWindow{Window: o.Window.String(), Version: o.Version, Rollout: o.WindowRollout, Verified: now.UTC()}
}

// keptWindow parses the kept window; nil when there is none.
func (s *State) keptWindow() (*rollout.Window, error) {
	if s.Window == nil {
		return nil, nil
	}
	w, err := rollout.ParseWindow(s.Window.Window)
	if err != nil {
		return nil, fmt.Errorf("agent: the kept maintenance window: %w", err)
	}
	return &w, nil
}

// windowClosed says whether the kept window forbids installing at now,
// and if so why, with the next opening. A kept window that does not
// parse forbids it.
func windowClosed(s *State, now time.Time) (bool, string) {
	w, err := s.keptWindow()
	switch {
	case err != nil:
		return true, err.Error()
	case w == nil || w.Contains(now):
		return false, ""
	}
	why := "outside the maintenance window " + w.String()
	if next, ok := w.Next(now); ok {
		why += "; it opens next at " + next.In(w.Location()).Format(time.RFC3339)
	}
	return true, why
}

// waitForWindow ends an install whose image is written and verified but
// whose window is closed (why): the release waits in the slot
// (Pending.Ready) for a check inside the window.
func (a *Agent) waitForWindow(ctx context.Context, s *State, why string) error {
	p := s.Pending
	p.Ready, p.Progress, p.Delta = true, nil, nil
	a.dropStagedFile()
	a.dropDeltaFile()
	s.LastCheck = &Check{At: a.clock.Now().UTC(), Offered: p.Version, Action: "waiting",
		Reason: fmt.Sprintf("%s; %s is downloaded and verified in slot %s and installs then", why, p.Version, p.Slot)}
	a.log.Info("waiting for the maintenance window", "version", p.Version, "why", why)
	a.windowSkip(ctx, s, p.Version)
	return a.record(s)
}

// windowSkip sends the outside_maintenance_window skip of version once.
func (a *Agent) windowSkip(ctx context.Context, s *State, version string) {
	k := skip{Version: version, Reason: SkipOutsideWindow}
	if slices.Contains(s.SkipsSent, k.key()) {
		return
	}
	if a.postEvent(ctx, deviceEvent{Kind: EvSkipped, Version: version, Reason: SkipOutsideWindow}) {
		s.SkipsSent = append(s.SkipsSent, k.key())
	}
}

// windowSkipsOf keeps, of the skips sent, the window skip of version (the
// release still being installed).
func windowSkipsOf(sent []string, version string) []string {
	if version == "" {
		return nil
	}
	k := skip{Version: version, Reason: SkipOutsideWindow}.key()
	if slices.Contains(sent, k) {
		return []string{k}
	}
	return nil
}

// installReady goes on with an image that waits in the slot for the
// window (Pending.Ready): it waits again while the window is closed;
// inside, it verifies the slot and arms it. It reports false when the
// slot no longer holds the image: the caller writes it again.
func (a *Agent) installReady(ctx context.Context, s *State) (bool, error) {
	p := s.Pending
	if closed, why := windowClosed(s, a.clock.Now()); closed {
		return true, a.waitForWindow(ctx, s, why)
	}
	length, sum := p.Length, p.SHA256
	if p.Compression == release.CompressionZstd {
		length, sum = p.ImageLength, p.ImageSHA256
	}
	got, err := a.slotHash(ctx, p, length)
	if err != nil || !strings.EqualFold(got, sum) {
		a.log.Warn("the image waiting for the maintenance window no longer verifies; writing it again", "version", p.Version, "slot", p.Slot, "err", err)
		p.Ready = false
		return false, nil
	}
	s.LastCheck.Action, s.LastCheck.Reason = "installing", fmt.Sprintf("the maintenance window is open: arming %s, written into slot %s earlier", p.Version, p.Slot)
	return true, a.armWritten(ctx, s)
}

// slotHash is the SHA-256 (hex) of the first length bytes of p's slot;
// "" when the slot is shorter.
func (a *Agent) slotHash(ctx context.Context, p *Pending, length int64) (string, error) {
	rd, err := a.slots.OpenReader(ctx, p.Slot)
	if err != nil {
		return "", fmt.Errorf("opening slot %s for reading: %w", p.Slot, err)
	}
	defer rd.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rd, length))
	if err != nil {
		return "", fmt.Errorf("reading slot %s: %w", p.Slot, err)
	}
	if n != length {
		return "", nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// windowSpread spreads the checks of devices waiting for the same window
// over the first minute after it opens.
const windowSpread = time.Minute

// windowWait is how long Run waits before the next check when a release
// waits in the slot for the kept window: until the window's next opening
// plus up to windowSpread; false when nothing waits or the state cannot
// be read.
func windowWait(dataDir string, now time.Time) (time.Duration, bool) {
	s, err := LoadState(dataDir)
	if err != nil {
		return 0, false
	}
	return windowWaitOf(s, now, rand.N(windowSpread))
}

// windowWaitOf is windowWait for the state s, with spread added.
func windowWaitOf(s *State, now time.Time, spread time.Duration) (time.Duration, bool) {
	if s.Phase != PhaseWriting || s.Pending == nil || !s.Pending.Ready {
		return 0, false
	}
	w, err := s.keptWindow()
	if err != nil || w == nil {
		return 0, false
	}
	next, ok := w.Next(now)
	if !ok {
		return 0, false
	}
	return next.Sub(now) + spread, true
}

// windowStatus fills the window fields of the status at now.
func (st *Status) windowStatus(s *State, now time.Time) {
	st.Window = s.Window
	if s.Pending != nil && s.Phase == PhaseWriting {
		st.ReadyToInstall = s.Pending.Ready
	}
	w, err := s.keptWindow()
	if err != nil {
		st.Warnings = append(st.Warnings, err.Error()+"; nothing installs until a check brings a valid one")
		return
	}
	if w == nil {
		return
	}
	st.WindowOpen = w.Contains(now)
	if s.Pending == nil || s.Phase != PhaseWriting {
		return
	}
	if next, ok := w.Next(now); ok {
		next = next.In(w.Location())
		st.NextInstall = &next
	}
}

// writeWindow prints the window lines of the status.
func (st *Status) writeWindow(w io.Writer) {
	kw := st.Window
	if kw == nil {
		return
	}
	state := "closed"
	if st.WindowOpen {
		state = "open"
	}
	fmt.Fprintf(w, "maint. window:    %s (%s now; for %s, verified %s)\n", kw.Window, state, kw.Version, kw.Verified.UTC().Format(timeFormat))
	switch {
	case st.NextInstall != nil && st.ReadyToInstall:
		fmt.Fprintf(w, "next install:     %s (%s is downloaded and verified in the inactive slot; installs at the first check from then on)\n",
			st.NextInstall.Format(time.RFC3339), st.Installing)
	case st.NextInstall != nil:
		fmt.Fprintf(w, "next install:     %s at the earliest (once %s is downloaded)\n", st.NextInstall.Format(time.RFC3339), st.Installing)
	}
}
