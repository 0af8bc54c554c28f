package fileslot_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/agent/slot/slottest"
)

const bootlimit = 3

func newDevice(t *testing.T) (string, *fileslot.Backend) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dev")
	if err := fileslot.Create(dir, strings.NewReader("factory image"), bootlimit); err != nil {
		t.Fatal(err)
	}
	return dir, fileslot.New(dir)
}

func TestConformance(t *testing.T) {
	slottest.Run(t, func(t *testing.T) slottest.Device {
		dir, b := newDevice(t)
		return slottest.Device{
			Backend:   b,
			Boot:      func(context.Context) (slot.Name, error) { return fileslot.Boot(dir) },
			BootLimit: bootlimit,
			Factory:   []byte("factory image"),
		}
	})
}

func TestCreateLayout(t *testing.T) {
	dir, _ := newDevice(t)
	env, err := os.ReadFile(filepath.Join(dir, fileslot.EnvFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{`"boot_part": "a"`, `"upgrade_available": "0"`, `"bootcount": "0"`, `"bootlimit": "3"`} {
		if !bytes.Contains(env, []byte(kv)) {
			t.Errorf("env.json lacks %s:\n%s", kv, env)
		}
	}
	booted, err := os.ReadFile(filepath.Join(dir, fileslot.BootedFile))
	if err != nil || string(booted) != "a\n" {
		t.Errorf("booted = %q, %v; want \"a\\n\"", booted, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, fileslot.ImageFile(slot.B))); err != nil || fi.Size() != 0 {
		t.Errorf("slot b after create: %v, %v; want an empty file", fi, err)
	}
}

func TestCreateRejectsBootLimitZero(t *testing.T) {
	err := fileslot.Create(t.TempDir(), strings.NewReader("x"), 0)
	if err == nil || !strings.Contains(err.Error(), "bootlimit") {
		t.Fatalf("Create with bootlimit 0 = %v, want a bootlimit error", err)
	}
}

func TestNotProvisioned(t *testing.T) {
	b := fileslot.New(t.TempDir())
	_, err := b.State(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "slot/file: ") || !strings.Contains(err.Error(), "uptrust-agent provision --factory-image") {
		t.Fatalf("State of an empty directory = %v, want a slot/file error pointing at fileslot.Create", err)
	}
	if _, err := fileslot.Boot(t.TempDir()); err == nil {
		t.Fatal("Boot of an empty directory succeeded")
	}
}

func TestCorruptEnv(t *testing.T) {
	for name, content := range map[string]string{
		"not json":      "{",
		"bad slot":      `{"boot_part":"c","upgrade_available":"0","bootcount":"0","bootlimit":"3"}`,
		"bad flag":      `{"boot_part":"a","upgrade_available":"yes","bootcount":"0","bootlimit":"3"}`,
		"missing limit": `{"boot_part":"a","upgrade_available":"0","bootcount":"0"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir, b := newDevice(t)
			if err := os.WriteFile(filepath.Join(dir, fileslot.EnvFile), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := b.State(t.Context()); err == nil || !strings.Contains(err.Error(), "env.json") {
				t.Fatalf("State = %v, want an error naming env.json", err)
			}
			if _, err := fileslot.Boot(dir); err == nil {
				t.Fatal("Boot with a corrupt env succeeded")
			}
		})
	}
}

// TestFault injects a power loss before and after the env write of each
// mutation and checks the environment is unchanged or fully changed, and
// that repeating the call after the "reboot of the agent" finishes the job.
func TestFault(t *testing.T) {
	errPowerLoss := errors.New("power loss")
	type step struct {
		op     string
		call   func(ctx context.Context, b *fileslot.Backend) error
		before slot.State // state before the call
		after  slot.State // state after a successful call
	}
	st := func(booted, primary slot.Name, trial bool, count int) slot.State {
		return slot.State{Booted: booted, Primary: primary, Trial: trial, BootCount: count, BootLimit: bootlimit}
	}
	// setup brings a fresh device to the state before the call.
	setups := map[string]func(t *testing.T, dir string, b *fileslot.Backend){
		"arm": func(t *testing.T, dir string, b *fileslot.Backend) {},
		"commit": func(t *testing.T, dir string, b *fileslot.Backend) {
			if err := b.Arm(t.Context(), slot.B); err != nil {
				t.Fatal(err)
			}
			if _, err := fileslot.Boot(dir); err != nil {
				t.Fatal(err)
			}
		},
	}
	setups["revert"] = setups["commit"]
	steps := []step{
		{"arm", func(ctx context.Context, b *fileslot.Backend) error { return b.Arm(ctx, slot.B) },
			st(slot.A, slot.A, false, 0), st(slot.A, slot.B, true, 0)},
		{"commit", func(ctx context.Context, b *fileslot.Backend) error { return b.Commit(ctx) },
			st(slot.B, slot.B, true, 1), st(slot.B, slot.B, false, 0)},
		{"revert", func(ctx context.Context, b *fileslot.Backend) error { return b.Revert(ctx) },
			st(slot.B, slot.B, true, 1), st(slot.B, slot.A, false, 0)},
	}
	for _, s := range steps {
		for _, at := range []fileslot.FaultPoint{fileslot.BeforeEnvWrite, fileslot.AfterEnvWrite} {
			t.Run(s.op+"/"+string(at), func(t *testing.T) {
				dir, b := newDevice(t)
				setups[s.op](t, dir, b)
				var calls []string
				b.Fault = func(op string, p fileslot.FaultPoint) error {
					calls = append(calls, op+"/"+string(p))
					if op == s.op && p == at {
						return errPowerLoss
					}
					return nil
				}
				if got := state(t, b); got != s.before {
					t.Fatalf("before %s: State = %+v, want %+v", s.op, got, s.before)
				}
				if err := s.call(t.Context(), b); !errors.Is(err, errPowerLoss) {
					t.Fatalf("%s with fault at %s = %v, want the injected error", s.op, at, err)
				}
				if want := s.op + "/" + string(at); calls[len(calls)-1] != want {
					t.Fatalf("Fault calls %v, want last %s", calls, want)
				}
				want := s.before
				if at == fileslot.AfterEnvWrite {
					want = s.after
				}
				// A fresh Backend, as after the agent restarts.
				b2 := fileslot.New(dir)
				if got := state(t, b2); got != want {
					t.Fatalf("after power loss at %s: State = %+v, want %+v", at, got, want)
				}
				if err := s.call(t.Context(), b2); err != nil {
					t.Fatalf("repeating %s: %v", s.op, err)
				}
				if got := state(t, b2); got != s.after {
					t.Fatalf("after repeating %s: State = %+v, want %+v", s.op, got, s.after)
				}
			})
		}
	}
}

func TestFaultArmThenBoot(t *testing.T) {
	// A power loss before the write means the next boot stays on a; after
	// it, the next boot tries b.
	for at, want := range map[fileslot.FaultPoint]slot.Name{
		fileslot.BeforeEnvWrite: slot.A,
		fileslot.AfterEnvWrite:  slot.B,
	} {
		dir, b := newDevice(t)
		b.Fault = func(op string, p fileslot.FaultPoint) error {
			if p == at {
				return errors.New("power loss")
			}
			return nil
		}
		if err := b.Arm(t.Context(), slot.B); err == nil {
			t.Fatal("Arm with a fault succeeded")
		}
		got, err := fileslot.Boot(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("fault %s: booted %s, want %s", at, got, want)
		}
	}
}

func TestWriterErrorsNameBackend(t *testing.T) {
	_, b := newDevice(t)
	_, err := b.OpenWriter(t.Context(), slot.A)
	if err == nil || !strings.HasPrefix(err.Error(), "slot/file: ") || !strings.Contains(err.Error(), "booted") {
		t.Fatalf("OpenWriter(booted) = %v, want a slot/file error saying it is booted", err)
	}
}

func state(t *testing.T, b slot.Backend) slot.State {
	t.Helper()
	s, err := b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBootCount: every simulated power cycle counts, so that the agent
// can tell it from a restart of its own process.
func TestBootCount(t *testing.T) {
	dir, b := newDevice(t)
	for want := uint64(0); want < 3; want++ {
		n, err := b.BootCount(t.Context())
		if err != nil || n != want {
			t.Fatalf("BootCount = %d, %v; want %d", n, err, want)
		}
		if _, err := fileslot.Boot(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, fileslot.BootsFile), []byte("many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.BootCount(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "slot/file: ") {
		t.Fatalf("BootCount of a damaged counter = %v, want a slot/file error", err)
	}
}
