package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/cli"
)

// TestSlotConfigOverwritesRunning: a U-Boot device whose slot_a and slot_b
// are one file (a symlink or a hard link), or whose bootloader script
// passes uptrust.slot=a while root= is slot b's device, is one the agent
// would install into by writing over the running system. Driven through
// `uptrust-agent provision` and `uptrust-agent check` with a release on
// offer, the agent refuses both and leaves the running slot and the
// environment as they were.
func TestSlotConfigOverwritesRunning(t *testing.T) {
	w := ubootWorld(t)
	for _, tc := range []struct {
		name string
		// setup breaks the device and returns the running slot.
		setup func(d *ubootDevice) string
		// want is in the refusal's message.
		want []string
	}{
		{"symlink", func(d *ubootDevice) string {
			d.replaceSlotB(func(b string) error { return os.Symlink("slot-a.img", b) })
			return "a"
		}, []string{"slot a (", "slot-a.img", "slot-b.img -> /", "same file or device"}},
		{"hard link", func(d *ubootDevice) string {
			d.replaceSlotB(func(b string) error { return os.Link(filepath.Join(d.dir, "slot-a.img"), b) })
			return "a"
		}, []string{"slot-a.img", "slot-b.img", "same file or device"}},
		{"root= names the other slot", func(d *ubootDevice) string {
			// The bootloader booted slot b (it holds the factory image)
			// but says uptrust.slot=a.
			a, b := filepath.Join(d.dir, "slot-a.img"), filepath.Join(d.dir, "slot-b.img")
			img, err := os.ReadFile(a)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(b, img, 0o644); err != nil {
				t.Fatal(err)
			}
			line := "console=ttyS0 root=" + b + " rootwait ro uptrust.slot=a\n"
			if err := os.WriteFile(filepath.Join(d.dir, "cmdline"), []byte(line), 0o644); err != nil {
				t.Fatal(err)
			}
			return "b"
		}, []string{"names two booted slots: uptrust.slot=a says slot a (", "slot-b.img says slot b ("}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newUbootDevice(t, w)
			// Never reboot the machine running the test, whatever the
			// agent decides.
			d.editConfig(func(c map[string]any) { c["reboot_command"] = []string{"true"} })
			running := tc.setup(d)
			runningPath := filepath.Join(d.dir, "slot-"+running+".img")
			before, err := os.ReadFile(runningPath)
			if err != nil {
				t.Fatal(err)
			}

			// A factory provisioning this device is refused before it
			// writes anything.
			if err := os.RemoveAll(d.cfg.DataDir); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := d.cli("provision", "--version", "1.0.0", "--security-version", "1")
			if code != 1 || !strings.Contains(stderr, "overwrite the running system") {
				t.Fatalf("provision: exit %d, stderr %q; want 1 and a refusal", code, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("provision's refusal %q does not say %q", stderr, want)
				}
			}
			if _, err := os.Stat(d.cfg.DataDir); !os.IsNotExist(err) {
				t.Errorf("provision wrote %s (%v) though it refused", d.cfg.DataDir, err)
			}

			// A device provisioned before (or whose slots were
			// changed since) refuses to start a check, with 1.1.0 on
			// offer.
			if err := agent.Provision(d.cfg.DataDir, "1.0.0", 1); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := d.cli("check")
			t.Logf("check: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			if code != 1 || !strings.Contains(stderr, "overwrite the running system") {
				t.Fatalf("check: exit %d, stdout %q, stderr %q; want 1 and a refusal", code, stdout, stderr)
			}
			after, err := os.ReadFile(runningPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, before) {
				t.Errorf("the running slot %s was written", running)
			}
			d.assertEnv("a", "0", "0")
		})
	}
}

// replaceSlotB replaces slot b's image file with what link makes at its
// path.
func (d *ubootDevice) replaceSlotB(link func(b string) error) {
	d.t.Helper()
	b := filepath.Join(d.dir, "slot-b.img")
	if err := os.Remove(b); err != nil {
		d.t.Fatal(err)
	}
	if err := link(b); err != nil {
		d.t.Fatal(err)
	}
}

// editConfig changes agent.json and reloads it.
func (d *ubootDevice) editConfig(change func(map[string]any)) {
	d.t.Helper()
	p := filepath.Join(d.dir, "agent.json")
	b, err := os.ReadFile(p)
	if err != nil {
		d.t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		d.t.Fatal(err)
	}
	change(c)
	if b, err = json.Marshal(c); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		d.t.Fatal(err)
	}
	if d.cfg, err = agent.LoadConfig(p); err != nil {
		d.t.Fatal(err)
	}
}

// cli runs `uptrust-agent --config <agent.json> args...`.
func (d *ubootDevice) cli(args ...string) (int, string, string) {
	d.t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), append([]string{"--config", filepath.Join(d.dir, "agent.json")}, args...),
		cli.Env{Stdout: &stdout, Stderr: &stderr})
	return code, stdout.String(), stderr.String()
}
