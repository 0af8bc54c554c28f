package grub_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/grub"
	"github.com/uptrust/uptrust/internal/agent/slot/slottest"
)

const bootlimit = 2

var factory = []byte("factory image for slot a")

type fixture struct {
	dir string
	cfg grub.Config
	b   *grub.Backend
}

// newFixture lays out two slot image files and a kernel command line saying
// slot a booted. The environment block does not exist yet.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	slottest.RequireTool(t, "grub-editenv", "grub-common")
	f := &fixture{dir: t.TempDir()}
	f.cfg = grub.Config{
		EnvFile: filepath.Join(f.dir, "grubenv"),
		DeviceA: filepath.Join(f.dir, "slot-a.img"),
		DeviceB: filepath.Join(f.dir, "slot-b.img"),
		Cmdline: filepath.Join(f.dir, "cmdline"),
	}
	writeFile(t, f.cfg.DeviceA, append(append([]byte{}, factory...), make([]byte, 1<<20)...))
	writeFile(t, f.cfg.DeviceB, make([]byte, 1<<20))
	writeFile(t, f.cfg.Cmdline, []byte("BOOT_IMAGE=/boot/vmlinuz root="+f.cfg.DeviceA+" ro uptrust.slot=a\n"))
	b, err := grub.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	return f
}

func (f *fixture) provision(t *testing.T, limit int) {
	t.Helper()
	if err := f.b.Provision(t.Context(), limit); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) list(ctx context.Context) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "grub-editenv", f.cfg.EnvFile, "list").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("grub-editenv list: %v: %s", err, out)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	return vars, nil
}

// simBoot is a simulated GRUB running grub.cfg.example, written in Go over
// the real grub-editenv, independently of the backend: it edits the block
// in place as save_env does, and counts the way the example does (by cases,
// stopping at 10).
func (f *fixture) simBoot(ctx context.Context) (slot.Name, error) {
	vars, err := f.list(ctx)
	if err != nil {
		return "", err
	}
	part := "a"
	if vars["boot_part"] == "b" {
		part = "b"
	}
	if vars["upgrade_available"] == "1" {
		limit := 1
		if l := vars["bootlimit"]; len(l) == 1 && l >= "1" && l <= "9" {
			limit = int(l[0] - '0')
		}
		count := 10
		if c := vars["bootcount"]; len(c) == 1 && c >= "0" && c <= "8" {
			count = int(c[0]-'0') + 1
		}
		if count > limit {
			part = map[string]string{"a": "b", "b": "a"}[part]
			count = 0
			vars["upgrade_available"] = "0"
		}
		out, err := exec.CommandContext(ctx, "grub-editenv", f.cfg.EnvFile, "set",
			"boot_part="+part, "upgrade_available="+vars["upgrade_available"], fmt.Sprintf("bootcount=%d", count)).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("grub-editenv set: %v: %s", err, out)
		}
	}
	return slot.Name(part), os.WriteFile(f.cfg.Cmdline, []byte("root=/dev/sda ro uptrust.slot="+part+"\n"), 0o644)
}

func TestConformanceSimulated(t *testing.T) {
	slottest.Run(t, func(t *testing.T) slottest.Device {
		f := newFixture(t)
		f.provision(t, bootlimit)
		return slottest.Device{Backend: f.b, Boot: f.simBoot, BootLimit: bootlimit, Factory: factory}
	})
}

func TestExampleConfigSyntax(t *testing.T) {
	slottest.RequireTool(t, "grub-script-check", "grub-common")
	p := filepath.Join(t.TempDir(), "grub.cfg")
	writeFile(t, p, []byte(grub.ExampleConfig))
	if out, err := exec.Command("grub-script-check", p).CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check grub.cfg.example: %v: %s", err, out)
	}
	disk, err := os.ReadFile("grub.cfg.example")
	if err != nil || string(disk) != grub.ExampleConfig {
		t.Fatalf("ExampleConfig differs from grub.cfg.example (%v)", err)
	}
}

