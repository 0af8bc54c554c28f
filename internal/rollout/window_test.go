package rollout

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones do not depend on the test machine's copy
)

func mustWindow(t *testing.T, s string) Window {
	t.Helper()
	w, err := ParseWindow(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestParseWindowCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"Mon-Fri 02:00-04:00 Europe/Berlin":    "Mon-Fri 02:00-04:00 Europe/Berlin",
		"mon-FRI   2:00-04:00\tEurope/Berlin":  "Mon-Fri 02:00-04:00 Europe/Berlin",
		"Mon,Wed,Sat-Sun 22:00-02:00 UTC":      "Mon,Wed,Sat-Sun 22:00-02:00 UTC",
		"Fri-Mon 00:30-24:00 UTC":              "Mon,Fri-Sun 00:30-24:00 UTC",
		"Sun,Sat 01:00-01:01 America/New_York": "Sat-Sun 01:00-01:01 America/New_York",
		"daily 00:00-24:00 UTC":                "daily 00:00-24:00 UTC",
		"Mon-Sun 03:00-03:30 Asia/Tokyo":       "daily 03:00-03:30 Asia/Tokyo",
		"Sun-Sat 03:00-03:30 UTC":              "daily 03:00-03:30 UTC",
		"Tue 23:59-00:00 UTC":                  "Tue 23:59-00:00 UTC",
	} {
		w, err := ParseWindow(in)
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", in, err)
			continue
		}
		if got := w.String(); got != want {
			t.Errorf("ParseWindow(%q).String() = %q, want %q", in, got, want)
		}
		if w2, err := ParseWindow(w.String()); err != nil || !w2.Equal(w) {
			t.Errorf("canonical form %q does not parse back: %v", w.String(), err)
		}
	}
}

func TestParseWindowErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "want DAYS FROM-TO ZONE",
		"Mon-Fri 02:00-04:00":               "want DAYS FROM-TO ZONE",
		"Mon-Fri 02:00-04:00 UTC extra":     "want DAYS FROM-TO ZONE",
		"Mon-Fry 02:00-04:00 UTC":           `unknown day "Fry"`,
		"Mon- 02:00-04:00 UTC":              `unknown day ""`,
		"Monday 02:00-04:00 UTC":            `unknown day "Monday"`,
		"Mon,,Tue 02:00-04:00 UTC":          "empty item between commas",
		"Mon-Fri,Wed 02:00-04:00 UTC":       "Wed is listed twice",
		"Mon 02:00 UTC":                     `times "02:00": want FROM-TO`,
		"Mon 2:0-04:00 UTC":                 `time "2:0": want HH:MM`,
		"Mon 02:00-4 UTC":                   `time "4": want HH:MM`,
		"Mon 25:00-04:00 UTC":               `time "25:00" is not a time of day`,
		"Mon 02:60-04:00 UTC":               `time "02:60" is not a time of day`,
		"Mon 02:00-24:01 UTC":               `time "24:01" is not a time of day`,
		"Mon 24:00-02:00 UTC":               "24:00 is only an end",
		"Mon 02:00-02:00 UTC":               "opens and closes at the same time",
		"Mon 02:00-04:00 Mars/Olympus_Mons": `unknown time zone "Mars/Olympus_Mons"`,
		"Mon 02:00-04:00 Local":             `time zone "Local": name the zone`,
		"Mon 02:00-04:00 +01:00":            `unknown time zone "+01:00"`,
	} {
		w, err := ParseWindow(in)
		if err == nil || !strings.HasPrefix(err.Error(), "rollout: window ") || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseWindow(%q) = %v, %v; want an error containing %q", in, w, err, want)
		}
	}
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestWindowContains(t *testing.T) {
	for _, tc := range []struct {
		window string
		at     string // UTC
		want   bool
	}{
		// Berlin in winter is UTC+1. 2026-12-07 is a Monday.
		{"Mon-Fri 02:00-04:00 Europe/Berlin", "2026-12-07 00:59", false},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", "2026-12-07 01:00", true},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", "2026-12-07 02:59", true},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", "2026-12-07 03:00", false},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", "2026-12-12 01:30", false}, // Saturday
		// Summer: UTC+2. 2026-07-06 is a Monday.
		{"Mon-Fri 02:00-04:00 Europe/Berlin", "2026-07-06 00:00", true},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", "2026-07-06 02:00", false},
		// The weekday is the local one: Sunday 23:30 UTC is Monday in Berlin.
		{"Mon 00:00-01:00 Europe/Berlin", "2026-12-06 23:30", true},
		// Crossing midnight: Friday 22:00 to Saturday 02:00.
		{"Fri 22:00-02:00 UTC", "2026-12-11 21:59", false},
		{"Fri 22:00-02:00 UTC", "2026-12-11 22:00", true},
		{"Fri 22:00-02:00 UTC", "2026-12-12 01:59", true},
		{"Fri 22:00-02:00 UTC", "2026-12-12 02:00", false},
		{"Fri 22:00-02:00 UTC", "2026-12-11 01:00", false}, // Friday morning belongs to Thursday
		{"Fri 22:00-02:00 UTC", "2026-12-12 22:30", false},
		{"Mon-Fri 22:00-02:00 UTC", "2026-12-07 01:00", false}, // Monday morning: Sunday not listed
		{"Mon-Fri 22:00-02:00 UTC", "2026-12-12 01:00", true},  // Saturday morning: Friday's window
		{"Sat-Sun 23:00-01:00 UTC", "2026-12-14 00:30", true},  // Monday morning: Sunday's window
		{"daily 00:00-24:00 UTC", "2026-12-09 13:37", true},
		{"Tue 23:59-24:00 UTC", "2026-12-08 23:59", true},
		{"Tue 23:59-24:00 UTC", "2026-12-09 00:00", false},
	} {
		w := mustWindow(t, tc.window)
		if got := w.Contains(utc(tc.at)); got != tc.want {
			t.Errorf("%q.Contains(%s UTC) = %v, want %v", tc.window, tc.at, got, tc.want)
		}
	}
	if (Window{}).Contains(t0) {
		t.Error("the zero window contains a time")
	}
}

