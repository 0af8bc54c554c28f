package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

// slotDevices writes two slot images and a kernel command line into a
// temp dir and returns a uboot and a grub config over them.
func slotDevices(t *testing.T, cmdline string) (dir string, cfgs []SlotConfig) {
	t.Helper()
	dir = t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	for p, data := range map[string]string{a: "running", b: "inactive", filepath.Join(dir, "cmdline"): cmdline} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cl := filepath.Join(dir, "cmdline")
	return dir, []SlotConfig{
		{Backend: "uboot", FwEnvConfig: filepath.Join(dir, "fw_env.config"), SlotA: a, SlotB: b, Cmdline: cl},
		{Backend: "grub", GrubEnv: filepath.Join(dir, "grubenv"), SlotA: a, SlotB: b, Cmdline: cl},
	}
}

func TestOpenSlotsRefusesAliasedSlots(t *testing.T) {
	dir, cfgs := slotDevices(t, "root=/dev/mmcblk0p2 uptrust.slot=a")
	if err := os.Remove(filepath.Join(dir, "b.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.img", filepath.Join(dir, "b.img")); err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		_, err := OpenSlots(c, nil)
		if !errors.Is(err, slot.ErrOverwritesRunning) || !strings.Contains(err.Error(), c.SlotB+" -> "+c.SlotA) {
			t.Errorf("%s: OpenSlots = %v, want a refusal naming slot b and what it resolves to", c.Backend, err)
		}
		cfg := &Config{Server: "https://updates.example.com", DataDir: filepath.Join(dir, "data"), Slot: c}
		if _, err := New(cfg, Options{}); !errors.Is(err, slot.ErrOverwritesRunning) {
			t.Errorf("%s: New = %v, want the refusal", c.Backend, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("data dir: %v, want none", err)
	}
}

func TestOpenSlotsLogsWhatItCannotCheck(t *testing.T) {
	_, cfgs := slotDevices(t, "root=PARTUUID=00000000-02 uptrust.slot=a")
	for _, c := range cfgs {
		var logs bytes.Buffer
		if _, err := OpenSlots(c, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatalf("%s: OpenSlots: %v", c.Backend, err)
		}
		if !strings.Contains(logs.String(), "root=PARTUUID=00000000-02 not cross-checked") {
			t.Errorf("%s: log %q does not say root= was not cross-checked", c.Backend, logs.String())
		}
	}
	// The file backend has no devices to check.
	if _, err := OpenSlots(SlotConfig{Backend: "file", Dir: t.TempDir()}, nil); err != nil {
		t.Fatal(err)
	}
}
