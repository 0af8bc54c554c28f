package cmdline

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Version is what a binary knows of its build. JSON field names are stable.
type Version struct {
	// Version is the release, linked with -X main.version=1.2.3; else the
	// module version the Go toolchain stamped; else "devel".
	Version string `json:"version"`
	// Commit is the VCS revision the toolchain stamped (vcs.revision).
	Commit string `json:"commit"`
	// BuildTime is RFC 3339: linked with -X main.buildTime=..., else the
	// commit time the toolchain stamped (vcs.time).
	BuildTime string `json:"build_time"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Modified is true when the work tree had uncommitted changes.
	Modified bool `json:"modified"`
}

// ReadVersion combines the values linked into main (empty when not set)
// with the build information the Go toolchain stamps into every binary.
func ReadVersion(linkedVersion, linkedBuildTime string) Version {
	info, _ := debug.ReadBuildInfo()
	return versionOf(linkedVersion, linkedBuildTime, info)
}

func versionOf(linkedVersion, linkedBuildTime string, info *debug.BuildInfo) Version {
	v := Version{Version: linkedVersion, BuildTime: linkedBuildTime, GoVersion: runtime.Version()}
	if info != nil {
		v.GoVersion = info.GoVersion
		if v.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				if v.BuildTime == "" {
					v.BuildTime = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

// write prints v as text or JSON.
func (v Version) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	or := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	commit := or(v.Commit)
	if v.Modified {
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(w, "version:    %s\ncommit:     %s\nbuild time: %s\ngo version: %s\n", v.Version, commit, or(v.BuildTime), v.GoVersion)
	return err
}
