package uboot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/slottest"
	"github.com/uptrust/uptrust/internal/agent/slot/uboot"
)

const (
	bootlimit = 2
	envSize   = 0x4000
	pkgs      = "u-boot-tools libubootenv-tool"
)

// defaultEnv stands for U-Boot's compiled-in environment.
const defaultEnv = "bootcmd=run uptrust_boot\nbootdelay=1\n"

var factory = []byte("factory image for slot a")

type fixture struct {
	dir     string
	cfg     uboot.Config
	envs    []string // environment copies
	b       *uboot.Backend
	useRoot bool // bootloader names the slot only with root=
}

// newFixture lays out a blank (all zero) file-backed environment, one or two
// copies, a default environment, two slot image files and a kernel command
// line saying slot a booted. The environment is not provisioned.
func newFixture(t *testing.T, copies int, useRoot bool) *fixture {
	t.Helper()
	slottest.RequireTool(t, "fw_printenv", pkgs)
	slottest.RequireTool(t, "fw_setenv", pkgs)
	f := &fixture{dir: t.TempDir(), useRoot: useRoot}
	var config strings.Builder
	for i := range copies {
		p := filepath.Join(f.dir, fmt.Sprintf("uboot%d.env", i))
		writeFile(t, p, make([]byte, envSize))
		fmt.Fprintf(&config, "%s 0x0 %#x\n", p, envSize)
		f.envs = append(f.envs, p)
	}
	f.cfg = uboot.Config{
		EnvConfig:  filepath.Join(f.dir, "fw_env.config"),
		DefaultEnv: filepath.Join(f.dir, "u-boot-initial-env"),
		DeviceA:    filepath.Join(f.dir, "slot-a.img"),
		DeviceB:    filepath.Join(f.dir, "slot-b.img"),
		Cmdline:    filepath.Join(f.dir, "cmdline"),
	}
	writeFile(t, f.cfg.EnvConfig, []byte(config.String()))
	writeFile(t, f.cfg.DefaultEnv, []byte(defaultEnv))
	writeFile(t, f.cfg.DeviceA, append(append([]byte{}, factory...), make([]byte, 1<<20)...))
	writeFile(t, f.cfg.DeviceB, make([]byte, 1<<20))
	f.writeCmdline(t, slot.A)
	b, err := uboot.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	return f
}

func (f *fixture) writeCmdline(t *testing.T, n slot.Name) {
	t.Helper()
	if err := f.setCmdline(n); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) setCmdline(n slot.Name) error {
	dev := f.cfg.DeviceA
	if n == slot.B {
		dev = f.cfg.DeviceB
	}
	line := "console=ttyS0 root=" + dev + " rootwait"
	if !f.useRoot {
		line += " uptrust.slot=" + string(n)
	}
	return os.WriteFile(f.cfg.Cmdline, []byte(line+"\n"), 0o644)
}

// printenv lists the whole environment through the real tool.
func (f *fixture) printenv(ctx context.Context) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "fw_printenv", "-c", f.cfg.EnvConfig, "-f", f.cfg.DefaultEnv)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("fw_printenv: %v: %s", err, stderr.String())
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	return vars, nil
}

