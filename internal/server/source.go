package server

import (
	"context"
	"time"

	"github.com/uptrust/uptrust/internal/report"
)

// Content is everything under /repo/ at one moment: metadata documents held
// in memory and payloads stored as files. It is immutable once handed to the
// server.
type Content struct {
	// Metadata maps a URL path such as "/repo/release/metadata/3.targets.json"
	// or "/repo/fleet/metadata/timestamp.json" to the document's bytes.
	Metadata map[string][]byte
	// Payloads maps a URL path such as
	// "/repo/release/targets/thermostat/<sha256>.1.1.0" to a payload.
	Payloads map[string]PayloadFile
	// Releases maps each product of the release repository to its release
	// versions. A report is counted only when it names one of them, or a
	// listed product and report.VersionUnknown; nil lists none.
	Releases map[string][]string
}

// PayloadFile is a payload stored on disk.
type PayloadFile struct {
	// Path is the file's location in the blob store.
	Path string
	// Size is the length in bytes.
	Size int64
	// SHA256 is the lower-case hex digest; it is the payload's ETag.
	SHA256 string
}

// Source produces the served content. Generation is cheap and changes
// whenever Content would return something different.
type Source interface {
	Generation(ctx context.Context) (int64, error)
	Content(ctx context.Context) (*Content, error)
}

// ReportSink stores report counters. AddReport is given only reports that
// passed report.Validate and name a release of Content.Releases; it returns
// an error wrapping ErrReportsFull when the day's counters are at their
// cap and r would need a new one.
type ReportSink interface {
	AddReport(ctx context.Context, r report.Report, at time.Time) error
}

// Resigner re-signs online metadata (timestamps) that is close to expiry. It
// returns true when it changed something, so the server reloads.
type Resigner interface {
	ResignDue(ctx context.Context) (bool, error)
}
