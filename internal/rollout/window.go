package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a weekly maintenance window such as "Mon-Fri 02:00-04:00
// Europe/Berlin": devices may download at any time but install only while
// the window is open. Build one with ParseWindow or from JSON; the zero
// value is not valid. A Window is immutable and safe for concurrent use.
//
// Semantics — the window is wall-clock time in its zone:
//
//   - An instant is inside when its local time in the zone, read to the
//     minute, lies in [from, to) on one of the listed days.
//   - The day is the day the window opens: "Fri 22:00-02:00" crosses
//     midnight and is open from Friday 22:00 to Saturday 02:00; "Mon-Fri
//     22:00-02:00" is open on Saturday until 02:00 but not on Monday before
//     02:00.
//   - "00:00-24:00" is the whole day; from equal to to is refused, being
//     either empty or whole.
//
// Days the clock jumps (daylight saving time), by the same rule:
//
//   - Clock moved forward (Europe/Berlin, last Sunday of March, 02:00 ->
//     03:00): the skipped local times never occur, so a window covering
//     them is shorter that day — "02:00-04:00" is open from 03:00 to 04:00
//     (one hour), and a window lying wholly inside the skipped hour, such as
//     "02:15-02:45", does not open that day at all. A window that starts in
//     the skipped hour opens at the jump.
//   - Clock moved back (last Sunday of October, 03:00 -> 02:00): the
//     repeated local times occur twice, so a window covering them is
//     longer — "02:00-04:00" is open three hours — and "02:15-02:45" opens
//     twice.
//
// Operators who need a window every day of the year pick one outside the
// zone's jump hour (in Europe, outside 02:00-03:00).
type Window struct {
	days     [7]bool // by time.Weekday
	from, to int     // minutes after local midnight; to < from crosses midnight; to may be 1440
	loc      *time.Location
}

const minutesPerDay = 24 * 60

// ParseWindow parses "DAYS FROM-TO ZONE": DAYS is "daily" or a comma list
// of days and day ranges ("Mon-Fri", "Mon,Wed,Sat-Sun", "Fri-Mon" wraps
// round the week), FROM and TO are HH:MM (TO may be 24:00; TO before FROM
// crosses midnight), ZONE is an IANA time zone name such as Europe/Berlin
// or UTC. The error names the bad part.
func ParseWindow(s string) (Window, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Window{}, fmt.Errorf("rollout: window %q: want DAYS FROM-TO ZONE, e.g. \"Mon-Fri 02:00-04:00 Europe/Berlin\"", s)
	}
	var w Window
	var err error
	if w.days, err = parseDays(f[0]); err != nil {
		return Window{}, fmt.Errorf("rollout: window %q: %w", s, err)
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return Window{}, fmt.Errorf("rollout: window %q: times %q: want FROM-TO such as 02:00-04:00", s, f[1])
	}
	if w.from, w.to, err = parseTimes(from, to); err != nil {
		return Window{}, fmt.Errorf("rollout: window %q: %w", s, err)
	}
	if w.loc, err = loadZone(f[2]); err != nil {
		return Window{}, fmt.Errorf("rollout: window %q: %w", s, err)
	}
	return w, nil
}

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func parseDay(s string) (time.Weekday, error) {
	for d, name := range dayNames {
		if strings.EqualFold(s, name) {
			return time.Weekday(d), nil
		}
	}
	return 0, fmt.Errorf("unknown day %q (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)", s)
}

func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	if s == "" {
		return days, errors.New("no days (write e.g. Mon-Fri, Mon,Wed,Sat-Sun or daily)")
	}
	if strings.EqualFold(s, "daily") {
		for d := range days {
			days[d] = true
		}
		return days, nil
	}
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return days, fmt.Errorf("days %q: empty item between commas", s)
		}
		a, b, isRange := strings.Cut(item, "-")
		first, err := parseDay(a)
		if err != nil {
			return days, fmt.Errorf("days %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = parseDay(b); err != nil {
				return days, fmt.Errorf("days %q: %w", s, err)
			}
		}
		for d := first; ; d = (d + 1) % 7 {
			if days[d] {
				return days, fmt.Errorf("days %q: %s is listed twice", s, dayNames[d])
			}
			days[d] = true
			if d == last {
				break
			}
		}
	}
	return days, nil
}

