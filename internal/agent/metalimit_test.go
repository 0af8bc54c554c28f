package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/units"
)

// fakeFetcher records what it was asked and serves body, failing like the
// agent's TUF fetcher when body is longer than maxLength.
type fakeFetcher struct {
	body    []byte
	asked   int64
	fetched int
}

func (f *fakeFetcher) DownloadFile(_ string, maxLength int64, _ time.Duration) ([]byte, error) {
	f.fetched++
	f.asked = maxLength
	if int64(len(f.body)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: "longer than the maximum"}
	}
	return f.body, nil
}

func TestMetadataRole(t *testing.T) {
	for file, want := range map[string]string{
		"timestamp.json":               "timestamp",
		"3.root.json":                  "root",
		"12.snapshot.json":             "snapshot",
		"7.targets.json":               "targets",
		"3.products%2Fthermostat.json": "products/thermostat",
		"3.products/thermostat.json":   "products/thermostat",
	} {
		if got := metadataRole(file); got != want {
			t.Errorf("metadataRole(%q) = %q, want %q", file, got, want)
		}
	}
}

// TestLimitFetcher: every metadata role is bounded by its own limit or by
// its smaller signed length, a signed length above the limit is refused
// without a request, and target files pass through.
func TestLimitFetcher(t *testing.T) {
	const dir = "https://u.example/repo/release/metadata/"
	max := MetadataMaxBytes{Root: 2000, Timestamp: 1000, Snapshot: 3000, Targets: 4000}
	for _, tc := range []struct {
		file      string
		signed    int64 // the maxLength go-tuf passes
		body      int
		wantAsked int64
		wantErr   string // part of the error, "" for success
	}{
		{"timestamp.json", 16384, 500, 0, "more than metadata_max_bytes.timestamp (1000): not downloaded"},
		{"timestamp.json", 1000, 1001, 1000, "timestamp.json is longer than 1000 bytes (metadata_max_bytes.timestamp)"},
		{"timestamp.json", 1000, 1000, 1000, ""},
		{"2.root.json", 2000, 2001, 2000, "(metadata_max_bytes.root)"},
		{"4.snapshot.json", 0, 3001, 3000, "(metadata_max_bytes.snapshot)"},
		{"4.snapshot.json", 700, 701, 700, "snapshot.json is longer than 700 bytes (the length its signed entry lists)"},
		{"5.targets.json", 4000, 5 << 20, 4000, "targets.json is longer than 4000 bytes (metadata_max_bytes.targets)"},
		{"5.products%2Fthermostat.json", 300, 5 << 20, 300, "products/thermostat.json is longer than 300 bytes (the length its signed entry lists)"},
		{"5.products%2Fthermostat.json", 4001, 10, 0, "products/thermostat.json is signed with 4001 bytes, more than metadata_max_bytes.targets (4000)"},
		{"5.products%2Fthermostat.json", 300, 300, 300, ""},
	} {
		next := &fakeFetcher{body: make([]byte, tc.body)}
		f := &limitFetcher{next: next, metadataDir: dir, max: max}
		data, err := f.DownloadFile(dir+tc.file, tc.signed, 0)
		if tc.wantErr == "" {
			if err != nil || len(data) != tc.body {
				t.Errorf("%s (signed %d, %d bytes): %d bytes, %v; want the document", tc.file, tc.signed, tc.body, len(data), err)
			}
		} else {
			var tooLong *metadata.ErrDownloadLengthMismatch
			if !errors.As(err, &tooLong) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s (signed %d, %d bytes): %v; want an ErrDownloadLengthMismatch saying %q", tc.file, tc.signed, tc.body, err, tc.wantErr)
			}
			if c := classify(&tufError{repo: deviceapi.RepoRelease, err: err}); c != report.ClassMetadataTooLong {
				t.Errorf("%s: class %s, want %s", tc.file, c, report.ClassMetadataTooLong)
			}
		}
		if tc.wantAsked == 0 && next.fetched != 0 {
			t.Errorf("%s (signed %d): fetched although the signed length is above the limit", tc.file, tc.signed)
		}
		if tc.wantAsked != 0 && next.asked != tc.wantAsked {
			t.Errorf("%s (signed %d): fetched with a maximum of %d, want %d", tc.file, tc.signed, next.asked, tc.wantAsked)
		}
	}
	// A target file is bounded by its signed length alone.
	next := &fakeFetcher{body: make([]byte, 9000)}
	f := &limitFetcher{next: next, metadataDir: dir, max: max}
	if _, err := f.DownloadFile("https://u.example/repo/release/targets/thermostat/ab.support.json", 9000, 0); err != nil || next.asked != 9000 {
		t.Errorf("target file: asked %d, %v; want it passed through with its signed length", next.asked, err)
	}
}

func TestConfigMetadataMaxBytes(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, baseConfig()))
	if err != nil {
		t.Fatal(err)
	}
	want := MetadataMaxBytes{Root: deviceapi.DefaultMaxRootBytes, Timestamp: deviceapi.DefaultMaxTimestampBytes,
		Snapshot: deviceapi.DefaultMaxSnapshotBytes, Targets: deviceapi.DefaultMaxTargetsBytes}
	if c.MetadataMaxBytes != want {
		t.Errorf("defaults %+v, want %+v", c.MetadataMaxBytes, want)
	}
	c, err = LoadConfig(writeConfig(t, with(baseConfig(), "metadata_max_bytes", map[string]any{"targets": "4MiB", "root": 131072})))
	if err != nil {
		t.Fatal(err)
	}
	want.Targets, want.Root = 4<<20, 128<<10
	if c.MetadataMaxBytes != want {
		t.Errorf("configured %+v, want %+v", c.MetadataMaxBytes, want)
	}
	_, err = LoadConfig(writeConfig(t, with(baseConfig(), "metadata_max_bytes", map[string]any{"snapshot": 16})))
	if err == nil || !strings.Contains(err.Error(), "metadata_max_bytes.snapshot is 16 bytes, below the minimum of 1KiB") {
		t.Errorf("16-byte snapshot limit: %v; want it refused, naming the setting", err)
	}
	_, err = LoadConfig(writeConfig(t, with(baseConfig(), "metadata_max_bytes", map[string]any{"targets": "lots"})))
	if err == nil || !strings.Contains(err.Error(), "lots") {
		t.Errorf("unparsable limit: %v; want it refused", err)
	}
	defaults := MetadataMaxBytes{Root: deviceapi.DefaultMaxRootBytes, Timestamp: deviceapi.DefaultMaxTimestampBytes,
		Snapshot: deviceapi.DefaultMaxSnapshotBytes, Targets: deviceapi.DefaultMaxTargetsBytes}
	for _, c := range []*Config{{}, {MetadataMaxBytes: MetadataMaxBytes{Snapshot: 16}}} {
		if got := c.metadataMax(); got != defaults {
			t.Errorf("unvalidated config with %+v: limits %+v, want the defaults", c.MetadataMaxBytes, got)
		}
	}
	c = &Config{MetadataMaxBytes: MetadataMaxBytes{Targets: units.ByteSize(2 << 20)}}
	if got := c.metadataMax(); got.Targets != 2<<20 || got.Root != deviceapi.DefaultMaxRootBytes {
		t.Errorf("unvalidated config with a targets limit: %+v", got)
	}
}
