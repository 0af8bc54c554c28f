package grub_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/grub"
	"github.com/uptrust/uptrust/internal/agent/slot/slottest"
)

// emu boots the real GRUB (grub-emu) with grub.cfg.example over the
// fixture's environment block. The block lives on an ext2 disk image, as on
// a device, so that save_env can write it in place: before each boot the
// image is rebuilt around the current block, after it the block is read
// back. What the example passes to the kernel becomes the command line.
type emu struct {
	f    *fixture
	work string
}

// emuDriver is the grub.cfg grub-emu reads: it runs the example, prints the
// kernel arguments it chose and stops before the menu.
const emuDriver = `set prefix=(hd0)/boot/grub
source ${prefix}/uptrust.cfg
echo "UPTRUST_ARGS=[${uptrust_args}]"
halt
`

func newEmu(t *testing.T, f *fixture) *emu {
	t.Helper()
	slottest.RequireTool(t, "grub-emu", "grub-emu")
	slottest.RequireTool(t, "mke2fs", "e2fsprogs")
	slottest.RequireTool(t, "debugfs", "e2fsprogs")
	e := &emu{f: f, work: t.TempDir()}
	writeFile(t, filepath.Join(e.work, "grub.cfg"), []byte(emuDriver))
	writeFile(t, filepath.Join(e.work, "device.map"), []byte("(hd0) "+filepath.Join(e.work, "disk.img")+"\n"))
	return e
}

func (e *emu) boot(ctx context.Context) (slot.Name, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	block, err := os.ReadFile(e.f.cfg.EnvFile)
	if err != nil {
		return "", err
	}
	stage := filepath.Join(e.work, "stage")
	grubDir := filepath.Join(stage, "boot", "grub")
	if err := os.RemoveAll(stage); err != nil {
		return "", err
	}
	if err := os.MkdirAll(grubDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(grubDir, "grubenv"), block, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(grubDir, "uptrust.cfg"), []byte(grub.ExampleConfig), 0o644); err != nil {
		return "", err
	}
	disk := filepath.Join(e.work, "disk.img")
	if err := os.Remove(disk); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, "mke2fs", "-q", "-F", "-t", "ext2", "-d", stage, disk, "4M").CombinedOutput(); err != nil {
		return "", fmt.Errorf("mke2fs: %v: %s", err, out)
	}

	cmd := exec.CommandContext(ctx, "grub-emu", "-d", e.work, "-m", filepath.Join(e.work, "device.map"))
	cmd.Stdin = nil // /dev/null: nothing waits for a key
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("grub-emu: %v: %q", err, out)
	}
	text := strings.ReplaceAll(string(out), "\r", "")
	if strings.Contains(text, "error:") {
		return "", fmt.Errorf("grub-emu printed an error running grub.cfg.example: %q", text)
	}
	m := argsRE.FindStringSubmatch(text)
	if m == nil {
		return "", fmt.Errorf("grub-emu output has no UPTRUST_ARGS: %q", text)
	}

	var stderr bytes.Buffer
	cat := exec.CommandContext(ctx, "debugfs", "-R", "cat /boot/grub/grubenv", disk)
	cat.Stderr = &stderr
	after, err := cat.Output()
	if err != nil {
		return "", fmt.Errorf("debugfs: %v: %s", err, stderr.String())
	}
	if len(after) != len(block) {
		return "", fmt.Errorf("grubenv read back from the disk is %d bytes, want %d", len(after), len(block))
	}
	if err := os.WriteFile(e.f.cfg.EnvFile, after, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(e.f.cfg.Cmdline, []byte("BOOT_IMAGE=/boot/vmlinuz "+m[1]+"\n"), 0o644); err != nil {
		return "", err
	}
	for _, field := range strings.Fields(m[1]) {
		if v, ok := strings.CutPrefix(field, "uptrust.slot="); ok {
			return slot.Parse(v)
		}
	}
	return "", fmt.Errorf("grub.cfg.example passed no uptrust.slot= to the kernel: %q", m[1])
}

// TestConformanceGrubEmu runs the suite against the real GRUB executing
// grub.cfg.example.
func TestConformanceGrubEmu(t *testing.T) {
	slottest.Run(t, func(t *testing.T) slottest.Device {
		f := newFixture(t)
		e := newEmu(t, f)
		f.provision(t, bootlimit)
		return slottest.Device{Backend: f.b, Boot: e.boot, BootLimit: bootlimit, Factory: factory}
	})
}

// TestGrubEmuMaxBootLimit checks the example counts all the way to
// MaxBootLimit before falling back.
func TestGrubEmuMaxBootLimit(t *testing.T) {
	f := newFixture(t)
	e := newEmu(t, f)
	f.provision(t, grub.MaxBootLimit)
	if err := f.b.Arm(t.Context(), slot.B); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= grub.MaxBootLimit; i++ {
		if got, err := e.boot(t.Context()); err != nil || got != slot.B {
			t.Fatalf("trial boot %d: %s, %v; want b", i, got, err)
		}
	}
	if got, err := e.boot(t.Context()); err != nil || got != slot.A {
		t.Fatalf("boot past the limit: %s, %v; want a", got, err)
	}
	s, err := f.b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (slot.State{Booted: slot.A, Primary: slot.A, BootLimit: grub.MaxBootLimit}); s != want {
		t.Fatalf("State = %+v, want %+v", s, want)
	}
}

// TestGrubEmuBadBootLimit checks that a trial with a bootlimit the example
// cannot count to is still bounded (treated as 1).
func TestGrubEmuBadBootLimit(t *testing.T) {
	for _, limit := range []string{"", "x", "12"} {
		t.Run("bootlimit="+limit, func(t *testing.T) {
			f := newFixture(t)
			e := newEmu(t, f)
			f.provision(t, bootlimit)
			if out, err := exec.Command("grub-editenv", f.cfg.EnvFile, "set",
				"bootlimit="+limit, "boot_part=b", "upgrade_available=1", "bootcount=0").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			for i, want := range []slot.Name{slot.B, slot.A, slot.A} {
				if got, err := e.boot(t.Context()); err != nil || got != want {
					t.Fatalf("boot %d: %s, %v; want %s", i+1, got, err, want)
				}
			}
		})
	}
}
