package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"time"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// Event names, as the notify hook receives them. Never rename one. Each is
// sent once per distinct occasion (see Event.Key).
const (
	// EventNeedsConsent: a release waits for the owner, once per version.
	// Hold says why: its impact or kind needs consent, or the owner's own
	// opt-out or postponement holds it; `uptrust-agent consent` installs it
	// in every case.
	EventNeedsConsent = "needs-consent"
	// EventInstalled: a release was committed, once per version.
	EventInstalled = "installed"
	// EventRolledBack: a release failed and the old one runs again.
	EventRolledBack = "rolled-back"
	// EventSupportEnding: the accepted support end date is within 90 days,
	// once per end date.
	EventSupportEnding = "support-ending"
	// EventSupportEnded: the last day of support has passed, once per end
	// date.
	EventSupportEnded = "support-ended"
	// EventSupportShortened: a declaration ending earlier than the accepted
	// one was refused, once per refused declaration.
	EventSupportShortened = "support-shortened"
	// EventMetadataStale: no fresh signed metadata for stale_after, once
	// per stretch without a successful refresh.
	EventMetadataStale = "metadata-stale"
	// EventClockBehind: the clock read earlier than the agent's build, the
	// provisioning or the last successful check, and checks use that time
	// instead (see referenceTime); once per stretch behind.
	EventClockBehind = "clock-behind"
)

// supportEndingWindow is how long before the end of support the owner is
// told it is ending.
const supportEndingWindow = 90 * 24 * time.Hour

// Event is what the notify hook reads on stdin, one JSON object per run.
// Fields beyond event, product, version, time and message are set where
// they apply; new fields may be added, none is removed.
type Event struct {
	Event   string `json:"event"`
	Product string `json:"product"`
	// Version is the release the event is about; for support and
	// metadata events, the running version.
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
	// needs-consent
	Hold          string             `json:"hold,omitempty"`
	Kind          release.Kind       `json:"kind,omitempty"`
	ImpactReasons []string           `json:"impact_reasons,omitempty"`
	Notes         string             `json:"notes,omitempty"`
	Advisories    []release.Advisory `json:"advisories,omitempty"`
	// rolled-back
	ErrorClass report.Class `json:"error_class,omitempty"`
	// support-ending, support-ended, support-shortened
	SupportUntil string `json:"support_until,omitempty"`
	OfferedUntil string `json:"offered_until,omitempty"`
	Contact      string `json:"contact,omitempty"`
	// metadata-stale
	LastRefresh *time.Time `json:"last_refresh,omitempty"`
	// clock-behind: what the clock read, the time checks use instead and
	// where that comes from ("build", "provisioning" or "last-check").
	Clock       *time.Time `json:"clock,omitempty"`
	Floor       *time.Time `json:"floor,omitempty"`
	FloorSource string     `json:"floor_source,omitempty"`

	// Key identifies the event for deduplication (State.Notified); it is
	// neither persisted in the outbox nor sent.
	Key string `json:"-"`
}

// maxNotified bounds State.Notified.
const maxNotified = 128

// emit queues e for the notify hook unless an event with the same key was
// queued before. It only changes s; the caller's next save persists it, so
// an event is queued in the same write as the step that caused it.
func (a *Agent) emit(s *State, e Event) {
	if len(a.cfg.Notify) == 0 {
		return
	}
	if _, done := s.Notified[e.Key]; done {
		return
	}
	if s.Notified == nil {
		s.Notified = map[string]time.Time{}
	}
	if e.Product == "" {
		e.Product = a.cfg.Product
	}
	if e.Time.IsZero() {
		e.Time = a.clock.Now().UTC()
	}
	s.Notified[e.Key] = e.Time
	for len(s.Notified) > maxNotified {
		oldest, at := "", time.Time{}
		for k, t := range s.Notified {
			if oldest == "" || t.Before(at) || (t.Equal(at) && k < oldest) {
				oldest, at = k, t
			}
		}
		delete(s.Notified, oldest)
	}
	s.Outbox = append(s.Outbox, e)
}

