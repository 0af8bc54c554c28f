package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadConfigStrict: unknown fields, at any depth, are refused with the
// file, line, column and nearest known name; zero or negative durations
// and counts are refused naming the field.
func TestLoadConfigStrict(t *testing.T) {
	const base = `{
  "server": "https://updates.example.com",
  "product": "thermostat",
  "hardware": "rev-a",
  "data_dir": "data",
  "release_root": "roots/release.json",
  "fleet_root": "roots/fleet.json",
  "slot": {"backend": "file", "dir": "slots"},
  %s
}`
	for _, tc := range []struct{ field, want string }{
		{`"download_rate_limt": "1MiB"`, `agent.json:9:3: unknown field "download_rate_limt" (did you mean "download_rate_limit"?)`},
		{`"metadata_max_bytes": {"timestmap": "16KiB"}`, `agent.json:9:26: unknown field "metadata_max_bytes.timestmap" (did you mean "timestamp"?)`},
		{`"poll_interval": "6 hours"`, `agent.json:9:20: poll_interval: duration "6 hours": want e.g.`},
		{`"poll_interval": "0s"`, `agent.json:9:20: poll_interval: "0s" must be positive`},
		{`"notify_timeout": "-5s"`, `notify_timeout: "-5s" is negative`},
		{`"max_attempts": 0`, `max_attempts: 0 must be positive`},
		{`"max_attempts": -3`, `max_attempts: -3 is negative`},
		{`"max_attempts": "5"`, `max_attempts: "5" is not a whole number`},
		{`"reports": "yes"`, `reports: "yes" is not a boolean`},
		{`"power_loss_budget": 0`, `power_loss_budget: 0 must be positive`},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, "agent.json")
		if err := os.WriteFile(p, []byte(strings.Replace(base, "%s", tc.field, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, tc.want)) && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.field, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name %s", tc.field, err, p)
		}
	}
	// download_rate_limit 0 means no limit and stays allowed.
	p := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(p, []byte(strings.Replace(base, "%s", `"download_rate_limit": 0`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err != nil {
		t.Errorf("download_rate_limit 0: %v", err)
	}
}
