package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConfig writes v as agent.json in a fresh directory and returns its
// path.
func writeConfig(t *testing.T, v map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// baseConfig is a valid file-backend config with relative paths.
func baseConfig() map[string]any {
	return map[string]any{
		"server":       "https://updates.example.com",
		"product":      "thermostat",
		"hardware":     "rev-a",
		"data_dir":     "data",
		"release_root": "roots/release.json",
		"fleet_root":   "roots/fleet.json",
		"slot":         map[string]any{"backend": "file", "dir": "slots"},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestLoadConfigResolvesRelativePaths(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "ca.pem")
	p := writeConfig(t, with(baseConfig(), "ca_file", abs))
	dir := filepath.Dir(p)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][2]string{
		"data_dir":     {c.DataDir, filepath.Join(dir, "data")},
		"release_root": {c.ReleaseRoot, filepath.Join(dir, "roots", "release.json")},
		"fleet_root":   {c.FleetRoot, filepath.Join(dir, "roots", "fleet.json")},
		"slot.dir":     {c.Slot.Dir, filepath.Join(dir, "slots")},
		"ca_file":      {c.CAFile, abs},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %q, want %q", name, got[0], got[1])
		}
	}
}

func TestLoadConfigResolvesSlotPaths(t *testing.T) {
	for _, backend := range []map[string]any{
		{"backend": "uboot", "fw_env_config": "fw_env.config", "fw_default_env": "env.txt", "slot_a": "a.img", "slot_b": "b.img", "cmdline": "cmdline"},
		{"backend": "grub", "grub_env": "grubenv", "slot_a": "a.img", "slot_b": "b.img", "cmdline": "cmdline"},
	} {
		t.Run(backend["backend"].(string), func(t *testing.T) {
			p := writeConfig(t, with(baseConfig(), "slot", backend))
			dir := filepath.Dir(p)
			c, err := LoadConfig(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range []string{c.Slot.FwEnvConfig, c.Slot.FwDefaultEnv, c.Slot.GrubEnv, c.Slot.SlotA, c.Slot.SlotB, c.Slot.Cmdline} {
				if got != "" && !strings.HasPrefix(got, dir+string(filepath.Separator)) {
					t.Errorf("slot path %q not resolved against %s: %+v", got, dir, c.Slot)
				}
			}
		})
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, baseConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.PollInterval) != 6*time.Hour {
		t.Errorf("poll interval = %v, want 6h", time.Duration(c.PollInterval))
	}
	if time.Duration(c.MetadataTimeout) != 5*time.Minute || c.MinTransferRate != 512 || time.Duration(c.MinTransferWindow) != 2*time.Minute {
		t.Errorf("metadata timeout %v, min transfer rate %d per %v; want 5m, 512 per 2m", time.Duration(c.MetadataTimeout), c.MinTransferRate,
			time.Duration(c.MinTransferWindow))
	}
	if time.Duration(c.StallTimeout) != 60*time.Second {
		t.Errorf("stall timeout = %v, want 60s", time.Duration(c.StallTimeout))
	}
	if c.MaxAttempts != 5 {
		t.Errorf("max attempts = %d, want 5", c.MaxAttempts)
	}
	if want := []string{"systemctl", "reboot"}; !reflect.DeepEqual(c.RebootCommand, want) {
		t.Errorf("reboot command = %q, want %q", c.RebootCommand, want)
	}
	if !c.ReportsEnabled() {
		t.Error("reports are off by default")
	}
	if len(c.Notify) != 0 || time.Duration(c.NotifyTimeout) != 30*time.Second || time.Duration(c.StaleAfter) != 14*24*time.Hour {
		t.Errorf("notify %q, notify timeout %v, stale after %v; want none, 30s, 14 days", c.Notify, time.Duration(c.NotifyTimeout), time.Duration(c.StaleAfter))
	}
}

func TestLoadConfigOwnerFields(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, with(baseConfig(),
		"notify", []string{"/usr/libexec/notify-owner", "--via", "mail"}, "notify_timeout", "5s", "stale_after", "7d12h")))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Notify, []string{"/usr/libexec/notify-owner", "--via", "mail"}) || time.Duration(c.NotifyTimeout) != 5*time.Second ||
		time.Duration(c.StaleAfter) != 7*24*time.Hour+12*time.Hour {
		t.Errorf("owner fields: notify %q, timeout %v, stale after %v", c.Notify, time.Duration(c.NotifyTimeout), time.Duration(c.StaleAfter))
	}
}