// openMinutes counts the minutes of [from, from+d) inside the window.
func openMinutes(w Window, from time.Time, d time.Duration) int {
	n := 0
	for u := from; u.Before(from.Add(d)); u = u.Add(time.Minute) {
		if w.Contains(u) {
			n++
		}
	}
	return n
}

// Days the clock jumps, in Europe/Berlin: forward on 2026-03-29 at 01:00
// UTC (02:00 -> 03:00), back on 2026-10-25 at 01:00 UTC (03:00 -> 02:00).
func TestWindowDST(t *testing.T) {
	spring, autumn := utc("2026-03-28 22:00"), utc("2026-10-24 21:00") // local midnight before each jump
	for _, tc := range []struct {
		window         string
		day            time.Time
		minutes        int
		opens, nextGot string // Next from the local midnight, UTC
	}{
		{"Sun 02:00-04:00 Europe/Berlin", spring, 60, "2026-03-29 01:00", ""},                 // open 03:00-04:00 CEST
		{"Sun 02:15-02:45 Europe/Berlin", spring, 0, "2026-04-05 00:15", ""},                  // wholly skipped: next Sunday
		{"Sun 02:30-05:00 Europe/Berlin", spring, 120, "2026-03-29 01:00", ""},                // opens at the jump
		{"Sun 01:00-03:00 Europe/Berlin", spring, 60, "2026-03-29 00:00", ""},                 // 01:00-02:00 CET only
		{"Sun 02:00-04:00 Europe/Berlin", autumn, 180, "2026-10-25 00:00", ""},                // 02:00 CEST to 04:00 CET
		{"Sun 02:15-02:45 Europe/Berlin", autumn, 60, "2026-10-25 00:15", "2026-10-25 01:15"}, // twice
		{"Sun 02:00-02:45 Europe/Berlin", autumn, 90, "2026-10-25 00:00", "2026-10-25 01:00"}, // again at the jump back
		{"Sun 05:00-06:00 Europe/Berlin", autumn, 60, "2026-10-25 04:00", ""},                 // later the same day: CET
		{"Sun 05:00-06:00 Europe/Berlin", spring, 60, "2026-03-29 03:00", ""},                 // CEST
	} {
		w := mustWindow(t, tc.window)
		if got := openMinutes(w, tc.day, 24*time.Hour); got != tc.minutes {
			t.Errorf("%q is open %d minutes on the day of %s, want %d", tc.window, got, tc.day, tc.minutes)
		}
		next, ok := w.Next(tc.day)
		if !ok || !next.Equal(utc(tc.opens)) {
			t.Errorf("%q.Next(%s) = %s, %v; want %s UTC", tc.window, tc.day, next.UTC(), ok, tc.opens)
			continue
		}
		if tc.nextGot != "" {
			// After the first opening closes, the second.
			after := next
			for w.Contains(after) {
				after = after.Add(time.Minute)
			}
			if again, ok := w.Next(after); !ok || !again.Equal(utc(tc.nextGot)) {
				t.Errorf("%q.Next(%s) = %s, %v; want the second opening %s UTC", tc.window, after.UTC(), again.UTC(), ok, tc.nextGot)
			}
		}
	}
}

func TestWindowNext(t *testing.T) {
	w := mustWindow(t, "Mon-Fri 02:00-04:00 Europe/Berlin")
	for _, tc := range []struct{ from, want string }{
		{"2026-12-07 01:30", "2026-12-07 01:30"}, // inside: now
		{"2026-12-07 00:10", "2026-12-07 01:00"},
		{"2026-12-07 03:00", "2026-12-08 01:00"},
		{"2026-12-11 03:00", "2026-12-14 01:00"}, // Friday after the window: Monday
		{"2026-12-12 12:00", "2026-12-14 01:00"},
	} {
		if got, ok := w.Next(utc(tc.from)); !ok || !got.Equal(utc(tc.want)) {
			t.Errorf("Next(%s) = %s, %v; want %s", tc.from, got.UTC(), ok, tc.want)
		}
	}
	// Seconds inside a minute: the next opening is strictly later.
	if got, _ := w.Next(utc("2026-12-07 03:00").Add(30 * time.Second)); !got.Equal(utc("2026-12-08 01:00")) {
		t.Errorf("Next mid-minute = %s", got)
	}
	if _, ok := (Window{}).Next(t0); ok {
		t.Error("the zero window opens")
	}
}

