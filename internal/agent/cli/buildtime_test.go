package cli

import (
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestBuildTime(t *testing.T) {
	vcs := func(v string) *debug.BuildInfo {
		return &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.time", Value: v}}}
	}
	for _, tc := range []struct {
		name   string
		linked string
		info   *debug.BuildInfo
		want   time.Time
		err    string
	}{
		{"linked wins over vcs.time", "2026-12-07T13:00:00+01:00", vcs("2026-01-01T00:00:00Z"), time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), ""},
		{"linked, no build info", "2026-12-07T13:00:00Z", nil, time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC), ""},
		{"linked garbage", "yesterday", vcs("2026-01-01T00:00:00Z"), time.Time{}, `build time "yesterday" (linked with -X main.buildTime) is not an RFC 3339 time`},
		{"vcs.time", "", vcs("2026-01-01T00:00:00Z"), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"vcs.time garbage", "", vcs("soon"), time.Time{}, ""},
		{"no vcs settings", "", &debug.BuildInfo{}, time.Time{}, ""},
		{"no build info", "", nil, time.Time{}, ""},
	} {
		got, err := buildTime(tc.linked, tc.info)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s: buildTime(%q) = %v, %v; want %v", tc.name, tc.linked, got, err, tc.want)
		}
	}
}

// A mistyped build flag stops check and run with a message naming it,
// rather than dropping the floor silently.
func TestBadLinkedBuildTime(t *testing.T) {
	d := newDevice(t)
	for _, cmd := range []string{"check", "run"} {
		var stdout, stderr strings.Builder
		code := Main(t.Context(), []string{"--config", d.cfg, cmd}, Env{Stdout: &stdout, Stderr: &stderr, Now: d.clock.Now, BuildTime: "2026-13-01"})
		if code != 1 || !strings.Contains(stderr.String(), `build time "2026-13-01" (linked with -X main.buildTime)`) {
			t.Errorf("%s with a bad build time: exit %d, stderr %q", cmd, code, stderr.String())
		}
	}
}
