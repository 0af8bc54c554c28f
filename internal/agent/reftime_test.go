package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/report"
)

func TestReferenceTime(t *testing.T) {
	epoch := time.Unix(0, 0).UTC()
	build := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	prov := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	all := timeFloors{Build: build, Provisioned: prov, LastCheck: last}
	for _, tc := range []struct {
		name   string
		clock  time.Time
		floors timeFloors
		want   time.Time
		source string
	}{
		{"clock ahead of every floor", now, all, now, ""},
		{"clock equal to the latest floor", last, all, last, ""},
		{"clock behind the build", epoch, timeFloors{Build: build}, build, FloorBuild},
		{"clock behind the provisioning", epoch, timeFloors{Build: build, Provisioned: prov}, prov, FloorProvisioned},
		{"clock behind the last check", epoch, all, last, FloorLastCheck},
		{"clock between floors", prov.Add(time.Hour), all, last, FloorLastCheck},
		{"latest floor wins whatever its place", epoch, timeFloors{Build: last, Provisioned: prov, LastCheck: build}, last, FloorBuild},
		{"equal floors name the first", epoch, timeFloors{Build: prov, Provisioned: prov}, prov, FloorBuild},
		{"no floors", epoch, timeFloors{}, epoch, ""},
		{"zero clock, no floors", time.Time{}, timeFloors{}, time.Time{}, ""},
		{"zero clock behind a floor", time.Time{}, timeFloors{Provisioned: prov}, prov, FloorProvisioned},
		{"zero floors ignored", now, timeFloors{LastCheck: last}, now, ""},
	} {
		got, source := referenceTime(tc.clock, tc.floors)
		if !got.Equal(tc.want) || source != tc.source {
			t.Errorf("%s: referenceTime(%v, %+v) = %v, %q; want %v, %q", tc.name, tc.clock, tc.floors, got, source, tc.want, tc.source)
		}
	}
}

// A stretch behind the floor is reported and notified once, shown in
// status while it lasts, and ends when the clock is ahead again; the next
// stretch is notified again.
func TestRefTimeStretch(t *testing.T) {
	ctx := context.Background()
	epoch := time.Unix(0, 0).UTC()
	a, s, _, _ := hookAgent(t, epoch, "")
	a.cfg.Reports = nil // enabled
	build := time.Now().Add(-24 * time.Hour).UTC()
	a.buildTime = build
	fake := a.clock.(*clock.Fake)

	if ref := a.refTime(ctx, s); !ref.Equal(*s.Provisioned) {
		t.Fatalf("clock 1970, provisioned %v: reference %v", *s.Provisioned, ref)
	}
	cb := s.ClockBehind
	if cb == nil || cb.Source != FloorProvisioned || !cb.Clock.Equal(epoch) || !cb.Floor.Equal(*s.Provisioned) {
		t.Fatalf("clock behind recorded as %+v", cb)
	}
	if len(s.Outbox) != 1 || s.Outbox[0].Event != EventClockBehind || s.Outbox[0].FloorSource != FloorProvisioned ||
		!s.Outbox[0].Floor.Equal(*s.Provisioned) || !strings.Contains(s.Outbox[0].Message, "clock reads 1970-01-01") {
		t.Fatalf("outbox %+v, want one clock-behind event", s.Outbox)
	}
	want := []report.Report{{Product: "thermostat", Version: "1.0.0", Outcome: report.OutcomeFailed, ErrorClass: report.ClassClockBehind}}
	if got := queued(t, a.queue); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("queued reports %+v, want %+v", got, want)
	}
	if err := saveState(a.cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(ctx, a.cfg, nil, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if st.ClockBehind == nil || !hasWarning(st.Warnings, "earlier than the device's provisioning time") {
		t.Fatalf("status %+v: no clock-behind warning", st.Warnings)
	}

	// The next check of the same stretch: once only.
	last := s.Provisioned.Add(time.Hour)
	s.LastRefresh = &last
	fake.Advance(time.Minute)
	if ref := a.refTime(ctx, s); !ref.Equal(last) || s.ClockBehind.Source != FloorLastCheck || !s.ClockBehind.Since.Equal(epoch) {
		t.Fatalf("second check: reference %v, %+v", ref, s.ClockBehind)
	}
	if len(s.Outbox) != 1 || len(queued(t, a.queue)) != 1 {
		t.Fatalf("second check of the stretch notified or reported again: %+v", s.Outbox)
	}

	// The clock is set: the stretch ends, the reference is the clock.
	ahead := last.Add(time.Hour)
	fake.Set(ahead)
	if ref := a.refTime(ctx, s); !ref.Equal(ahead) || s.ClockBehind != nil {
		t.Fatalf("clock ahead: reference %v, clock behind %+v", ref, s.ClockBehind)
	}

	// Behind again (power cut, no RTC), now behind the build time too: a
	// new stretch, notified again.
	s.LastRefresh, s.Provisioned = nil, nil
	fake.Set(epoch.Add(time.Second))
	if ref := a.refTime(ctx, s); !ref.Equal(build) || s.ClockBehind.Source != FloorBuild {
		t.Fatalf("behind the build: reference %v, %+v", ref, s.ClockBehind)
	}
	if len(s.Outbox) != 2 || s.Outbox[1].Event != EventClockBehind || !strings.Contains(s.Outbox[1].Message, "agent's build time") {
		t.Fatalf("new stretch: outbox %+v", s.Outbox)
	}
}

func hasWarning(warnings []string, sub string) bool {
	for _, w := range warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