// deliver runs the notify hook for every queued event, oldest first, then
// saves the emptied outbox. A hook that fails or times out is logged and
// its event dropped: notifications never hold up updates. Delivery is at
// least once: a power loss before the save repeats the events.
func (a *Agent) deliver(ctx context.Context, s *State) error {
	if len(s.Outbox) == 0 {
		return nil
	}
	for len(s.Outbox) > 0 && ctx.Err() == nil {
		e := s.Outbox[0]
		if len(a.cfg.Notify) > 0 {
			if err := a.runHook(ctx, e); err != nil {
				a.log.Warn("notify hook failed; the event is dropped", "event", e.Event, "version", e.Version, "err", err)
			} else {
				a.log.Info("owner notified", "event", e.Event, "version", e.Version)
			}
		}
		s.Outbox = s.Outbox[1:]
	}
	return a.record(s)
}

// runHook runs Config.Notify with e as JSON on stdin, bounded by
// Config.NotifyTimeout.
func (a *Agent) runHook(ctx context.Context, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.NotifyTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, a.cfg.Notify[0], a.cfg.Notify[1:]...)
	cmd.Stdin = bytes.NewReader(append(b, '\n'))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A hook that leaves children holding its output must not hang us.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("notify %s: no exit within %v", a.cfg.Notify[0], time.Duration(a.cfg.NotifyTimeout))
		}
		return fmt.Errorf("notify %s: %w: %s", a.cfg.Notify[0], err, trim(out.Bytes()))
	}
	return nil
}

// watch queues the events that depend on time rather than on a step:
// support ending or ended, and metadata gone stale.
func (a *Agent) watch(s *State, now time.Time) {
	if sup := s.Support; sup != nil {
		if end, err := release.ParseDate(sup.Until); err == nil {
			endsAt := end.Add(24 * time.Hour) // the last day is supported
			switch {
			case !now.Before(endsAt):
				a.emit(s, Event{Event: EventSupportEnded, Key: EventSupportEnded + "|" + sup.Until, Version: s.Version,
					SupportUntil: sup.Until, Contact: sup.Contact,
					Message: fmt.Sprintf("security support for %s ended on %s; the device keeps installing releases the maker still signs", a.cfg.Product, sup.Until)})
			case endsAt.Sub(now) <= supportEndingWindow:
				a.emit(s, Event{Event: EventSupportEnding, Key: EventSupportEnding + "|" + sup.Until, Version: s.Version,
					SupportUntil: sup.Until, Contact: sup.Contact,
					Message: fmt.Sprintf("security support for %s ends on %s (in %d days)", a.cfg.Product, sup.Until, int(endsAt.Sub(now).Hours()/24))})
			}
		}
	}
	if ref, stale := staleSince(s, a.cfg, now); stale {
		a.emit(s, Event{Event: EventMetadataStale, Key: EventMetadataStale + "|" + ref.UTC().Format(time.RFC3339Nano), Version: s.Version,
			LastRefresh: &ref, Message: staleMessage(ref, now)})
	}
}

// staleSince returns the time of the last successful refresh (or of
// provisioning, before the first) and whether it is older than
// Config.StaleAfter.
func staleSince(s *State, cfg *Config, now time.Time) (time.Time, bool) {
	ref := s.LastRefresh
	if ref == nil {
		ref = s.Provisioned
	}
	if ref == nil {
		return time.Time{}, false
	}
	return *ref, now.Sub(*ref) > time.Duration(cfg.StaleAfter)
}

func staleMessage(ref, now time.Time) string {
	return fmt.Sprintf("no fresh signed update information since %s (%d days): the device may be cut off from updates",
		ref.UTC().Format(timeFormat), int(now.Sub(ref).Hours()/24))
}

// waitingEvent is the needs-consent event of a held release.
func waitingEvent(w Waiting) Event {
	return Event{Event: EventNeedsConsent, Key: EventNeedsConsent + "|" + w.Version, Version: w.Version, Message: w.Reason,
		Hold: w.Hold, Kind: w.Kind, ImpactReasons: w.ImpactReasons, Notes: w.Notes, Advisories: w.Advisories}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