// parseClock parses HH:MM into minutes after midnight; 24:00 only when
// end is set.
func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !allDigits(h) || !allDigits(m) {
		return 0, fmt.Errorf("time %q: want HH:MM such as 02:00", s)
	}
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	switch {
	case hh == 24 && mm == 0 && end:
		return minutesPerDay, nil
	case hh == 24 && mm == 0:
		return 0, fmt.Errorf("time %q: a window starts at 23:59 at the latest (24:00 is only an end)", s)
	case hh > 23 || mm > 59:
		return 0, fmt.Errorf("time %q is not a time of day", s)
	}
	return hh*60 + mm, nil
}

func parseTimes(from, to string) (int, int, error) {
	f, err := parseClock(from, false)
	if err != nil {
		return 0, 0, err
	}
	t, err := parseClock(to, true)
	if err != nil {
		return 0, 0, err
	}
	if f == t {
		return 0, 0, fmt.Errorf("times %s-%s: the window opens and closes at the same time; for a whole day write 00:00-24:00", from, to)
	}
	return f, t, nil
}

func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q: name the zone, e.g. Europe/Berlin or UTC", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (use an IANA name such as Europe/Berlin or UTC)", name)
	}
	return loc, nil
}

// Validate checks a window built other than by ParseWindow (the zero value
// fails).
func (w Window) Validate() error {
	if w.loc == nil {
		return errors.New("rollout: window: no time zone")
	}
	if w.days == [7]bool{} {
		return errors.New("rollout: window: no days")
	}
	if w.from < 0 || w.from >= minutesPerDay || w.to <= 0 || w.to > minutesPerDay || w.from == w.to {
		return fmt.Errorf("rollout: window: times %d-%d minutes out of range", w.from, w.to)
	}
	return nil
}

// Equal reports whether two windows are the same: same days, times and
// zone name. Use it rather than ==, which compares the zones' pointers.
func (w Window) Equal(v Window) bool {
	if w.loc == nil || v.loc == nil {
		return w.loc == v.loc && w.days == v.days && w.from == v.from && w.to == v.to
	}
	return w.days == v.days && w.from == v.from && w.to == v.to && w.loc.String() == v.loc.String()
}

// Location is the window's time zone.
func (w Window) Location() *time.Location { return w.loc }

// Contains reports whether t is inside the window (see Window for the rule
// and what it does on days the clock jumps).
func (w Window) Contains(t time.Time) bool {
	if w.loc == nil {
		return false
	}
	l := t.In(w.loc)
	m := l.Hour()*60 + l.Minute()
	d := l.Weekday()
	if w.from < w.to {
		return w.days[d] && m >= w.from && m < w.to
	}
	// Crosses midnight: the evening part belongs to today, the morning part
	// to the day before.
	return (w.days[d] && m >= w.from) || (w.days[(d+6)%7] && m < w.to)
}

// nextHorizon bounds Next's search: a window listed on one weekday whose
// opening that day falls into a skipped hour opens a week later.
const nextHorizon = 16 // days