func TestLoadConfigExplicitValues(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, with(baseConfig(),
		"poll_interval", "90s", "stall_timeout", "5s", "max_attempts", 2,
		"reboot_command", []string{"/sbin/reboot", "-f"}, "reports", false)))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.PollInterval) != 90*time.Second || time.Duration(c.StallTimeout) != 5*time.Second || c.MaxAttempts != 2 {
		t.Errorf("explicit values not kept: %+v", c)
	}
	if want := []string{"/sbin/reboot", "-f"}; !reflect.DeepEqual(c.RebootCommand, want) {
		t.Errorf("reboot command = %q, want %q", c.RebootCommand, want)
	}
	if c.ReportsEnabled() {
		t.Error("reports: false did not turn reports off")
	}
	// A Duration survives a round trip through JSON.
	b, err := json.Marshal(c.PollInterval)
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("marshal 90s = %s, %v", b, err)
	}
}

func TestLoadConfigInsecureHTTP(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, with(baseConfig(), "server", "http://updates.example.com")))
	if err == nil || !strings.Contains(err.Error(), "allow_insecure_http") {
		t.Fatalf("plain http to a remote host: %v, want an error mentioning allow_insecure_http", err)
	}
	if _, err := LoadConfig(writeConfig(t, with(baseConfig(), "server", "http://updates.example.com", "allow_insecure_http", true))); err != nil {
		t.Fatalf("allow_insecure_http: true: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "http://127.1.2.3"} {
		if _, err := LoadConfig(writeConfig(t, with(baseConfig(), "server", u))); err != nil {
			t.Errorf("loopback %s: %v", u, err)
		}
	}
	// A name that merely starts like a loopback address is not one.
	if _, err := LoadConfig(writeConfig(t, with(baseConfig(), "server", "http://127.0.0.1.example.com"))); err == nil {
		t.Error("http://127.0.0.1.example.com accepted as loopback")
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"unknown backend", with(baseConfig(), "slot", map[string]any{"backend": "floppy"}), `unknown slot backend "floppy"`},
		{"no backend", with(baseConfig(), "slot", map[string]any{}), "unknown slot backend"},
		{"file without dir", with(baseConfig(), "slot", map[string]any{"backend": "file"}), "slot.dir"},
		{"uboot without slots", with(baseConfig(), "slot", map[string]any{"backend": "uboot", "fw_env_config": "/etc/fw_env.config"}), "slot.slot_a"},
		{"grub without env", with(baseConfig(), "slot", map[string]any{"backend": "grub", "slot_a": "/dev/a", "slot_b": "/dev/b"}), "slot.grub_env"},
		{"no data dir", with(baseConfig(), "data_dir", nil), "data_dir"},
		{"no release root", with(baseConfig(), "release_root", nil), "release_root"},
		{"no fleet root", with(baseConfig(), "fleet_root", nil), "fleet_root"},
		{"no server", with(baseConfig(), "server", nil), "not an http(s) URL"},
		{"ftp server", with(baseConfig(), "server", "ftp://updates.example.com"), "not an http(s) URL"},
		{"no product", with(baseConfig(), "product", nil), "invalid product"},
		{"bad product", with(baseConfig(), "product", "Thermo Stat"), "invalid product"},
		{"product with slash", with(baseConfig(), "product", "thermo/stat"), "invalid product"},
		{"bad hardware", with(baseConfig(), "hardware", "REV_A"), "invalid hardware"},
		{"short poll", with(baseConfig(), "poll_interval", "500ms"), "too short"},
		{"bad duration", with(baseConfig(), "poll_interval", "soon"), "duration"},
		{"duration not a string", with(baseConfig(), "poll_interval", 60), "duration"},
		{"notify without executable", with(baseConfig(), "notify", []string{""}), "notify"},
		{"negative notify timeout", with(baseConfig(), "notify_timeout", "-1s"), "notify_timeout"},
		{"short stale_after", with(baseConfig(), "stale_after", "10m"), "stale_after"},
		{"bad days", with(baseConfig(), "stale_after", "2weeks"), "duration"},
		{"short metadata timeout", with(baseConfig(), "metadata_timeout", "1s"), "metadata_timeout"},
		{"short transfer window", with(baseConfig(), "min_transfer_window", "1s"), "min_transfer_window"},
		{"minimum rate above the limit", with(with(baseConfig(), "download_rate_limit", "4KiB"), "min_transfer_rate", "8KiB"), "below download_rate_limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.cfg)
			_, err := LoadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig = %v, want an error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file %s", err, p)
			}
		})
	}
}

func TestLoadConfigUnreadable(t *testing.T) {
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing config loaded")
	}
	p := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("malformed config: %v, want an error naming %s", err, p)
	}
}
