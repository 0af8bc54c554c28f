// Package deviceapi names what a device reads and writes on an uptrust
// server: the two TUF repositories, the URL paths under which their
// metadata and targets are served, and the path reports are posted to.
//
// These are a protocol with devices in the field, which keep speaking it
// for years: a name or path here never changes meaning. A mirror serves
// the same tree as static files. The package imports only the standard
// library and does no I/O, so the agent and the server import it without
// linking each other's code.
package deviceapi

import (
	"fmt"
	"strings"
)

// Repository names. Both repositories must list a release's target with
// the same length and hashes before a device installs it (TAP 4).
const (
	// RepoRelease is the release repository: what was published, with the
	// release manifests, signed offline.
	RepoRelease = "release"
	// RepoFleet is the fleet repository: what devices are offered now,
	// with the rollout rules.
	RepoFleet = "fleet"
)

// RepoPrefix is the URL path under which the repositories are served.
const RepoPrefix = "/repo/"

// Base URL paths of the two repositories (RepoBase of each name).
const (
	ReleaseBase = RepoPrefix + RepoRelease
	FleetBase   = RepoPrefix + RepoFleet
)

// ReportsPath is where a device POSTs an anonymous report (report.Report,
// as JSON).
const ReportsPath = "/api/device/v1/reports"

// DevicePrefix is the prefix of the device API: reports, and the
// enrolment and state routes of managed mode.
const DevicePrefix = "/api/device/v1/"

// RepoBase is the base URL path of repository name, e.g. "/repo/release".
func RepoBase(name string) string { return RepoPrefix + name }

// MetadataDir is the directory of a repository's metadata under its base
// (a URL path or a full URL), e.g. "/repo/release/metadata".
func MetadataDir(base string) string { return base + "/metadata" }

// TargetsDir is the directory of a repository's targets under its base (a
// URL path or a full URL), e.g. "/repo/release/targets".
func TargetsDir(base string) string { return base + "/targets" }

// timestampRole is the TUF timestamp role's name (metadata.TIMESTAMP in
// go-tuf), the one document served without a version.
const timestampRole = "timestamp"

// MetadataPath is the URL path of a metadata document under the repository
// base. Timestamps are unversioned; every other role is
// "<version>.<role>.json" (consistent snapshots). Delegated role names keep
// their "/"; clients that escape it as %2F get the same file after URL
// decoding.
func MetadataPath(base, role string, version int64) string {
	if role == timestampRole {
		return MetadataDir(base) + "/timestamp.json"
	}
	return fmt.Sprintf("%s/%d.%s.json", MetadataDir(base), version, role)
}

// TargetPath is the URL path of a target file under the repository base:
// consistent snapshots prefix the file name with its SHA-256 in lower-case
// hex ("thermostat/1.1.0" -> "<base>/targets/thermostat/<sha256>.1.1.0").
func TargetPath(base, target, sha256hex string) string {
	dir, file := "", target
	if i := strings.LastIndexByte(target, '/'); i >= 0 {
		dir, file = target[:i+1], target[i+1:]
	}
	return TargetsDir(base) + "/" + dir + sha256hex + "." + file
}

// Default limits on the metadata documents a device downloads, per role of
// either repository; DefaultMaxTargetsBytes covers the top-level targets
// role and every delegated one. Devices may be configured otherwise.
//
// They are sized from the documents uptrust signs for a large project, 50
// products of 100 releases with three deltas each (measured: root 2.5 KB,
// timestamp 0.5 KB, snapshot 7.7 KB, top-level targets 18 KB in the
// release and 33 KB in the fleet repository, one product role 209 KB):
// every document of such a project stays below half its limit, which a
// test of package repo checks. Parsing JSON costs up to about 128 times
// the document's size in allocations, so these limits are what keep a
// document nobody signed from exhausting a small device's memory.
const (
	DefaultMaxRootBytes      = 64 << 10
	DefaultMaxTimestampBytes = 16 << 10
	DefaultMaxSnapshotBytes  = 256 << 10
	DefaultMaxTargetsBytes   = 1 << 20
)
