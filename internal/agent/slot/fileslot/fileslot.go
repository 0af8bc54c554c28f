// Package fileslot is a slot.Backend on plain files, with a simulated
// bootloader, for tests and demos on machines without a real A/B layout.
//
// A device is a directory:
//
//	slot-a.img, slot-b.img  the two slot images
//	env.json                the bootloader environment: a JSON object of
//	                        string variables (boot_part, upgrade_available,
//	                        bootcount, bootlimit), like a U-Boot env
//	booted                  the slot the simulated bootloader last booted
//	boots                   how many power cycles Boot simulated (absent: 0)
//
// Create provisions a factory device; Boot simulates a power cycle. Every
// write of env.json and booted is atomic and durable (temporary file, fsync,
// rename, fsync of the directory), so a power loss leaves the old or the new
// content. Tests that need to crash at a precise point set Backend.Fault.
package fileslot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/bootenv"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/devio"
	"github.com/uptrust/uptrust/internal/atomicfile"
)

const prefix = "slot/file"

// File names inside a device directory.
const (
	EnvFile    = "env.json"
	BootedFile = "booted"
	BootsFile  = "boots"
)

// ImageFile returns the file name of slot n's image: "slot-a.img" or
// "slot-b.img".
func ImageFile(n slot.Name) string { return "slot-" + string(n) + ".img" }

// FaultPoint says where in Arm, Commit or Revert a Fault hook is called.
type FaultPoint string

// The points at which Fault is called.
const (
	// BeforeEnvWrite is just before env.json is replaced: failing here
	// leaves the environment unchanged.
	BeforeEnvWrite FaultPoint = "before-env-write"
	// AfterEnvWrite is just after env.json was durably replaced: failing
	// here leaves the environment fully changed, though the caller sees an
	// error.
	AfterEnvWrite FaultPoint = "after-env-write"
)

// Backend is the file-backed slot.Backend for one device directory. It is
// safe for concurrent use within one process; concurrent Arm, Commit and
// Revert calls are serialised and the last one wins.
type Backend struct {
	// Fault, if non-nil, is called by Arm, Commit and Revert with op "arm",
	// "commit" or "revert" at BeforeEnvWrite and AfterEnvWrite. A non-nil
	// result aborts the method and is returned as is, which is what a
	// power loss at that point looks like to the caller and to the next
	// boot. Set it before the Backend is used; it is for tests.
	Fault func(op string, at FaultPoint) error

	dir string
	mu  sync.Mutex
}

var _ slot.Backend = (*Backend)(nil)

// New returns the backend for the device directory dir, which Create must
// have provisioned. New does no I/O.
func New(dir string) *Backend { return &Backend{dir: dir} }

// Create provisions a factory device in dir (created if missing): the
// factory image in slot a, an empty slot b, boot_part=a,
// upgrade_available=0, bootcount=0, bootlimit as given, and booted=a. It
// replaces any device already in dir. bootlimit must be at least 1 (U-Boot
// treats 0 as "no limit").
func Create(dir string, factory io.Reader, bootlimit int) error {
	if bootlimit < 1 {
		return fmt.Errorf("%s: create %s: bootlimit %d: want at least 1", prefix, dir, bootlimit)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: create: %w", prefix, err)
	}
	err := atomicfile.Write(filepath.Join(dir, ImageFile(slot.A)), 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, factory)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: create: factory image: %w", prefix, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ImageFile(slot.B)), nil, 0o644); err != nil {
		return fmt.Errorf("%s: create: %w", prefix, err)
	}
	env := bootenv.Env{BootPart: slot.A, BootLimit: bootlimit}
	if err := writeEnv(dir, env); err != nil {
		return err
	}
	return writeBooted(dir, slot.A)
}

// Boot simulates a power cycle of the device in dir: the bootloader reads
// env.json, applies U-Boot's boot-count logic (bootenv.Env.PowerOn: during
// a trial bootcount++, and past bootlimit fall back to the other slot and end
// the trial), saves env.json if it changed, and the system comes up on
// boot_part, recorded in the booted file. The boots counter goes up by one
// first (see BootCount). It returns the booted slot.
func Boot(dir string) (slot.Name, error) {
	env, err := readEnv(dir)
	if err != nil {
		return "", err
	}
	n, err := readBoots(dir)
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, BootsFile), []byte(strconv.FormatUint(n+1, 10)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("%s: count boots: %w", prefix, err)
	}
	next, changed := env.PowerOn()
	if changed {
		if err := writeEnv(dir, next); err != nil {
			return "", err
		}
	}
	if err := writeBooted(dir, next.BootPart); err != nil {
		return "", err
	}
	return next.BootPart, nil
}

var _ slot.BootCounter = (*Backend)(nil)

// BootCount returns how many power cycles Boot simulated on this device.
// The kernel does not restart with them; the agent combines the two.
func (b *Backend) BootCount(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s: boot count: %w", prefix, err)
	}
	return readBoots(b.dir)
}

func readBoots(dir string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(dir, BootsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: read boot count: %w", prefix, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", prefix, filepath.Join(dir, BootsFile), err)
	}
	return n, nil
}

// State reads env.json and the booted marker.
func (b *Backend) State(ctx context.Context) (slot.State, error) {
	if err := ctx.Err(); err != nil {
		return slot.State{}, fmt.Errorf("%s: state: %w", prefix, err)
	}
	env, err := readEnv(b.dir)
	if err != nil {
		return slot.State{}, err
	}
	booted, err := readBooted(b.dir)
	if err != nil {
		return slot.State{}, err
	}
	return env.State(booted), nil
}

