package compliance

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// short abbreviates a key id or hash for reading; 12 hex digits.
func short(id string) string {
	if len(id) <= 12 {
		return id
	}
	return id[:12] + "…"
}

func shortAll(ids []string) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = short(id)
	}
	return strings.Join(s, ", ")
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// span writes a duration in days and hours, or hours and minutes.
func span(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, (d%time.Hour)/time.Minute)
	default:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
}

// human writes a configured duration the way it is usually set: "6h", "7d".
func human(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// relative says "in 23h00m" or "3d4h ago".
func relative(now, t time.Time) string {
	if t.After(now) {
		return "in " + span(t.Sub(now))
	}
	return span(now.Sub(t)) + " ago"
}

// strongScheme accepts the TUF schemes current best practice recommends.
func strongScheme(typ, scheme string) bool {
	switch {
	case typ == "ed25519" && scheme == "ed25519":
		return true
	case typ == "ecdsa" && scheme == "ecdsa-sha2-nistp256":
		return true
	}
	return false
}

func uniq(s []string) []string {
	m := map[string]bool{}
	for _, e := range s {
		m[e] = true
	}
	return sortedKeys(m)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// yearsMonths writes the whole years and months from a to b.
func yearsMonths(a, b time.Time) string {
	months := (b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())
	if b.Day() < a.Day() {
		months--
	}
	if months < 0 {
		months = 0
	}
	return plural(months/12, "year") + " " + plural(months%12, "month")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
