package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/report"
)

// Floors of the reference time, as State.ClockBehind, status and the
// notify hook name them.
const (
	// FloorBuild is the time the agent binary was built (Options.BuildTime).
	FloorBuild = "build"
	// FloorProvisioned is the time the device was provisioned
	// (State.Provisioned).
	FloorProvisioned = "provisioning"
	// FloorLastCheck is the time of the last successful check
	// (State.LastRefresh).
	FloorLastCheck = "last-check"
)

// timeFloors are times the device knows have passed, whatever its clock
// says now. A zero field is unknown and ignored.
type timeFloors struct {
	Build, Provisioned, LastCheck time.Time
}

// referenceTime returns the time to verify metadata against: the latest of
// clock and the floors. When the clock is behind a floor (a device without
// a real-time clock before NTP reads 1970), it returns the latest floor and
// its name (FloorBuild, FloorProvisioned or FloorLastCheck); otherwise
// clock and "". A clock equal to the latest floor is not behind. Of equal
// floors, the first in that order is named.
//
// Invariant: the result is never earlier than clock or any non-zero
// floor, so metadata that expired before any of these times is refused
// (TUF's protection against freeze and replay attacks) however far back
// the clock reads.
func referenceTime(clock time.Time, f timeFloors) (time.Time, string) {
	ref, name := clock, ""
	for _, fl := range []struct {
		name string
		at   time.Time
	}{{FloorBuild, f.Build}, {FloorProvisioned, f.Provisioned}, {FloorLastCheck, f.LastCheck}} {
		if !fl.at.IsZero() && fl.at.After(ref) {
			ref, name = fl.at, fl.name
		}
	}
	return ref, name
}

// ClockBehind records that the device's clock read earlier than a floor of
// the reference time at the latest check, which verified against the floor
// instead.
type ClockBehind struct {
	// Clock is what the device's clock read.
	Clock time.Time `json:"clock"`
	// Floor is the reference time the check used, and Source which floor
	// it is: FloorBuild, FloorProvisioned or FloorLastCheck.
	Floor  time.Time `json:"floor"`
	Source string    `json:"source"`
	// Since is what the clock read at the first check of this stretch
	// behind the floor.
	Since time.Time `json:"since"`
}

// message says what happened in words for status and the notify hook.
func (c *ClockBehind) message() string {
	return fmt.Sprintf("the device's clock reads %s, earlier than the %s time %s: update information is checked against that time until the clock is set (NTP or a real-time clock)",
		c.Clock.UTC().Format(timeFormat), floorWords(c.Source), c.Floor.UTC().Format(timeFormat))
}

func floorWords(source string) string {
	switch source {
	case FloorBuild:
		return "agent's build"
	case FloorProvisioned:
		return "device's provisioning"
	case FloorLastCheck:
		return "last successful update check's"
	}
	return source
}

// refTime is the reference time of a check (see referenceTime), with the
// agent's build time and the provisioning and last successful check times
// in s as floors. It records in s whether the clock is behind: the first
// check of a stretch behind the floor queues one clock-behind report
// (report.ClassClockBehind, about the running version) and one
// EventClockBehind; a check with the clock ahead again ends the stretch.
// It only changes s; the caller's next save persists it.
func (a *Agent) refTime(ctx context.Context, s *State) time.Time {
	now := a.clock.Now().UTC()
	f := timeFloors{Build: a.buildTime}
	if s.Provisioned != nil {
		f.Provisioned = *s.Provisioned
	}
	if s.LastRefresh != nil {
		f.LastCheck = *s.LastRefresh
	}
	ref, source := referenceTime(now, f)
	if source == "" {
		s.ClockBehind = nil
		return ref
	}
	cb := &ClockBehind{Clock: now, Floor: ref.UTC(), Source: source, Since: now}
	if prev := s.ClockBehind; prev != nil {
		cb.Since = prev.Since
	} else {
		a.enqueue(ctx, a.cfg.Product, s.Version, report.OutcomeFailed, report.ClassClockBehind)
		a.emit(s, Event{Event: EventClockBehind, Version: s.Version, Message: cb.message(),
			Key:   EventClockBehind + "|" + now.Format(time.RFC3339Nano) + "|" + cb.Floor.Format(time.RFC3339Nano),
			Clock: &cb.Clock, Floor: &cb.Floor, FloorSource: source})
	}
	s.ClockBehind = cb
	a.log.Warn("the clock is behind; checking against the floor", "clock", now, "floor", ref, "source", source)
	return ref
}