// OpenWriter creates or truncates slot n's image file. It refuses the booted
// slot.
func (b *Backend) OpenWriter(ctx context.Context, n slot.Name) (slot.Writer, error) {
	if err := b.checkNotBooted(ctx, "open writer", n); err != nil {
		return nil, err
	}
	return devio.OpenWriter(prefix, n, filepath.Join(b.dir, ImageFile(n)), os.O_CREATE|os.O_TRUNC, 0o644)
}

// OpenWriterAt opens slot n's image file for writing from offset off, to
// resume an image; it keeps the bytes before off and fails if the file
// is shorter than off. It refuses the booted slot.
func (b *Backend) OpenWriterAt(ctx context.Context, n slot.Name, off int64) (slot.Writer, error) {
	if err := b.checkNotBooted(ctx, "open writer", n); err != nil {
		return nil, err
	}
	return devio.OpenWriterAt(prefix, n, filepath.Join(b.dir, ImageFile(n)), off)
}

// OpenReader opens slot n's image file.
func (b *Backend) OpenReader(ctx context.Context, n slot.Name) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open reader: %w", prefix, err)
	}
	if _, err := slot.Parse(string(n)); err != nil {
		return nil, fmt.Errorf("%s: open reader: %w", prefix, err)
	}
	return devio.OpenReader(prefix, n, filepath.Join(b.dir, ImageFile(n)))
}

// Arm sets boot_part=n, upgrade_available=1, bootcount=0. It refuses the
// booted slot.
func (b *Backend) Arm(ctx context.Context, n slot.Name) error {
	if err := b.checkNotBooted(ctx, "arm", n); err != nil {
		return err
	}
	return b.update(ctx, "arm", bootenv.Update(n, true))
}

// Commit sets boot_part=booted, upgrade_available=0, bootcount=0.
func (b *Backend) Commit(ctx context.Context) error {
	booted, err := b.booted(ctx, "commit")
	if err != nil {
		return err
	}
	return b.update(ctx, "commit", bootenv.Update(booted, false))
}

// Revert sets boot_part=other than booted, upgrade_available=0,
// bootcount=0.
func (b *Backend) Revert(ctx context.Context) error {
	booted, err := b.booted(ctx, "revert")
	if err != nil {
		return err
	}
	return b.update(ctx, "revert", bootenv.Update(booted.Other(), false))
}

func (b *Backend) booted(ctx context.Context, op string) (slot.Name, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s: %s: %w", prefix, op, err)
	}
	return readBooted(b.dir)
}

func (b *Backend) checkNotBooted(ctx context.Context, op string, n slot.Name) error {
	if _, err := slot.Parse(string(n)); err != nil {
		return fmt.Errorf("%s: %s: %w", prefix, op, err)
	}
	booted, err := b.booted(ctx, op)
	if err != nil {
		return err
	}
	if n == booted {
		return fmt.Errorf("%s: %s slot %s: it is the booted slot: %w", prefix, op, n, slot.ErrBootedSlot)
	}
	return nil
}

// update applies vars to env.json in one atomic replace, calling Fault
// around it.
func (b *Backend) update(ctx context.Context, op string, vars []bootenv.Var) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s: %w", prefix, op, err)
	}
	env, err := readEnv(b.dir)
	if err != nil {
		return err
	}
	next, err := env.Apply(vars)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", prefix, op, err)
	}
	if err := b.fault(op, BeforeEnvWrite); err != nil {
		return err
	}
	if err := writeEnv(b.dir, next); err != nil {
		return err
	}
	return b.fault(op, AfterEnvWrite)
}

func (b *Backend) fault(op string, at FaultPoint) error {
	if b.Fault == nil {
		return nil
	}
	return b.Fault(op, at)
}

func readEnv(dir string) (bootenv.Env, error) {
	path := filepath.Join(dir, EnvFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return bootenv.Env{}, fmt.Errorf("%s: %s missing (provision the device with uptrust-agent provision --factory-image FILE): %w", prefix, path, bootenv.ErrNotProvisioned)
	}
	if err != nil {
		return bootenv.Env{}, fmt.Errorf("%s: read env: %w", prefix, err)
	}
	var vars map[string]string
	if err := json.Unmarshal(data, &vars); err != nil {
		return bootenv.Env{}, fmt.Errorf("%s: %s: %w", prefix, path, err)
	}
	env, err := bootenv.Parse(vars)
	if err != nil {
		return bootenv.Env{}, fmt.Errorf("%s: %s: %w", prefix, path, err)
	}
	return env, nil
}

// writeEnv replaces env.json atomically. Variables other than the four
// boot-count ones are not kept: this simulated bootloader has no others.
func writeEnv(dir string, env bootenv.Env) error {
	vars := make(map[string]string, 4)
	for _, v := range env.Vars() {
		vars[v.Name] = v.Value
	}
	data, err := json.MarshalIndent(vars, "", "\t")
	if err != nil {
		return fmt.Errorf("%s: encode env: %w", prefix, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, EnvFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("%s: write env: %w", prefix, err)
	}
	return nil
}

func readBooted(dir string) (slot.Name, error) {
	path := filepath.Join(dir, BootedFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: read booted slot (written by fileslot.Boot): %w", prefix, err)
	}
	n, err := slot.Parse(strings.TrimSpace(string(data)))
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", prefix, path, err)
	}
	return n, nil
}

func writeBooted(dir string, n slot.Name) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, BootedFile), []byte(string(n)+"\n"), 0o644); err != nil {
		return fmt.Errorf("%s: record booted slot: %w", prefix, err)
	}
	return nil
}
