package agent

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/units"
)

// MetadataMaxBytes caps the metadata documents the agent downloads, per
// role of either repository; Targets covers the top-level targets role and
// every delegated one. Each is a number of bytes or a string such as
// "64KiB"; zero or absent takes the default (deviceapi.DefaultMax*Bytes).
type MetadataMaxBytes struct {
	Root      units.ByteSize `json:"root,omitempty"`
	Timestamp units.ByteSize `json:"timestamp,omitempty"`
	Snapshot  units.ByteSize `json:"snapshot,omitempty"`
	Targets   units.ByteSize `json:"targets,omitempty"`
}

// minMetadataMaxBytes is the smallest limit accepted: no signed metadata
// document is smaller, so anything below is a typo for a larger unit.
const minMetadataMaxBytes = 1 << 10

// validate fills the defaults and refuses limits below minMetadataMaxBytes.
func (m *MetadataMaxBytes) validate() error {
	for _, f := range []struct {
		name string
		v    *units.ByteSize
		def  units.ByteSize
	}{
		{"root", &m.Root, deviceapi.DefaultMaxRootBytes},
		{"timestamp", &m.Timestamp, deviceapi.DefaultMaxTimestampBytes},
		{"snapshot", &m.Snapshot, deviceapi.DefaultMaxSnapshotBytes},
		{"targets", &m.Targets, deviceapi.DefaultMaxTargetsBytes},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < minMetadataMaxBytes {
			return fmt.Errorf("metadata_max_bytes.%s is %d bytes, below the minimum of %v", f.name, int64(*f.v), units.ByteSize(minMetadataMaxBytes))
		}
	}
	return nil
}

// limitFetcher caps every metadata download of one repository at its
// role's limit before go-tuf sees a byte, so no document longer than the
// limit is ever buffered or parsed: not one a mirror serves in place of a
// signed one (go-tuf bounds those by the length the snapshot or timestamp
// lists, or by its own MaxLength settings), and not one whose signed length
// exceeds the limit (refused without a request). Target files pass through
// unchanged; go-tuf bounds them by their signed length. Each metadata
// request is recorded in log (when not nil), so a failure go-tuf reports
// without naming its file can be told which file it was. Safe for
// concurrent use if next is.
type limitFetcher struct {
	next fetcher.Fetcher
	// metadataDir is the repository's metadata URL with a trailing "/".
	metadataDir string
	max         MetadataMaxBytes
	log         *fetchLog
}

// fetchLog remembers the metadata file requested last, as
// "<role>.json". Safe for concurrent use.
type fetchLog struct {
	mu   sync.Mutex
	file string
}

func (l *fetchLog) set(file string) {
	l.mu.Lock()
	l.file = file
	l.mu.Unlock()
}

// take returns the file requested last and forgets it.
func (l *fetchLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.file
	l.file = ""
	return f
}

var _ fetcher.Fetcher = (*limitFetcher)(nil)

// DownloadFile implements fetcher.Fetcher. A refused document is a
// *metadata.ErrDownloadLengthMismatch naming the file and the limit that
// refused it.
func (f *limitFetcher) DownloadFile(urlPath string, maxLength int64, timeout time.Duration) ([]byte, error) {
	file, ok := strings.CutPrefix(urlPath, f.metadataDir)
	if !ok {
		return f.next.DownloadFile(urlPath, maxLength, timeout)
	}
	role := metadataRole(file)
	if f.log != nil {
		f.log.set(role + ".json")
	}
	limit, setting := int64(f.max.Targets), "metadata_max_bytes.targets"
	switch role {
	case metadata.ROOT:
		limit, setting = int64(f.max.Root), "metadata_max_bytes.root"
	case metadata.TIMESTAMP:
		limit, setting = int64(f.max.Timestamp), "metadata_max_bytes.timestamp"
	case metadata.SNAPSHOT:
		limit, setting = int64(f.max.Snapshot), "metadata_max_bytes.snapshot"
	}
	if maxLength > limit {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf(
			"%s.json is signed with %d bytes, more than %s (%d): not downloaded; raise the setting if the repository really is that large",
			role, maxLength, setting, limit)}
	}
	if maxLength <= 0 {
		maxLength = limit
	}
	data, err := f.next.DownloadFile(urlPath, maxLength, timeout)
	var tooLong *metadata.ErrDownloadLengthMismatch
	if errors.As(err, &tooLong) {
		bound := setting
		if maxLength < limit {
			bound = "the length its signed entry lists"
		}
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf(
			"%s.json is longer than %d bytes (%s): refused before parsing", role, maxLength, bound)}
	}
	return data, err
}

// metadataRole is the role of a metadata file name as go-tuf requests it:
// "timestamp.json", "<version>.<role>.json", the role URL-escaped
// ("3.products%2Fthermostat.json" is "products/thermostat").
func metadataRole(file string) string {
	name := strings.TrimSuffix(file, ".json")
	if v, rest, ok := strings.Cut(name, "."); ok && v != "" && strings.Trim(v, "0123456789") == "" {
		name = rest
	}
	if u, err := url.PathUnescape(name); err == nil {
		name = u
	}
	return name
}
