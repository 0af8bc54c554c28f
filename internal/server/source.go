package server

import (
	"context"
	"io"
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
	// Store, when set, holds the payloads whose PayloadFile has no Path
	// (an object store); nil when every payload is a local file.
	Store PayloadStore
	// Releases maps each product of the release repository to its release
	// versions. A report is counted only when it names one of them, or a
	// listed product and report.VersionUnknown; nil lists none.
	Releases map[string][]string
}

// PayloadFile is a payload, stored on disk or in Content.Store.
type PayloadFile struct {
	// Path is the file's location in the blob directory; empty when the
	// payload is in Content.Store.
	Path string
	// Size is the length in bytes.
	Size int64
	// SHA256 is the lower-case hex digest; it is the payload's ETag.
	SHA256 string
}

// PayloadStore opens payloads kept outside the filesystem, by SHA-256.
// An error wrapping os.ErrNotExist means the payload is missing (500);
// any other error means the store is unavailable, and the request gets 503
// while metadata keeps being served from memory.
type PayloadStore interface {
	OpenPayload(ctx context.Context, sha256 string) (Payload, error)
}

// Payload is an open payload of a known size; Seek serves Range requests.
type Payload interface {
	io.ReadSeekCloser
	Size() int64
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
