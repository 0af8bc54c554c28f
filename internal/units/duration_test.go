package units

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"72h": 72 * time.Hour, "90s": 90 * time.Second, "7d": 7 * day, "0d": 0, "1d12h": day + 12*time.Hour, "14d": 14 * day,
		"36500d": 36500 * day, "0": 0, "-5m": -5 * time.Minute,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7x", "-1d", "+1d", "1.5d", "7d-1h", "7dd", "36501d", "soon", "7 d", "99999999999999999999d", "3000000h"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		} else if !strings.Contains(err.Error(), "duration") {
			t.Errorf("ParseDuration(%q): error %q does not say what it read", in, err)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`"90s"`: 90 * time.Second, `"14d"`: 14 * 24 * time.Hour, `"1d12h"`: 36 * time.Hour,
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("unmarshal %s = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	// Written as Go writes durations, as agent.json and uptrust.json always
	// were: days are not written back.
	for d, want := range map[Duration]string{
		Duration(14 * 24 * time.Hour): `"336h0m0s"`,
		Duration(90 * time.Second):    `"1m30s"`,
		0:                             `"0s"`,
	} {
		if got, err := json.Marshal(d); err != nil || string(got) != want {
			t.Errorf("marshal %v = %s, %v; want %s", time.Duration(d), got, err, want)
		}
	}
	for _, in := range []string{`90`, `"90"`, `"-1d"`, `null`, `{}`, `"36501d"`} {
		d := Duration(time.Hour)
		if err := json.Unmarshal([]byte(in), &d); err == nil && in != `null` {
			t.Errorf("unmarshal %s succeeded: %v", in, time.Duration(d))
		}
	}
}