// boot is the simulated U-Boot: CONFIG_BOOTCOUNT_LIMIT with
// CONFIG_BOOTCOUNT_ENV, and altbootcmd switching boot_part. It is written
// independently of the backend and of package bootenv, straight over the
// real tools, and then "starts the kernel" by writing the command line.
func (f *fixture) boot(ctx context.Context) (slot.Name, error) {
	vars, err := f.printenv(ctx)
	if err != nil {
		return "", err
	}
	part := vars["boot_part"]
	if part != "a" && part != "b" {
		return "", fmt.Errorf("simulated u-boot: boot_part=%q", part)
	}
	if vars["upgrade_available"] == "1" {
		var count, limit int
		if _, err := fmt.Sscan(vars["bootcount"], &count); err != nil {
			return "", fmt.Errorf("simulated u-boot: bootcount=%q", vars["bootcount"])
		}
		if _, err := fmt.Sscan(vars["bootlimit"], &limit); err != nil {
			return "", fmt.Errorf("simulated u-boot: bootlimit=%q", vars["bootlimit"])
		}
		count++
		script := fmt.Sprintf("bootcount=%d\n", count)
		if limit > 0 && count > limit { // altbootcmd
			part = map[string]string{"a": "b", "b": "a"}[part]
			script = "boot_part=" + part + "\nupgrade_available=0\nbootcount=0\n"
		}
		sp := filepath.Join(f.dir, "uboot-saveenv.txt")
		if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
			return "", err
		}
		cmd := exec.CommandContext(ctx, "fw_setenv", "-c", f.cfg.EnvConfig, "-f", f.cfg.DefaultEnv, "-s", sp)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("fw_setenv: %v: %s", err, out)
		}
	}
	return slot.Name(part), f.setCmdline(slot.Name(part))
}

func (f *fixture) device(t *testing.T) slottest.Device {
	t.Helper()
	if err := f.b.Provision(t.Context(), bootlimit); err != nil {
		t.Fatal(err)
	}
	return slottest.Device{Backend: f.b, Boot: f.boot, BootLimit: bootlimit, Factory: factory}
}

func TestConformance(t *testing.T) {
	for _, v := range []struct {
		name    string
		copies  int
		useRoot bool
	}{
		{"single", 1, false},
		{"redundant", 2, false},
		{"root-only", 1, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			slottest.Run(t, func(t *testing.T) slottest.Device {
				return newFixture(t, v.copies, v.useRoot).device(t)
			})
		})
	}
}

