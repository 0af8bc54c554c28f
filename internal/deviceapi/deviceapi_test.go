package deviceapi

import (
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The paths are what devices in the field request.
func TestPaths(t *testing.T) {
	for got, want := range map[string]string{
		ReleaseBase:              "/repo/release",
		FleetBase:                "/repo/fleet",
		RepoBase(RepoFleet):      "/repo/fleet",
		ReportsPath:              "/api/device/v1/reports",
		MetadataDir(ReleaseBase): "/repo/release/metadata",
		TargetsDir("https://u.example/repo/fleet"): "https://u.example/repo/fleet/targets",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestMetadataPath(t *testing.T) {
	if timestampRole != metadata.TIMESTAMP {
		t.Fatalf("timestampRole = %q, go-tuf names it %q", timestampRole, metadata.TIMESTAMP)
	}
	for _, tc := range []struct {
		role    string
		version int64
		want    string
	}{
		{"timestamp", 7, "/repo/release/metadata/timestamp.json"},
		{"root", 1, "/repo/release/metadata/1.root.json"},
		{"snapshot", 12, "/repo/release/metadata/12.snapshot.json"},
		{"targets", 3, "/repo/release/metadata/3.targets.json"},
		{"products/thermostat", 2, "/repo/release/metadata/2.products/thermostat.json"},
	} {
		if got := MetadataPath(ReleaseBase, tc.role, tc.version); got != tc.want {
			t.Errorf("MetadataPath(%q, %d) = %q, want %q", tc.role, tc.version, got, tc.want)
		}
	}
}

func TestTargetPath(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"thermostat/1.1.0", "/repo/fleet/targets/thermostat/abc.1.1.0"},
		{"thermostat/support.json", "/repo/fleet/targets/thermostat/abc.support.json"},
		{"thermostat/1.1.0.delta-1.0.0", "/repo/fleet/targets/thermostat/abc.1.1.0.delta-1.0.0"},
		{"a/b/c.bin", "/repo/fleet/targets/a/b/abc.c.bin"},
		{"top.bin", "/repo/fleet/targets/abc.top.bin"},
	} {
		if got := TargetPath(FleetBase, tc.target, "abc"); got != tc.want {
			t.Errorf("TargetPath(%q) = %q, want %q", tc.target, got, tc.want)
		}
	}
}
