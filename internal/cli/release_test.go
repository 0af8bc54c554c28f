package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// release add reports a mistaken --compress or --zstd-frame as a usage
// error before it opens the payload or the project: the project's own
// checks (project.CheckCompression, project.CheckZstdFrame) run first.
func TestReleaseAddCompressionUsageBeforeProject(t *testing.T) {
	nowhere := filepath.Join(t.TempDir(), "not-a-project")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--compress", "gzip"}, "--compress"},
		{[]string{"--zstd-frame", "1MiB"}, "need zstd compression"},
		{[]string{"--compress", "zstd", "--zstd-frame", "4KiB"}, "at least 262144 bytes"},
		{[]string{"--compress", "zstd", "--zstd-frame", "0"}, "--zstd-frame"},
	} {
		args := append([]string{"release", "add", "thermostat", "1.1.0", filepath.Join(nowhere, "fw.img"),
			"--kind", "security", "--security-version", "2", "--dir", nowhere}, tc.flags...)
		r := run(t, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage:") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("release add %v outside a project: %v; want a usage error mentioning %q", tc.flags, r, tc.want)
		}
	}
}