// Next returns the earliest instant at or after t at which the window is
// open: t itself when Contains(t). The bool is false only for a window
// that does not open within 16 days (a zero Window; no valid window in a
// real time zone).
func (w Window) Next(t time.Time) (time.Time, bool) {
	if w.loc == nil {
		return time.Time{}, false
	}
	if w.Contains(t) {
		return t, true
	}
	// The window can only become open where the local clock reaches FROM
	// on a listed day, or where the clock jumps (into the window).
	l := t.In(w.loc)
	y, mo, d := l.Date()
	var best time.Time
	consider := func(c time.Time) {
		if c.After(t) && w.Contains(c) && (best.IsZero() || c.Before(best)) {
			best = c
		}
	}
	for i := -1; i <= nextHorizon; i++ {
		day := time.Date(y, mo, d+i, 12, 0, 0, 0, time.UTC)
		if !w.days[day.Weekday()] {
			continue
		}
		for _, c := range wallInstants(day.Year(), day.Month(), day.Day(), w.from, w.loc) {
			consider(c)
		}
	}
	limit := t.AddDate(0, 0, nextHorizon+1)
	for u := t; u.Before(limit); {
		_, end := u.In(w.loc).ZoneBounds()
		if end.IsZero() || !end.After(u) {
			break
		}
		consider(end)
		u = end
	}
	return best, !best.IsZero()
}

// wallInstants returns every instant whose local time in loc reads the
// given date and minute after midnight: none (skipped by a jump forward),
// one, or two (repeated by a jump back).
func wallInstants(y int, mo time.Month, d, minute int, loc *time.Location) []time.Time {
	wall := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Add(time.Duration(minute) * time.Minute)
	var out []time.Time
	seen := map[int]bool{}
	for _, probe := range []time.Time{wall.Add(-26 * time.Hour), wall, wall.Add(26 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		u := wall.Add(-time.Duration(off) * time.Second)
		l := u.In(loc)
		if ly, lm, ld := l.Date(); ly == y && lm == mo && ld == d && l.Hour()*60+l.Minute() == minute {
			out = append(out, u)
		}
	}
	return out
}

// String returns the canonical form ParseWindow reads back:
// "Mon-Fri 02:00-04:00 Europe/Berlin".
func (w Window) String() string {
	if w.loc == nil {
		return ""
	}
	return w.daysString() + " " + clockString(w.from) + "-" + clockString(w.to) + " " + w.loc.String()
}

func clockString(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// daysString writes the days Monday first, runs of two or more as ranges:
// "Mon-Fri", "Mon,Wed,Sat-Sun", "daily" for all seven.
func (w Window) daysString() string {
	if w.days == [7]bool{true, true, true, true, true, true, true} {
		return "daily"
	}
	order := [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}
	var parts []string
	for i := 0; i < 7; {
		if !w.days[order[i]] {
			i++
			continue
		}
		j := i
		for j+1 < 7 && w.days[order[j+1]] {
			j++
		}
		if j > i {
			parts = append(parts, dayNames[order[i]]+"-"+dayNames[order[j]])
		} else {
			parts = append(parts, dayNames[order[i]])
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// windowJSON is the compact form of a Window in the signed per-device view
// and in a persisted Plan: {"days":"Mon-Fri","from":"02:00","to":"04:00",
// "tz":"Europe/Berlin"}. Devices in the field parse it: its keys never
// change.
type windowJSON struct {
	Days string `json:"days"`
	From string `json:"from"`
	To   string `json:"to"`
	TZ   string `json:"tz"`
}

// MarshalJSON writes the compact form (see windowJSON).
func (w Window) MarshalJSON() ([]byte, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(windowJSON{Days: w.daysString(), From: clockString(w.from), To: clockString(w.to), TZ: w.loc.String()})
}

// UnmarshalJSON reads the compact form, with ParseWindow's checks.
func (w *Window) UnmarshalJSON(b []byte) error {
	var j windowJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("rollout: window: %w", err)
	}
	days, err := parseDays(j.Days)
	if err != nil {
		return fmt.Errorf("rollout: window: %w", err)
	}
	from, to, err := parseTimes(j.From, j.To)
	if err != nil {
		return fmt.Errorf("rollout: window: %w", err)
	}
	loc, err := loadZone(j.TZ)
	if err != nil {
		return fmt.Errorf("rollout: window: %w", err)
	}
	*w = Window{days: days, from: from, to: to, loc: loc}
	return nil
}
