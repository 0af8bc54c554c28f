package envslot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/bootenv"
)

// memEnv is an environment in memory that counts its writes.
type memEnv struct {
	env    bootenv.Env
	writes int
}

func (m *memEnv) Read(context.Context) (bootenv.Env, error) { return m.env, nil }
func (m *memEnv) Write(_ context.Context, vars []bootenv.Var) error {
	e, err := m.env.Apply(vars)
	if err != nil {
		return err
	}
	m.env, m.writes = e, m.writes+1
	return nil
}

// device is two slot image files and a kernel command line in a temp dir;
// slot a holds the running system.
type device struct {
	t          *testing.T
	dir        string
	a, b       string
	env        *memEnv
	slots      *Slots
	running    []byte
	cmdlineErr bool
}

func newDevice(t *testing.T, cmdline string) *device {
	t.Helper()
	dir := t.TempDir()
	d := &device{t: t, dir: dir, a: filepath.Join(dir, "a.img"), b: filepath.Join(dir, "b.img"),
		env: &memEnv{env: bootenv.Env{BootPart: slot.A, BootLimit: 3}}, running: []byte("running system")}
	write(t, d.a, d.running)
	write(t, d.b, []byte("old image"))
	write(t, filepath.Join(dir, "cmdline"), []byte(strings.NewReplacer("$A", d.a, "$B", d.b).Replace(cmdline)))
	d.slots = &Slots{Prefix: "slot/test", Tool: "test", Env: d.env, DeviceA: d.a, DeviceB: d.b, Cmdline: filepath.Join(dir, "cmdline")}
	return d
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// alias replaces slot b's device with another name for slot a's.
func (d *device) alias(how string) {
	d.t.Helper()
	if err := os.Remove(d.b); err != nil {
		d.t.Fatal(err)
	}
	var err error
	switch how {
	case "symlink":
		err = os.Symlink("a.img", d.b)
	case "hard link":
		err = os.Link(d.a, d.b)
	case "same path":
		write(d.t, d.b, []byte("unused"))
		d.slots.DeviceB = filepath.Join(d.dir, ".", "a.img")
	}
	if err != nil {
		d.t.Fatal(err)
	}
}

// assertNothingWritten checks that the running slot and the environment
// are untouched after refused writes.
func (d *device) assertRefusedWrites() {
	d.t.Helper()
	ctx := context.Background()
	w, err := d.slots.OpenWriter(ctx, slot.B)
	if err == nil {
		w.Write([]byte("new image"))
		w.Close()
	}
	if !errors.Is(err, slot.ErrOverwritesRunning) {
		d.t.Errorf("OpenWriter(b) = %v, want an error wrapping ErrOverwritesRunning", err)
	}
	if _, err := d.slots.OpenWriterAt(ctx, slot.B, 0); !errors.Is(err, slot.ErrOverwritesRunning) {
		d.t.Errorf("OpenWriterAt(b) = %v, want an error wrapping ErrOverwritesRunning", err)
	}
	if err := d.slots.Arm(ctx, slot.B); !errors.Is(err, slot.ErrOverwritesRunning) {
		d.t.Errorf("Arm(b) = %v, want an error wrapping ErrOverwritesRunning", err)
	}
	if got, err := os.ReadFile(d.a); err != nil || string(got) != string(d.running) {
		d.t.Errorf("running slot a holds %q, %v; want %q", got, err, d.running)
	}
	if d.env.writes != 0 {
		d.t.Errorf("%d environment writes, want none", d.env.writes)
	}
}

func TestCheckDevicesAliases(t *testing.T) {
	for _, how := range []string{"symlink", "hard link", "same path"} {
		t.Run(how, func(t *testing.T) {
			d := newDevice(t, "console=ttyS0 uptrust.slot=a\n")
			d.alias(how)
			_, err := d.slots.CheckDevices()
			if !errors.Is(err, slot.ErrOverwritesRunning) {
				t.Fatalf("CheckDevices = %v, want an error wrapping ErrOverwritesRunning", err)
			}
			for _, want := range []string{"slot a (" + d.a, "slot b (" + d.slots.DeviceB} {
				if how != "same path" && !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			d.assertRefusedWrites()
		})
	}
}

// TestCheckDevicesRootMismatch: the bootloader script says slot a was
// booted but root= is slot b's device, so slot b is the running system.
func TestCheckDevicesRootMismatch(t *testing.T) {
	d := newDevice(t, "root=$B rootwait uptrust.slot=a\n")
	d.running = []byte("old image")
	_, err := d.slots.CheckDevices()
	if !errors.Is(err, slot.ErrOverwritesRunning) || !errors.Is(err, bootenv.ErrRootMismatch) ||
		!strings.Contains(err.Error(), "uptrust.slot=a says slot a ("+d.a+", inode") || !strings.Contains(err.Error(), "root="+d.b) {
		t.Fatalf("CheckDevices = %v, want a root mismatch naming both", err)
	}
	if _, err := d.slots.State(context.Background()); !errors.Is(err, bootenv.ErrRootMismatch) {
		t.Errorf("State = %v, want the root mismatch", err)
	}
	d.a, d.b = d.b, d.a // the running system is in slot b's device
	d.assertRefusedWrites()
}

func TestCheckDevicesNotes(t *testing.T) {
	d := newDevice(t, "root=PARTUUID=00000000-02 uptrust.slot=a\n")
	notes, err := d.slots.CheckDevices()
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "root=PARTUUID=00000000-02 not cross-checked") {
		t.Fatalf("CheckDevices = %q, %v; want one note on root=", notes, err)
	}
	d.slots.DeviceB = filepath.Join(d.dir, "missing.img")
	d.slots.Cmdline = filepath.Join(d.dir, "no-cmdline")
	notes, err = d.slots.CheckDevices()
	if err != nil || len(notes) != 2 || !strings.Contains(notes[0], "slot b device not checked") || !strings.Contains(notes[1], "no-cmdline") {
		t.Fatalf("CheckDevices = %q, %v; want notes on slot b and the command line", notes, err)
	}

	// Agreeing devices and command line: writes go ahead.
	d = newDevice(t, "root=$A uptrust.slot=a\n")
	if notes, err := d.slots.CheckDevices(); err != nil || len(notes) != 0 {
		t.Fatalf("CheckDevices = %q, %v; want no error and no note", notes, err)
	}
	w, err := d.slots.OpenWriter(context.Background(), slot.B)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}