func TestProvisionBlankKeepsDefaultEnv(t *testing.T) {
	f := newFixture(t, 1, false)
	if _, err := f.b.State(t.Context()); err == nil || !strings.Contains(err.Error(), "not provisioned") {
		t.Fatalf("State of a blank env = %v, want a not-provisioned error", err)
	}
	if err := f.b.Provision(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	vars, err := f.printenv(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"boot_part": "a", "upgrade_available": "0", "bootcount": "0", "bootlimit": "5",
		"bootcmd": "run uptrust_boot", "bootdelay": "1",
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("after Provision %s=%q, want %q (all: %v)", k, vars[k], v, vars)
		}
	}
	// The store is real: the file now holds a valid env, so the tools no
	// longer need the default.
	if err := os.WriteFile(f.cfg.DefaultEnv, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := f.b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (slot.State{Booted: slot.A, Primary: slot.A, BootLimit: 5}); s != want {
		t.Fatalf("State = %+v, want %+v", s, want)
	}
}

func TestProvisionKeepsOtherVars(t *testing.T) {
	f := newFixture(t, 1, false)
	f.device(t)
	setenv(t, f, "bootdelay=7\nboot_part=b\nbootcount=9\n")
	if err := f.b.Provision(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	vars, err := f.printenv(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if vars["bootdelay"] != "7" || vars["boot_part"] != "a" || vars["bootcount"] != "0" || vars["bootlimit"] != "4" {
		t.Fatalf("after re-Provision: %v", vars)
	}
}

func TestProvisionRejectsBootLimitZero(t *testing.T) {
	f := newFixture(t, 1, false)
	if err := f.b.Provision(t.Context(), 0); err == nil {
		t.Fatal("Provision(0) succeeded")
	}
}

func TestNoDefaultEnvError(t *testing.T) {
	f := newFixture(t, 1, false)
	cfg := f.cfg
	cfg.DefaultEnv = filepath.Join(f.dir, "missing-default-env")
	b, err := uboot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.State(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "slot/uboot: state: fw_printenv: exit status") ||
		!strings.Contains(err.Error(), "Cannot read default environment") {
		t.Fatalf("State with a blank env and no default = %v, want the fw_printenv failure with its stderr", err)
	}
}

func TestMissingTool(t *testing.T) {
	f := newFixture(t, 1, false)
	cfg := f.cfg
	cfg.FwPrintenv = filepath.Join(f.dir, "no-such-fw_printenv")
	b, err := uboot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.State(t.Context()); err == nil || !strings.Contains(err.Error(), "install u-boot-tools") {
		t.Fatalf("State with a missing tool = %v, want an install hint", err)
	}
}

// TestSetenvThatDoesNothing catches a fw_setenv that exits 0 without
// storing (as U-Boot's legacy tool does with a "name=value" script).
func TestSetenvThatDoesNothing(t *testing.T) {
	f := newFixture(t, 1, false)
	f.device(t)
	cfg := f.cfg
	cfg.FwSetenv = filepath.Join(f.dir, "fake-fw_setenv")
	writeFile(t, cfg.FwSetenv, []byte("#!/bin/sh\nexit 0\n"))
	if err := os.Chmod(cfg.FwSetenv, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := uboot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Arm(t.Context(), slot.B)
	if err == nil || !strings.Contains(err.Error(), "reported success") {
		t.Fatalf("Arm with a no-op fw_setenv = %v, want a read-back failure", err)
	}
}

// TestRedundantTornWrite tears the copy an Arm wrote, as a power loss in
// the middle of that write would, and checks the tools then read the
// environment as it was before the Arm.
func TestRedundantTornWrite(t *testing.T) {
	f := newFixture(t, 2, false)
	f.device(t)
	before := snapshot(t, f.envs)
	if err := f.b.Arm(t.Context(), slot.B); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, f.envs)
	changed := -1
	for i := range f.envs {
		if !bytes.Equal(before[i], after[i]) {
			if changed >= 0 {
				t.Fatal("Arm rewrote both environment copies")
			}
			changed = i
		}
	}
	if changed < 0 {
		t.Fatal("Arm changed no environment copy")
	}
	torn := after[changed]
	for i := 5; i < 64; i++ { // past the CRC and flag byte
		torn[i] ^= 0xff
	}
	writeFile(t, f.envs[changed], torn)
	s, err := f.b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (slot.State{Booted: slot.A, Primary: slot.A, BootLimit: bootlimit}); s != want {
		t.Fatalf("State after a torn Arm = %+v, want the pre-Arm %+v", s, want)
	}
	// Repeating the Arm completes it.
	if err := f.b.Arm(t.Context(), slot.B); err != nil {
		t.Fatal(err)
	}
	if got, err := f.boot(t.Context()); err != nil || got != slot.B {
		t.Fatalf("boot after re-Arm = %s, %v; want b", got, err)
	}
}

func TestBootedSlotUnknown(t *testing.T) {
	f := newFixture(t, 1, false)
	f.device(t)
	writeFile(t, f.cfg.Cmdline, []byte("console=ttyS0 root=PARTUUID=0000-02\n"))
	_, err := f.b.State(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "slot/uboot: booted slot: ") || !strings.Contains(err.Error(), "uptrust.slot") {
		t.Fatalf("State = %v, want a slot/uboot booted-slot error mentioning uptrust.slot", err)
	}
	if err := f.b.Commit(t.Context()); err == nil {
		t.Fatal("Commit without a known booted slot succeeded")
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []uboot.Config{
		{},
		{DeviceA: "/dev/x"},
		{DeviceA: "/dev/x", DeviceB: "/dev/x"},
	} {
		if _, err := uboot.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "slot/uboot: config: ") {
			t.Errorf("New(%+v) = %v, want a config error", cfg, err)
		}
	}
}

func TestCanceledProvision(t *testing.T) {
	f := newFixture(t, 1, false)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.b.Provision(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("Provision with a canceled context = %v, want context.Canceled", err)
	}
}

func setenv(t *testing.T, f *fixture, script string) {
	t.Helper()
	sp := filepath.Join(f.dir, "test-script.txt")
	writeFile(t, sp, []byte(script))
	out, err := exec.Command("fw_setenv", "-c", f.cfg.EnvConfig, "-s", sp).CombinedOutput()
	if err != nil {
		t.Fatalf("fw_setenv: %v: %s", err, out)
	}
}

func snapshot(t *testing.T, paths []string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