// Property: Next(t) is inside the window and no minute between t and it
// is, across the year's jumps in zones with one-hour, half-hour and
// southern-hemisphere daylight saving time.
func TestWindowNextProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	windows := []string{
		"Mon-Fri 02:00-04:00 Europe/Berlin", "Sun 02:15-02:45 Europe/Berlin", "Sat-Sun 22:00-02:30 Europe/Berlin",
		"daily 01:30-02:30 America/New_York", "Mon,Wed 23:00-01:00 America/New_York",
		"Sun 01:45-02:15 Australia/Lord_Howe", "Tue-Thu 02:00-03:00 Australia/Sydney", "Fri 00:00-24:00 UTC",
	}
	// Days around the 2026 jumps of these zones, plus ordinary days.
	days := []string{"2026-03-08", "2026-03-29", "2026-04-05", "2026-10-04", "2026-10-25", "2026-11-01", "2026-06-15", "2026-12-24"}
	for i := 0; i < 150; i++ {
		w := mustWindow(t, windows[rng.IntN(len(windows))])
		from := utc(days[rng.IntN(len(days))] + " 00:00").Add(time.Duration(rng.IntN(4*24*60)-2*24*60) * time.Minute).Add(time.Duration(rng.IntN(60)) * time.Second)
		next, ok := w.Next(from)
		if !ok || !w.Contains(next) || next.Before(from) {
			t.Fatalf("%s.Next(%s) = %s, %v: not an opening", w, from, next, ok)
		}
		for u := from.Truncate(time.Minute).Add(time.Minute); u.Before(next); u = u.Add(time.Minute) {
			if w.Contains(u) {
				t.Fatalf("%s.Next(%s) = %s, but it is open at %s", w, from.UTC(), next.UTC(), u.UTC())
			}
		}
	}
}

func TestWindowJSON(t *testing.T) {
	w := mustWindow(t, "Mon-Fri 22:00-02:00 Europe/Berlin")
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"days":"Mon-Fri","from":"22:00","to":"02:00","tz":"Europe/Berlin"}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var back Window
	if err := json.Unmarshal(b, &back); err != nil || !back.Equal(w) {
		t.Fatalf("round trip: %v, %v", back, err)
	}
	if w.Equal(mustWindow(t, "Mon-Fri 22:00-02:00 Europe/London")) || w.Equal(mustWindow(t, "Mon-Fri 22:00-02:01 Europe/Berlin")) ||
		w.Equal(mustWindow(t, "Mon-Sat 22:00-02:00 Europe/Berlin")) || w.Equal(Window{}) || !(Window{}).Equal(Window{}) {
		t.Error("Equal is wrong")
	}
	if _, err := json.Marshal(Window{}); err == nil {
		t.Error("the zero window marshalled")
	}
	for in, want := range map[string]string{
		`[]`: "cannot unmarshal",
		`{"days":"Mon","from":"02:00","to":"02:00","tz":"UTC"}`:      "same time",
		`{"days":"Mon","from":"02:00","to":"03:00","tz":"Nowhere"}`:  `unknown time zone "Nowhere"`,
		`{"days":"Mon","from":"02:00","to":"03:00"}`:                 `time zone ""`,
		`{"days":"","from":"02:00","to":"03:00","tz":"UTC"}`:         "no days",
		`{"days":"Mon","from":"2","to":"03:00","tz":"UTC"}`:          `time "2": want HH:MM`,
		`{"days":"Mon, Tue","from":"02:00","to":"03:00","tz":"UTC"}`: `unknown day " Tue"`,
	} {
		var w Window
		if err := json.Unmarshal([]byte(in), &w); err == nil || !strings.HasPrefix(err.Error(), "rollout: window: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Unmarshal(%s) = %v; want an error containing %q", in, err, want)
		}
	}
}

func TestWindowValidate(t *testing.T) {
	w := mustWindow(t, "Mon 02:00-04:00 Europe/Berlin")
	if err := w.Validate(); err != nil || w.Location().String() != "Europe/Berlin" {
		t.Fatalf("Validate = %v, zone %v", err, w.Location())
	}
	for _, tc := range []struct {
		edit func(*Window)
		want string
	}{
		{func(w *Window) { w.loc = nil }, "no time zone"},
		{func(w *Window) { w.days = [7]bool{} }, "no days"},
		{func(w *Window) { w.from = w.to }, "out of range"},
		{func(w *Window) { w.from = minutesPerDay }, "out of range"},
		{func(w *Window) { w.to = minutesPerDay + 1 }, "out of range"},
		{func(w *Window) { w.to = 0; w.from = 0 }, "out of range"},
	} {
		v := w
		tc.edit(&v)
		if err := v.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v; want %q", v, err, tc.want)
		}
	}
	if s := (Window{}).String(); s != "" {
		t.Errorf("zero window prints %q", s)
	}
}
