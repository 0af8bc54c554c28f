// Package slottest is the behaviour suite every slot.Backend must pass, and
// helpers for backend tests that drive real bootloader tools.
//
// A backend's test provides a Device: a freshly provisioned factory device
// (slot a booted and committed) plus a Boot function that simulates a power
// cycle — the bootloader's boot-count logic run over the real environment,
// then the system coming up on the slot it chose. Run then checks the
// contract documented in package slot through the Backend alone.
package slottest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

// Device is one factory-provisioned device under test.
type Device struct {
	// Backend is the backend under test.
	Backend slot.Backend
	// Boot simulates a power cycle and returns the slot that came up.
	Boot func(ctx context.Context) (slot.Name, error)
	// BootLimit is the bootlimit the device was provisioned with (>= 1).
	BootLimit int
	// Factory, if non-nil, is the image provisioned in slot a; the suite
	// checks that slot a reads back with it as a prefix.
	Factory []byte
}

// RequireToolsEnv is the environment variable that turns a missing tool from
// a skip into a failure. CI sets it so that a machine without the tools
// cannot pass by skipping.
const RequireToolsEnv = "UPTRUST_REQUIRE_TOOLS"

// RequireTool returns the path of the executable name. If it is missing the
// test is skipped, with a message naming the Debian package pkg that
// provides it, unless RequireToolsEnv is set, in which case it fails.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(RequireToolsEnv) != "" {
		t.Fatalf("%s not found (%v) and %s is set: install it with apt-get install %s", name, err, RequireToolsEnv, pkg)
	}
	t.Skipf("SKIP: %s not found (%v): install it with apt-get install %s; set %s=1 to make this a failure", name, err, pkg, RequireToolsEnv)
	return ""
}

// Run runs the conformance suite as subtests of t. newDevice is called once
// per subtest and must return a fresh factory device.
func Run(t *testing.T, newDevice func(t *testing.T) Device) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d *dev)
	}{
		{"Factory", testFactory},
		{"WriteReadBack", testWriteReadBack},
		{"ResumeWriter", testResumeWriter},
		{"RefusesBootedSlot", testRefusesBootedSlot},
		{"InvalidName", testInvalidName},
		{"ArmBootCommit", testArmBootCommit},
		{"ArmBootRevert", testArmBootRevert},
		{"TrialExhaustsBootLimit", testTrialExhausts},
		{"RepeatArmCommitRevert", testRepeat},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			if d.BootLimit < 1 {
				t.Fatalf("slottest: device BootLimit %d: want at least 1", d.BootLimit)
			}
			tc.fn(t, &dev{Device: d, ctx: t.Context()})
		})
	}
}

// dev wraps a Device with fatal-on-error helpers.
type dev struct {
	Device
	ctx context.Context
}

func (d *dev) state(t *testing.T) slot.State {
	t.Helper()
	s, err := d.Backend.State(d.ctx)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return s
}

func (d *dev) want(t *testing.T, step string, want slot.State) {
	t.Helper()
	if got := d.state(t); got != want {
		t.Fatalf("%s: State = %+v, want %+v", step, got, want)
	}
}

// st builds the expected state; the bootlimit never changes.
func (d *dev) st(booted, primary slot.Name, trial bool, count int) slot.State {
	return slot.State{Booted: booted, Primary: primary, Trial: trial, BootCount: count, BootLimit: d.BootLimit}
}

func (d *dev) boot(t *testing.T, want slot.Name) {
	t.Helper()
	got, err := d.Boot(d.ctx)
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if got != want {
		t.Fatalf("Boot came up on slot %s, want %s", got, want)
	}
}

func (d *dev) arm(t *testing.T, n slot.Name) {
	t.Helper()
	if err := d.Backend.Arm(d.ctx, n); err != nil {
		t.Fatalf("Arm(%s): %v", n, err)
	}
}

func (d *dev) commit(t *testing.T) {
	t.Helper()
	if err := d.Backend.Commit(d.ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func (d *dev) revert(t *testing.T) {
	t.Helper()
	if err := d.Backend.Revert(d.ctx); err != nil {
		t.Fatalf("Revert: %v", err)
	}
}

// write writes img to slot n in uneven chunks, syncs and closes.
func (d *dev) write(t *testing.T, n slot.Name, img []byte) {
	t.Helper()
	w, err := d.Backend.OpenWriter(d.ctx, n)
	if err != nil {
		t.Fatalf("OpenWriter(%s): %v", n, err)
	}
	for rest := img; len(rest) > 0; {
		k := min(len(rest), 4096+7)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatalf("Write slot %s: %v", n, err)
		}
		rest = rest[k:]
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("Sync slot %s: %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close slot %s: %v", n, err)
	}
}

// checkPrefix checks that slot n starts with img. A block device is larger
// than the image, so only the prefix is compared.
func (d *dev) checkPrefix(t *testing.T, n slot.Name, img []byte) {
	t.Helper()
	r, err := d.Backend.OpenReader(d.ctx, n)
	if err != nil {
		t.Fatalf("OpenReader(%s): %v", n, err)
	}
	defer r.Close()
	got := make([]byte, len(img))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read slot %s: %v", n, err)
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("slot %s does not read back the image written (%d bytes)", n, len(img))
	}
}

