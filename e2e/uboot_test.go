package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/slot/slottest"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// The U-Boot scenarios run the real agent on the real uboot slot backend:
// the environment is a file driven by Debian's fw_printenv/fw_setenv, the
// slots are two image files, and the "bootloader" below applies U-Boot's
// boot-count logic to that environment with the same tools, then "starts
// the kernel" by rewriting the command line the backend reads.

const (
	ubootPkgs      = "u-boot-tools libubootenv-tool"
	ubootEnvSize   = 0x4000
	ubootBootLimit = 3
	// ubootDefaultEnv stands for U-Boot's compiled-in environment, which
	// the tools load while the stored one is blank.
	ubootDefaultEnv = "bootcmd=run uptrust_root; boot\nbootdelay=1\n"
)

// ubootDevice is a device with a U-Boot environment in a file.
type ubootDevice struct {
	t       *testing.T
	dir     string
	cfg     *agent.Config
	health  func(ctx context.Context) error
	reboots int
}

func newUbootDevice(t *testing.T, w *world) *ubootDevice {
	t.Helper()
	slottest.RequireTool(t, "fw_printenv", ubootPkgs)
	slottest.RequireTool(t, "fw_setenv", ubootPkgs)
	d := &ubootDevice{t: t, dir: t.TempDir()}
	factory := w.images["1.0.0"]
	files := map[string][]byte{
		"uboot.env":          make([]byte, ubootEnvSize),
		"u-boot-initial-env": []byte(ubootDefaultEnv),
		// Partitions are larger than the images they hold.
		"slot-a.img":        append(append([]byte{}, factory...), make([]byte, 64<<10)...),
		"slot-b.img":        make([]byte, imgSize+64<<10),
		"release-root.json": deviceRoot(t, w, "release"),
		"fleet-root.json":   deviceRoot(t, w, "fleet"),
	}
	files["fw_env.config"] = fmt.Appendf(nil, "%s 0x0 %#x\n", filepath.Join(d.dir, "uboot.env"), ubootEnvSize)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(d.dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The factory writes the boot-count variables with the real tool.
	d.setenv(fmt.Sprintf("boot_part=a\nupgrade_available=0\nbootcount=0\nbootlimit=%d\n", ubootBootLimit))
	d.setCmdline("a")

	// agent.json as a manufacturer would ship it, paths relative to it.
	cfg := map[string]any{
		"server": w.url, "product": product, "hardware": hardware, "data_dir": "data",
		"release_root": "release-root.json", "fleet_root": "fleet-root.json",
		"slot": map[string]any{"backend": "uboot", "fw_env_config": "fw_env.config", "fw_default_env": "u-boot-initial-env",
			"slot_a": "slot-a.img", "slot_b": "slot-b.img", "cmdline": "cmdline"},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	p := filepath.Join(d.dir, "agent.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := agent.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	d.cfg = c
	if err := agent.Provision(c.DataDir, "1.0.0", 1); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *ubootDevice) toolArgs() []string {
	return []string{"-c", filepath.Join(d.dir, "fw_env.config"), "-f", filepath.Join(d.dir, "u-boot-initial-env")}
}

// printenv reads the whole environment with fw_printenv.
func (d *ubootDevice) printenv() map[string]string {
	d.t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("fw_printenv", d.toolArgs()...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("fw_printenv: %v: %s", err, stderr.String())
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	return vars
}

// setenv stores a "name=value" script with one fw_setenv call (saveenv).
func (d *ubootDevice) setenv(script string) {
	d.t.Helper()
	p := filepath.Join(d.dir, "saveenv.txt")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		d.t.Fatal(err)
	}
	out, err := exec.Command("fw_setenv", append(d.toolArgs(), "-s", p)...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("fw_setenv: %v: %s", err, out)
	}
}

func (d *ubootDevice) setCmdline(part string) {
	d.t.Helper()
	dev := filepath.Join(d.dir, "slot-"+part+".img")
	line := "console=ttyS0 root=" + dev + " rootwait ro uptrust.slot=" + part + "\n"
	if err := os.WriteFile(filepath.Join(d.dir, "cmdline"), []byte(line), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// boot is a power cycle under U-Boot built with CONFIG_BOOTCOUNT_LIMIT and
// CONFIG_BOOTCOUNT_ENV: during a trial each boot increments bootcount, and
// once it exceeds bootlimit altbootcmd switches boot_part and ends the
// trial. Then bootcmd boots boot_part with uptrust.slot= on the command
// line. It is written from the U-Boot documentation, not from the agent's
// code.
func (d *ubootDevice) boot() string {
	d.t.Helper()
	d.reboots++
	env := d.printenv()
	part := env["boot_part"]
	if part != "a" && part != "b" {
		d.t.Fatalf("u-boot: boot_part=%q", part)
	}
	if env["upgrade_available"] == "1" {
		count, err1 := strconv.Atoi(env["bootcount"])
		limit, err2 := strconv.Atoi(env["bootlimit"])
		if err1 != nil || err2 != nil {
			d.t.Fatalf("u-boot: bootcount=%q bootlimit=%q", env["bootcount"], env["bootlimit"])
		}
		count++
		script := fmt.Sprintf("bootcount=%d\n", count)
		if limit > 0 && count > limit {
			part = map[string]string{"a": "b", "b": "a"}[part]
			script = "boot_part=" + part + "\nupgrade_available=0\nbootcount=0\n"
		}
		d.setenv(script)
	}
	d.setCmdline(part)
	return part
}

// agent starts the agent process on the device, as the init system would
// after a boot.
func (d *ubootDevice) agent() *agent.Agent {
	d.t.Helper()
	a, err := agent.New(d.cfg, agent.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reboot: func(context.Context) error { return agent.ErrRebooting },
		Health: func(ctx context.Context) error {
			if d.health == nil {
				return nil
			}
			return d.health(ctx)
		},
		HTTP: &fetch.Config{StallTimeout: 2 * time.Second, ConnectTimeout: time.Second, MaxAttempts: 3,
			BaseBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return a
}

// check runs one agent cycle and wants it to end with err matching want
// (nil: settled). A cycle that settled then sends its queued reports, as
// the running agent does later, before the next check.
func (d *ubootDevice) check(want error) *agent.Check {
	d.t.Helper()
	a := d.agent()
	chk, err := a.Check(context.Background())
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		d.t.Fatalf("Check = %+v, %v; want error %v", chk, err, want)
	}
	if err == nil {
		a.FlushReports(context.Background())
	}
	return chk
}

func (d *ubootDevice) assertEnv(bootPart, upgradeAvailable, bootcount string) {
	d.t.Helper()
	env := d.printenv()
	if env["boot_part"] != bootPart || env["upgrade_available"] != upgradeAvailable || env["bootcount"] != bootcount ||
		env["bootlimit"] != strconv.Itoa(ubootBootLimit) {
		d.t.Fatalf("environment %v; want boot_part=%s upgrade_available=%s bootcount=%s bootlimit=%d",
			env, bootPart, upgradeAvailable, bootcount, ubootBootLimit)
	}
	// The rest of U-Boot's environment survives the agent's updates.
	if env["bootcmd"] != "run uptrust_root; boot" || env["bootdelay"] != "1" {
		d.t.Fatalf("U-Boot's own variables were lost: %v", env)
	}
}

// assertRunning checks the agent's state and status, and that the booted
// slot holds exactly the image of version.
func (d *ubootDevice) assertRunning(w *world, version, slotName string) *agent.Status {
	d.t.Helper()
	st, err := agent.ReadStatus(context.Background(), d.cfg, nil, time.Now())
	if err != nil {
		d.t.Fatal(err)
	}
	slots, err := agent.OpenSlots(d.cfg.Slot, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	bs, err := slots.State(context.Background())
	if err != nil {
		d.t.Fatal(err)
	}
	if st.Version != version || st.Phase != agent.PhaseIdle || string(bs.Booted) != slotName || bs.Trial {
		d.t.Fatalf("device runs %s (phase %s) from slot %s (trial %v); want %s from slot %s, idle, not on trial (last check %+v)",
			st.Version, st.Phase, bs.Booted, bs.Trial, version, slotName, st.LastCheck)
	}
	img, err := os.ReadFile(filepath.Join(d.dir, "slot-"+slotName+".img"))
	if err != nil {
		d.t.Fatal(err)
	}
	want := w.images[version]
	if len(img) < len(want) || sha256.Sum256(img[:len(want)]) != sha256.Sum256(want) {
		d.t.Fatalf("slot %s does not hold the image of %s", slotName, version)
	}
	return st
}

func ubootWorld(t *testing.T) *world {
	t.Helper()
	slottest.RequireTool(t, "fw_printenv", ubootPkgs)
	slottest.RequireTool(t, "fw_setenv", ubootPkgs)
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	return w
}

func TestUbootUpdate(t *testing.T) {
	w := ubootWorld(t)
	d := newUbootDevice(t, w)
	d.assertEnv("a", "0", "0")

	// The agent writes slot b, verifies it, arms U-Boot and reboots.
	chk := d.check(agent.ErrRebooting)
	if chk == nil || chk.Offered != "1.1.0" {
		t.Fatalf("first check: %+v", chk)
	}
	d.assertEnv("b", "1", "0")

	// U-Boot counts the trial boot and starts slot b.
	if got := d.boot(); got != "b" {
		t.Fatalf("booted slot %s, want b", got)
	}
	d.assertEnv("b", "1", "1")

	// The new system is healthy: the agent commits it.
	chk = d.check(nil)
	if chk.Action != "none" || !strings.Contains(chk.Reason, "up to date") {
		t.Fatalf("check after the trial boot: %+v", chk)
	}
	d.assertEnv("b", "0", "0")
	st := d.assertRunning(w, "1.1.0", "b")
	if st.MaxSecurityVersion != 2 {
		t.Fatalf("max security version %d, want 2", st.MaxSecurityVersion)
	}
	w.assertReport("installed", "")

	// Later power cycles keep booting the committed slot.
	if got := d.boot(); got != "b" {
		t.Fatalf("booted slot %s after commit, want b", got)
	}
	d.check(nil)
	d.assertEnv("b", "0", "0")
	d.assertRunning(w, "1.1.0", "b")
	if d.reboots != 2 {
		t.Fatalf("%d reboots, want 2", d.reboots)
	}
}

func TestUbootHealthCheckFails(t *testing.T) {
	w := ubootWorld(t)
	d := newUbootDevice(t, w)
	d.health = func(context.Context) error { return errUnhealthy }

	d.check(agent.ErrRebooting)
	d.assertEnv("b", "1", "0")
	if got := d.boot(); got != "b" {
		t.Fatalf("booted slot %s, want b", got)
	}
	// The health check fails: the agent reverts the environment and
	// reboots.
	d.check(agent.ErrRebooting)
	d.assertEnv("a", "0", "0")
	if got := d.boot(); got != "a" {
		t.Fatalf("booted slot %s after revert, want a", got)
	}
	// Back on slot a, the agent records the failure and does not retry.
	chk := d.check(nil)
	if chk.Action != "waiting" {
		t.Fatalf("check after rollback: %+v", chk)
	}
	d.assertEnv("a", "0", "0")
	st := d.assertRunning(w, "1.0.0", "a")
	if f, ok := st.Failed["1.1.0"]; !ok || f.ErrorClass != report.ClassHealthCheck {
		t.Fatalf("failed releases: %+v", st.Failed)
	}
	w.assertReport("rolled_back", report.ClassHealthCheck)
}

// TestUbootNewSystemNeverComesUp: the new slot crashes before the agent
// starts, boot after boot, until U-Boot's boot limit sends it back to slot
// a; the agent then finds it was rolled back by the bootloader.
func TestUbootNewSystemNeverComesUp(t *testing.T) {
	w := ubootWorld(t)
	d := newUbootDevice(t, w)

	d.check(agent.ErrRebooting)
	for i := 1; i <= ubootBootLimit; i++ {
		if got := d.boot(); got != "b" {
			t.Fatalf("boot %d: slot %s, want b", i, got)
		}
		d.assertEnv("b", "1", strconv.Itoa(i))
	}
	if got := d.boot(); got != "a" {
		t.Fatalf("boot %d: slot %s, want a (boot limit %d exceeded)", ubootBootLimit+1, got, ubootBootLimit)
	}
	d.assertEnv("a", "0", "0")

	chk := d.check(nil)
	if chk.Action != "waiting" {
		t.Fatalf("check after the bootloader fell back: %+v", chk)
	}
	st := d.assertRunning(w, "1.0.0", "a")
	if f, ok := st.Failed["1.1.0"]; !ok || f.ErrorClass != report.ClassBootFallback {
		t.Fatalf("failed releases: %+v", st.Failed)
	}
	w.assertReport("rolled_back", report.ClassBootFallback)
}