func TestProvisionKeepsOtherVars(t *testing.T) {
	f := newFixture(t)
	out, err := exec.Command("grub-editenv", f.cfg.EnvFile, "set", "saved_entry=rescue", "boot_part=b").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f.provision(t, 5)
	vars, err := f.list(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"saved_entry": "rescue", "boot_part": "a", "upgrade_available": "0", "bootcount": "0", "bootlimit": "5"}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s=%q, want %q (all: %v)", k, vars[k], v, vars)
		}
	}
	if fi, err := os.Stat(f.cfg.EnvFile); err != nil || fi.Size() != 1024 {
		t.Fatalf("grubenv after Provision: %v, %v; want 1024 bytes", fi, err)
	}
}

func TestProvisionBootLimitRange(t *testing.T) {
	f := newFixture(t)
	for _, l := range []int{0, grub.MaxBootLimit + 1} {
		if err := f.b.Provision(t.Context(), l); err == nil {
			t.Errorf("Provision(%d) succeeded", l)
		}
	}
	if _, err := os.Stat(f.cfg.EnvFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused Provision touched %s: %v", f.cfg.EnvFile, err)
	}
}

func TestNotProvisioned(t *testing.T) {
	f := newFixture(t)
	_, err := f.b.State(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "slot/grub: state: ") || !strings.Contains(err.Error(), "Provision") {
		t.Fatalf("State without grubenv = %v, want a slot/grub error pointing at Provision", err)
	}
	if _, err := os.Stat(f.cfg.EnvFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("State created %s: %v", f.cfg.EnvFile, err)
	}
	if err := f.b.Commit(t.Context()); err == nil {
		t.Fatal("Commit without grubenv succeeded")
	}
}

func TestCorruptBlock(t *testing.T) {
	f := newFixture(t)
	writeFile(t, f.cfg.EnvFile, []byte("not an environment block\n"))
	_, err := f.b.State(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "slot/grub: state: grub-editenv: exit status") ||
		!strings.Contains(err.Error(), "invalid environment block") {
		t.Fatalf("State of a corrupt block = %v, want grub-editenv's error with its stderr", err)
	}
}

// TestFailedEditLeavesFileAlone runs a grub-editenv that truncates its file
// and fails, as the real one leaves a file when power is lost mid-write, and
// checks the live environment is untouched.
func TestFailedEditLeavesFileAlone(t *testing.T) {
	f := newFixture(t)
	f.provision(t, bootlimit)
	before, err := os.ReadFile(f.cfg.EnvFile)
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(f.dir, "fake-grub-editenv")
	writeFile(t, fake, []byte("#!/bin/sh\n: > \"$1\"\necho 'grub-editenv: error: simulated power loss.' >&2\nexit 1\n"))
	if err := os.Chmod(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg
	cfg.GrubEditenv = fake
	b, err := grub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Arm(t.Context(), slot.B)
	if err == nil || !strings.HasPrefix(err.Error(), "slot/grub: arm: fake-grub-editenv: exit status 1: grub-editenv: error: simulated power loss.") {
		t.Fatalf("Arm with a failing tool = %v", err)
	}
	after, err := os.ReadFile(f.cfg.EnvFile)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("a failed Arm changed %s (%v)", f.cfg.EnvFile, err)
	}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "tmp") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestBootedSlotUnknown(t *testing.T) {
	f := newFixture(t)
	f.provision(t, bootlimit)
	writeFile(t, f.cfg.Cmdline, []byte("root=UUID=1234 ro\n"))
	_, err := f.b.State(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "slot/grub: booted slot: ") {
		t.Fatalf("State = %v, want a slot/grub booted-slot error", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []grub.Config{{}, {DeviceB: "/dev/y"}, {DeviceA: "/dev/x", DeviceB: "/dev/x"}} {
		if _, err := grub.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "slot/grub: config: ") {
			t.Errorf("New(%+v) = %v, want a config error", cfg, err)
		}
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// argsRE finds what the example config would pass to the kernel, echoed by
// the emu driver.
var argsRE = regexp.MustCompile(`UPTRUST_ARGS=\[([^\]]*)\]`)