func image(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x75707472))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testFactory(t *testing.T, d *dev) {
	d.want(t, "factory", d.st(slot.A, slot.A, false, 0))
	if d.Factory != nil {
		d.checkPrefix(t, slot.A, d.Factory)
	}
	// A power cycle of a committed device changes nothing.
	d.boot(t, slot.A)
	d.want(t, "factory after boot", d.st(slot.A, slot.A, false, 0))
}

func testWriteReadBack(t *testing.T, d *dev) {
	first := image(1, 300_001)
	d.write(t, slot.B, first)
	d.checkPrefix(t, slot.B, first)
	second := image(2, 70_000)
	d.write(t, slot.B, second)
	d.checkPrefix(t, slot.B, second)
	if d.Factory != nil {
		d.checkPrefix(t, slot.A, d.Factory)
	}
	d.want(t, "writing a slot leaves the environment alone", d.st(slot.A, slot.A, false, 0))
}

// testResumeWriter writes the first part of an image, closes the writer as
// an interrupted download would, and finishes it with OpenWriterAt: the slot
// must read back the whole image, the first part untouched. Resuming beyond
// what the slot holds, or in the booted slot, must fail.
func testResumeWriter(t *testing.T, d *dev) {
	// Something else is in the slot first: resuming must not depend on
	// the slot being blank beyond the offset.
	d.write(t, slot.B, image(21, 400_000))
	img := image(22, 300_001)
	const cut = 123_457
	d.write(t, slot.B, img[:cut])
	w, err := d.Backend.OpenWriterAt(d.ctx, slot.B, cut)
	if err != nil {
		t.Fatalf("OpenWriterAt(b, %d): %v", cut, err)
	}
	for rest := img[cut:]; len(rest) > 0; {
		k := min(len(rest), 65536+3)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatalf("Write slot b after resuming: %v", err)
		}
		rest = rest[k:]
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("Sync slot b after resuming: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close slot b after resuming: %v", err)
	}
	d.checkPrefix(t, slot.B, img)

	// Resuming at the very end writes nothing and keeps everything.
	w, err = d.Backend.OpenWriterAt(d.ctx, slot.B, int64(len(img)))
	if err != nil {
		t.Fatalf("OpenWriterAt(b, end): %v", err)
	}
	w.Close()
	d.checkPrefix(t, slot.B, img)

	for _, off := range []int64{-1, 1 << 50} {
		if w, err := d.Backend.OpenWriterAt(d.ctx, slot.B, off); err == nil {
			w.Close()
			t.Errorf("OpenWriterAt(b, %d) succeeded", off)
		}
	}
	if w, err := d.Backend.OpenWriterAt(d.ctx, slot.A, 0); !errors.Is(err, slot.ErrBootedSlot) {
		if w != nil {
			w.Close()
		}
		t.Fatalf("OpenWriterAt(booted a) = %v, want error wrapping slot.ErrBootedSlot", err)
	}
	d.checkPrefix(t, slot.B, img)
	d.want(t, "resuming a slot leaves the environment alone", d.st(slot.A, slot.A, false, 0))
}

func testRefusesBootedSlot(t *testing.T, d *dev) {
	if w, err := d.Backend.OpenWriter(d.ctx, slot.A); !errors.Is(err, slot.ErrBootedSlot) {
		if w != nil {
			w.Close()
		}
		t.Fatalf("OpenWriter(booted a) = %v, want error wrapping slot.ErrBootedSlot", err)
	}
	if err := d.Backend.Arm(d.ctx, slot.A); !errors.Is(err, slot.ErrBootedSlot) {
		t.Fatalf("Arm(booted a) = %v, want error wrapping slot.ErrBootedSlot", err)
	}
	d.want(t, "after refused Arm", d.st(slot.A, slot.A, false, 0))
	if d.Factory != nil {
		d.checkPrefix(t, slot.A, d.Factory)
	}

	// After moving to b, the roles swap.
	d.write(t, slot.B, image(3, 10_000))
	d.arm(t, slot.B)
	d.boot(t, slot.B)
	if _, err := d.Backend.OpenWriter(d.ctx, slot.B); !errors.Is(err, slot.ErrBootedSlot) {
		t.Fatalf("OpenWriter(booted b) = %v, want error wrapping slot.ErrBootedSlot", err)
	}
	d.write(t, slot.A, image(4, 10_000))
}

