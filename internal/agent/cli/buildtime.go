package cli

import (
	"fmt"
	"runtime/debug"
	"time"
)

// buildTime returns when the agent binary was built, the floor below which
// the agent never verifies metadata (agent.Options.BuildTime): linked, an
// RFC 3339 time set with -ldflags "-X main.buildTime=...", when not empty;
// else the commit time `go build` stamps into a binary built from a git
// checkout (vcs.time); else the zero time (unknown). A linked value that
// does not parse is an error: a mistyped build flag must not silently drop
// the floor.
func buildTime(linked string, info *debug.BuildInfo) (time.Time, error) {
	if linked != "" {
		t, err := time.Parse(time.RFC3339, linked)
		if err != nil {
			return time.Time{}, fmt.Errorf("build time %q (linked with -X main.buildTime) is not an RFC 3339 time such as 2026-12-07T13:00:00Z", linked)
		}
		return t.UTC(), nil
	}
	if info == nil {
		return time.Time{}, nil
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.time" {
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				return t.UTC(), nil
			}
		}
	}
	return time.Time{}, nil
}

// binaryBuildTime is buildTime of this binary.
func binaryBuildTime(linked string) (time.Time, error) {
	info, _ := debug.ReadBuildInfo()
	return buildTime(linked, info)
}
