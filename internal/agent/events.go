package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Update events of managed mode (docs/device-protocol.md): the agent of a
// managed device tells the server, as signed events (POST
// /api/device/v1/events), the steps of an update as they happen:
//
//   - offered: it decided to install a version (once per version);
//   - downloading, with the percentage received: when the download starts
//     or resumes, then when 10 more points arrived or 30 s passed since
//     the last one (never one per chunk; see dlEvents);
//   - installing: the image in the inactive slot verified, the bootloader
//     is about to be armed;
//   - rebooting: before it asks the device to restart;
//   - succeeded, failed, rolled_back: the outcome, after the anonymous
//     report (sendEvent);
//   - skipped, with a reason of the server's list, when it does not
//     install an offered release: incompatible_hardware,
//     owner_consent_missing, postponed_by_owner,
//     outside_maintenance_window. A skip is sent once for the same version
//     and reason (State.SkipsSent), not at every check. support_ended is
//     never sent: the agent installs the releases the maker still signs
//     after the support period (see choose).
//
// Events are best effort: each has eventTimeout, a failed one is logged
// and never retried, and after one failure the rest of the cycle sends
// none (eventsDown), so an unreachable server delays an update by one
// eventTimeout at most. Anonymous mode sends none.

// Kinds of update events (the server's store.DeviceEvent kinds).
const (
	EvOffered     = "offered"
	EvDownloading = "downloading"
	EvInstalling  = "installing"
	EvRebooting   = "rebooting"
	EvSkipped     = "skipped"
)

// Skip reasons the server accepts (project.SkipReasons).
const (
	SkipIncompatibleHardware = "incompatible_hardware"
	SkipConsentMissing       = "owner_consent_missing"
	SkipPostponed            = "postponed_by_owner"
	SkipOutsideWindow        = "outside_maintenance_window"
)

// eventTimeout bounds one event's request (a variable for tests).
var eventTimeout = 5 * time.Second

// Download progress events: one when the download (re)starts, then at
// most one per progressStep percentage points or progressEvery.
const (
	progressStep  = 10
	progressEvery = 30 * time.Second
)

// deviceEvent is the body of a managed device's update event.
type deviceEvent struct {
	Kind       string `json:"kind"`
	Version    string `json:"version,omitempty"`
	Progress   int    `json:"progress,omitempty"`
	ErrorClass string `json:"error_class,omitempty"`
	Message    string `json:"message,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// postEvent sends e, signed, best effort (see above). It returns whether
// the server accepted it.
func (a *Agent) postEvent(ctx context.Context, e deviceEvent) bool {
	if !a.cfg.Managed() || a.devKey == nil || a.eventsDown {
		return false
	}
	body, err := json.Marshal(e)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	ans, err := a.http.Call(ctx, http.MethodPost, strings.TrimSuffix(a.cfg.Server, "/")+deviceEventsPath, body, maxDeviceAnswer)
	switch {
	case err != nil:
		a.eventsDown = true
		a.log.Info("update event not delivered; no more events in this check", "kind", e.Kind, "err", err)
		return false
	case ans.StatusCode != http.StatusCreated:
		a.log.Info("update event refused by the server", "kind", e.Kind, "status", ans.StatusCode)
		return false
	}
	return true
}

// offeredEvent sends offered for version, once per version (State.OfferedSent).
func (a *Agent) offeredEvent(ctx context.Context, s *State, version string) {
	if !a.cfg.Managed() || s.OfferedSent == version {
		return
	}
	if a.postEvent(ctx, deviceEvent{Kind: EvOffered, Version: version}) {
		s.OfferedSent = version
	}
}

// skip is one offered release the check does not install, and why.
type skip struct {
	Version, Reason string
}

func (k skip) key() string { return k.Version + "|" + k.Reason }

// skipEvents sends a skipped event for each skip not sent before, and
// remembers the skips of this check (State.SkipsSent): a skip that
// persists is not sent again, one that ends and comes back is. The
// window skip of installing, the release the check goes on installing,
// is kept (it is decided after the download, see waitForWindow).
func (a *Agent) skipEvents(ctx context.Context, s *State, skips []skip, installing string) {
	if !a.cfg.Managed() {
		return
	}
	now := windowSkipsOf(s.SkipsSent, installing)
	for _, k := range skips {
		if slices.Contains(s.SkipsSent, k.key()) || a.postEvent(ctx, deviceEvent{Kind: EvSkipped, Version: k.Version, Reason: k.Reason}) {
			now = append(now, k.key())
		}
	}
	s.SkipsSent = now
}

// heldSkips are the skips of the releases an owner rule holds.
func heldSkips(held []Waiting) []skip {
	var out []skip
	for _, w := range held {
		r := SkipConsentMissing
		if w.Hold == HoldPostponed {
			r = SkipPostponed
		}
		out = append(out, skip{Version: w.Version, Reason: r})
	}
	return out
}

// dlEvents rate-limits the downloading events of one download.
type dlEvents struct {
	a       *Agent
	ctx     context.Context
	version string
	length  int64
	got     int64
	lastPct int
	lastAt  time.Time
}

// startDownloadEvents sends the first downloading event of a download of
// length bytes of which saved are already durable, and returns the
// function the route calls with every read (nil in anonymous mode).
func (a *Agent) startDownloadEvents(ctx context.Context, version string, length, saved int64) func(int64) {
	if !a.cfg.Managed() || length <= 0 {
		return nil
	}
	d := &dlEvents{a: a, ctx: ctx, version: version, length: length, got: saved}
	d.send()
	return d.received
}

func (d *dlEvents) pct() int {
	p := int(d.got * 100 / d.length)
	return min(max(p, 0), 100)
}

func (d *dlEvents) send() {
	d.lastPct, d.lastAt = d.pct(), d.a.clock.Now()
	d.a.postEvent(d.ctx, deviceEvent{Kind: EvDownloading, Version: d.version, Progress: d.lastPct})
}

func (d *dlEvents) received(n int64) {
	d.got += n
	if progressDue(d.lastPct, d.pct(), d.a.clock.Now().Sub(d.lastAt)) {
		d.send()
	}
}

// progressDue says whether a downloading event is due at pct, since an
// event at lastPct sent since ago: progressStep more points, or some
// progress and progressEvery.
func progressDue(lastPct, pct int, since time.Duration) bool {
	return pct >= lastPct+progressStep || pct > lastPct && since >= progressEvery
}