func testInvalidName(t *testing.T, d *dev) {
	for _, n := range []slot.Name{"", "c", "A"} {
		if w, err := d.Backend.OpenWriter(d.ctx, n); err == nil {
			w.Close()
			t.Errorf("OpenWriter(%q) succeeded", n)
		}
		if r, err := d.Backend.OpenReader(d.ctx, n); err == nil {
			r.Close()
			t.Errorf("OpenReader(%q) succeeded", n)
		}
		if err := d.Backend.Arm(d.ctx, n); err == nil {
			t.Errorf("Arm(%q) succeeded", n)
		}
	}
	d.want(t, "after invalid names", d.st(slot.A, slot.A, false, 0))
}

func testArmBootCommit(t *testing.T, d *dev) {
	d.write(t, slot.B, image(5, 50_000))
	d.arm(t, slot.B)
	d.want(t, "armed b", d.st(slot.A, slot.B, true, 0))
	d.boot(t, slot.B)
	d.want(t, "trial boot of b", d.st(slot.B, slot.B, true, 1))
	d.commit(t)
	d.want(t, "committed b", d.st(slot.B, slot.B, false, 0))
	d.boot(t, slot.B)
	d.boot(t, slot.B)
	d.want(t, "b after reboots", d.st(slot.B, slot.B, false, 0))

	// The next update goes the other way.
	img := image(6, 50_000)
	d.write(t, slot.A, img)
	d.arm(t, slot.A)
	d.want(t, "armed a", d.st(slot.B, slot.A, true, 0))
	d.boot(t, slot.A)
	d.commit(t)
	d.want(t, "committed a", d.st(slot.A, slot.A, false, 0))
	d.checkPrefix(t, slot.A, img)
}

func testArmBootRevert(t *testing.T, d *dev) {
	d.write(t, slot.B, image(7, 50_000))
	d.arm(t, slot.B)
	d.boot(t, slot.B)
	d.revert(t)
	d.want(t, "reverted from b", d.st(slot.B, slot.A, false, 0))
	d.boot(t, slot.A)
	d.want(t, "back on a", d.st(slot.A, slot.A, false, 0))
	d.boot(t, slot.A)
	d.want(t, "a after reboot", d.st(slot.A, slot.A, false, 0))
}

func testTrialExhausts(t *testing.T, d *dev) {
	d.write(t, slot.B, image(8, 50_000))
	d.arm(t, slot.B)
	for i := 1; i <= d.BootLimit; i++ {
		d.boot(t, slot.B)
		d.want(t, "trial boot", d.st(slot.B, slot.B, true, i))
	}
	// One boot past the limit: the bootloader falls back and ends the trial.
	d.boot(t, slot.A)
	d.want(t, "fell back", d.st(slot.A, slot.A, false, 0))
	d.boot(t, slot.A)
	d.want(t, "stays on a", d.st(slot.A, slot.A, false, 0))
}

// testRepeat checks that each mutation, repeated as an agent does after a
// power loss it cannot tell the timing of, gives the same environment.
func testRepeat(t *testing.T, d *dev) {
	d.write(t, slot.B, image(9, 20_000))
	d.arm(t, slot.B)
	d.arm(t, slot.B)
	d.want(t, "armed b twice", d.st(slot.A, slot.B, true, 0))
	d.boot(t, slot.B)
	d.commit(t)
	d.commit(t)
	d.want(t, "committed b twice", d.st(slot.B, slot.B, false, 0))

	d.write(t, slot.A, image(10, 20_000))
	d.arm(t, slot.A)
	d.boot(t, slot.A)
	d.boot(t, slot.A)
	d.want(t, "second trial boot of a", d.st(slot.A, slot.A, true, 2))
	d.revert(t)
	d.revert(t)
	d.want(t, "reverted from a twice", d.st(slot.A, slot.B, false, 0))
	d.boot(t, slot.B)
	d.want(t, "back on b", d.st(slot.B, slot.B, false, 0))
}

func testCanceledContext(t *testing.T, d *dev) {
	d.write(t, slot.B, image(11, 20_000))
	ctx, cancel := context.WithCancel(d.ctx)
	cancel()
	if err := d.Backend.Arm(ctx, slot.B); err == nil {
		t.Fatal("Arm with a canceled context succeeded")
	}
	if err := d.Backend.Commit(ctx); err == nil {
		t.Fatal("Commit with a canceled context succeeded")
	}
	if err := d.Backend.Revert(ctx); err == nil {
		t.Fatal("Revert with a canceled context succeeded")
	}
	if _, err := d.Backend.State(ctx); err == nil {
		t.Fatal("State with a canceled context succeeded")
	}
	d.want(t, "after canceled calls", d.st(slot.A, slot.A, false, 0))
}
