package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/units"
)

// hookAgent returns an agent whose notify hook is a shell script running
// body, with a fake clock at now, its log, its state, and the file the
// default body appends events to.
func hookAgent(t *testing.T, now time.Time, body string) (*Agent, *State, *bytes.Buffer, string) {
	t.Helper()
	a := testAgent(t, "https://updates.example.com", false)
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	script := filepath.Join(dir, "hook.sh")
	if body == "" {
		body = `cat >> "$1"`
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a.cfg.Notify = []string{script, events}
	a.clock = clock.NewFake(now)
	var log bytes.Buffer
	a.log = slog.New(slog.NewTextHandler(&log, nil))
	s, err := LoadState(a.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return a, s, &log, events
}

// readEvents parses the events a hook appended to path, one JSON per line.
func readEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestNotifyOncePerEvent(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, s, _, events := hookAgent(t, now, "")
	w := Waiting{Version: "2.0.0", Kind: release.KindFeature, Hold: HoldAdverse, Reason: "2.0.0 waits for the owner's consent",
		ImpactReasons: []string{"collects more data: hourly statistics"}, Notes: "new dashboard",
		Advisories: []release.Advisory{{ID: "CVE-2026-0001", Summary: "overflow"}}}
	a.emit(s, waitingEvent(w))
	a.emit(s, waitingEvent(w))
	if len(s.Outbox) != 1 {
		t.Fatalf("outbox after emitting the same event twice: %+v", s.Outbox)
	}
	if err := a.deliver(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, events)
	if len(got) != 1 {
		t.Fatalf("hook ran %d times, want 1: %v", len(got), got)
	}
	e := got[0]
	if e["event"] != "needs-consent" || e["product"] != "thermostat" || e["version"] != "2.0.0" || e["time"] != "2026-03-01T12:00:00Z" ||
		e["message"] != "2.0.0 waits for the owner's consent" || e["hold"] != HoldAdverse || e["notes"] != "new dashboard" {
		t.Fatalf("event: %v", e)
	}
	if fmt.Sprint(e["impact_reasons"]) != "[collects more data: hourly statistics]" || !strings.Contains(fmt.Sprint(e["advisories"]), "CVE-2026-0001") {
		t.Fatalf("event details: %v", e)
	}
	if _, ok := e["Key"]; ok {
		t.Fatalf("the deduplication key leaked into the event: %v", e)
	}

	// The delivery was saved: a new process neither repeats it nor
	// notifies the same event again.
	s2, err := LoadState(a.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s2.Outbox) != 0 {
		t.Fatalf("outbox after delivery: %+v", s2.Outbox)
	}
	a.emit(s2, waitingEvent(w))
	a.emit(s2, Event{Event: EventInstalled, Key: EventInstalled + "|2.0.0", Version: "2.0.0", Message: "installed"})
	if err := a.deliver(context.Background(), s2); err != nil {
		t.Fatal(err)
	}
	got = readEvents(t, events)
	if len(got) != 2 || got[1]["event"] != "installed" {
		t.Fatalf("events after a second process: %v", got)
	}
}

func TestNotifyFailuresAreNotFatal(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct{ body, log string }{
		"exit status": {body: "echo mailer is down >&2; exit 3", log: "mailer is down"},
		"timeout":     {body: "exec sleep 60", log: "no exit within 200ms"},
		"missing":     {body: "", log: "notify hook failed"},
	} {
		t.Run(name, func(t *testing.T) {
			a, s, log, _ := hookAgent(t, now, tc.body)
			a.cfg.NotifyTimeout = units.Duration(200 * time.Millisecond)
			if name == "missing" {
				a.cfg.Notify = []string{filepath.Join(t.TempDir(), "no-such-hook")}
			}
			a.emit(s, Event{Event: EventInstalled, Key: "installed|1.1.0", Version: "1.1.0", Message: "installed"})
			if err := a.deliver(context.Background(), s); err != nil {
				t.Fatalf("deliver: %v", err)
			}
			if len(s.Outbox) != 0 {
				t.Fatalf("a failed event stays queued: %+v", s.Outbox)
			}
			if !strings.Contains(log.String(), "notify hook failed") || !strings.Contains(log.String(), tc.log) {
				t.Fatalf("log lacks the failure %q:\n%s", tc.log, log.String())
			}
		})
	}
}

func TestNotifyWithoutHookQueuesNothing(t *testing.T) {
	a, s, _, _ := hookAgent(t, time.Now(), "")
	a.cfg.Notify = nil
	a.emit(s, Event{Event: EventInstalled, Key: "installed|1.1.0"})
	if len(s.Outbox) != 0 || len(s.Notified) != 0 {
		t.Fatalf("without a hook: outbox %+v, notified %v", s.Outbox, s.Notified)
	}
}

func TestNotifiedIsBounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, s, _, _ := hookAgent(t, now, "")
	fake := a.clock.(*clock.Fake)
	for i := range maxNotified + 5 {
		a.emit(s, Event{Event: EventInstalled, Key: fmt.Sprintf("installed|1.0.%d", i)})
		fake.Advance(time.Second)
	}
	if len(s.Notified) != maxNotified {
		t.Fatalf("%d keys remembered, want %d", len(s.Notified), maxNotified)
	}
	if _, ok := s.Notified["installed|1.0.0"]; ok {
		t.Fatal("the oldest key was kept")
	}
	if _, ok := s.Notified[fmt.Sprintf("installed|1.0.%d", maxNotified+4)]; !ok {
		t.Fatal("the newest key was dropped")
	}
}

func TestWatch(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fresh := now.Add(-time.Hour)
	old := now.Add(-15 * 24 * time.Hour)
	for _, tc := range []struct {
		name        string
		until       string
		lastRefresh *time.Time
		want        []string
	}{
		{name: "far from the end", until: "2027-01-01", lastRefresh: &fresh},
		{name: "just over 90 days before the end", until: "2026-05-30", lastRefresh: &fresh},
		{name: "just under 90 days before the end", until: "2026-05-29", lastRefresh: &fresh, want: []string{EventSupportEnding}},
		{name: "last day", until: "2026-03-01", lastRefresh: &fresh, want: []string{EventSupportEnding}},
		{name: "after the end", until: "2026-02-28", lastRefresh: &fresh, want: []string{EventSupportEnded}},
		{name: "stale metadata", lastRefresh: &old, want: []string{EventMetadataStale}},
		{name: "stale and ended", until: "2020-01-01", lastRefresh: &old, want: []string{EventSupportEnded, EventMetadataStale}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, s, _, _ := hookAgent(t, now, "")
			s.LastRefresh = tc.lastRefresh
			if tc.until != "" {
				s.Support = &release.Support{Product: "thermostat", Until: tc.until, Contact: "support@example.com"}
			}
			a.watch(s, now)
			a.watch(s, now.Add(time.Hour))
			var got []string
			for _, e := range s.Outbox {
				got = append(got, e.Event)
				if e.Version != "1.0.0" || e.Message == "" {
					t.Errorf("event %+v: want the running version and a message", e)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWatchStaleEpisodes: each stretch without fresh metadata is notified
// once; a refresh in between starts a new one.
func TestWatchStaleEpisodes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, s, _, _ := hookAgent(t, now, "")
	first := now.Add(-15 * 24 * time.Hour)
	s.LastRefresh = &first
	a.watch(s, now)
	a.watch(s, now.Add(24*time.Hour))
	second := now.Add(2 * 24 * time.Hour)
	s.LastRefresh = &second
	a.watch(s, second.Add(time.Hour))
	a.watch(s, second.Add(15*24*time.Hour))
	if len(s.Outbox) != 2 || s.Outbox[0].LastRefresh == nil || !s.Outbox[0].LastRefresh.Equal(first) ||
		!s.Outbox[1].LastRefresh.Equal(second) || !strings.Contains(s.Outbox[1].Message, "cut off from updates") {
		t.Fatalf("outbox: %+v", s.Outbox)
	}
}
