package units

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as "90s", "6h" or "14d" in JSON (see
// ParseDuration). It is written back as a Go duration string ("336h0m0s").
type Duration time.Duration

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a string as ParseDuration does.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// maxDays bounds the day count ParseDuration accepts (about 100 years), far
// below what a time.Duration can hold.
const maxDays = 36500

// ParseDuration parses a Go duration ("90s", "72h30m") that may start with
// a whole number of days ("7d", "1d12h"), at most 36500 of them. A day is
// 24 hours.
func ParseDuration(s string) (time.Duration, error) {
	days, rest, hasDays := strings.Cut(s, "d")
	if !hasDays {
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want e.g. 90s, 72h or 7d", s)
		}
		return v, nil
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 0 || n > maxDays || strings.HasPrefix(days, "+") {
		return 0, fmt.Errorf("duration %q: want a whole number of days before \"d\" (at most %d), e.g. 7d", s, maxDays)
	}
	v := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("duration %q: %q after the days is not a duration like 12h", s, rest)
		}
		v += r
	}
	return v, nil
}
