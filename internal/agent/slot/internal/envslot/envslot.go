// Package envslot is the part of the uboot and grub backends that does not
// depend on the bootloader: two slot devices, the booted slot read from the
// kernel command line, and the arm/commit/revert updates of the boot-count
// variables, each read back after it was written. A backend supplies only
// how its environment is read and written (Env).
package envslot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/bootenv"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/devid"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/devio"
)

// Env reads and writes one bootloader environment. Write must set all vars
// in one change of the environment store.
type Env interface {
	Read(ctx context.Context) (bootenv.Env, error)
	Write(ctx context.Context, vars []bootenv.Var) error
}

// Slots implements slot.Backend over an Env. Its fields are set once by the
// backend's constructor.
type Slots struct {
	// Prefix names the backend in errors, e.g. "slot/uboot".
	Prefix string
	// Tool names the writing tool in read-back errors, e.g. "fw_setenv".
	Tool             string
	Env              Env
	DeviceA, DeviceB string
	Cmdline          string
}

var _ slot.Backend = (*Slots)(nil)

// State reads the boot-count variables and the booted slot.
func (s *Slots) State(ctx context.Context) (slot.State, error) {
	booted, err := s.Booted()
	if err != nil {
		return slot.State{}, err
	}
	env, err := s.Env.Read(ctx)
	if err != nil {
		return slot.State{}, fmt.Errorf("%s: state: %w", s.Prefix, err)
	}
	return env.State(booted), nil
}

// OpenWriter opens slot n's device for writing from offset 0, without
// truncating or creating it. It refuses the booted slot.
func (s *Slots) OpenWriter(ctx context.Context, n slot.Name) (slot.Writer, error) {
	if err := s.checkNotBooted(ctx, "open writer", n); err != nil {
		return nil, err
	}
	return devio.OpenWriter(s.Prefix, n, s.Device(n), 0, 0)
}

// OpenWriterAt opens slot n's device for writing from offset off, to
// resume an image; it keeps the bytes before off and fails if the device
// is shorter than off. It refuses the booted slot.
func (s *Slots) OpenWriterAt(ctx context.Context, n slot.Name, off int64) (slot.Writer, error) {
	if err := s.checkNotBooted(ctx, "open writer", n); err != nil {
		return nil, err
	}
	return devio.OpenWriterAt(s.Prefix, n, s.Device(n), off)
}

// OpenReader opens slot n's device for reading.
func (s *Slots) OpenReader(ctx context.Context, n slot.Name) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open reader: %w", s.Prefix, err)
	}
	if _, err := slot.Parse(string(n)); err != nil {
		return nil, fmt.Errorf("%s: open reader: %w", s.Prefix, err)
	}
	return devio.OpenReader(s.Prefix, n, s.Device(n))
}

// Arm sets boot_part=n, upgrade_available=1, bootcount=0 in one write of
// the environment and reads them back. It refuses the booted slot.
func (s *Slots) Arm(ctx context.Context, n slot.Name) error {
	if err := s.checkNotBooted(ctx, "arm", n); err != nil {
		return err
	}
	return s.update(ctx, "arm", n, true)
}

// Commit sets boot_part=booted, upgrade_available=0, bootcount=0.
func (s *Slots) Commit(ctx context.Context) error {
	booted, err := s.Booted()
	if err != nil {
		return err
	}
	return s.update(ctx, "commit", booted, false)
}

// Revert sets boot_part=other than booted, upgrade_available=0,
// bootcount=0.
func (s *Slots) Revert(ctx context.Context) error {
	booted, err := s.Booted()
	if err != nil {
		return err
	}
	return s.update(ctx, "revert", booted.Other(), false)
}

func (s *Slots) update(ctx context.Context, op string, part slot.Name, trial bool) error {
	if err := s.Env.Write(ctx, bootenv.Update(part, trial)); err != nil {
		return fmt.Errorf("%s: %s: %w", s.Prefix, op, err)
	}
	env, err := s.Env.Read(ctx)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", s.Prefix, op, err)
	}
	if err := bootenv.CheckUpdated(env, part, trial); err != nil {
		return fmt.Errorf("%s: %s: %s reported success but %w", s.Prefix, op, s.Tool, err)
	}
	return nil
}

// Device returns slot n's device path.
func (s *Slots) Device(n slot.Name) string {
	if n == slot.B {
		return s.DeviceB
	}
	return s.DeviceA
}

// CheckDevices refuses, with an error wrapping slot.ErrOverwritesRunning,
// a configuration that would let the agent write the running system: slot
// devices that are one path, one file (symlinks resolved, hard links) or
// one device (two nodes with the same device number), or a kernel command
// line whose root= is the device of the slot its uptrust.slot= says is not
// booted (bootenv.CheckRoot). It returns notes on what it could not check
// and why: a slot device or root= that does not resolve, an unreadable
// command line. Booted runs the same checks every time, so nothing is
// written or armed while they fail.
func (s *Slots) CheckDevices() (notes []string, err error) {
	if notes, err = s.checkAlias(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.Cmdline)
	if err != nil {
		return append(notes, fmt.Sprintf("root= not cross-checked against %s=: %v", bootenv.SlotParam, err)), nil
	}
	note, err := s.checkRoot(string(data))
	if err != nil {
		return nil, err
	}
	if note != "" {
		notes = append(notes, note)
	}
	return notes, nil
}

// checkAlias refuses slot devices that are one file or device.
func (s *Slots) checkAlias() (notes []string, err error) {
	a, b := s.DeviceA, s.DeviceB
	if filepath.Clean(a) == filepath.Clean(b) {
		return nil, fmt.Errorf("%s: config: slot a and slot b are both %s: %w", s.Prefix, a, slot.ErrOverwritesRunning)
	}
	ida, err := devid.Stat(a)
	if err != nil {
		notes = append(notes, fmt.Sprintf("slot a device not checked against slot b's: %v", err))
	}
	idb, errb := devid.Stat(b)
	if errb != nil {
		notes = append(notes, fmt.Sprintf("slot b device not checked against slot a's: %v", errb))
	}
	if err == nil && errb == nil && ida.Same(idb) {
		return nil, fmt.Errorf("%s: config: slot a (%s) and slot b (%s) are the same file or device: %w", s.Prefix, ida, idb, slot.ErrOverwritesRunning)
	}
	return notes, nil
}

// checkRoot cross-checks root= against uptrust.slot= on cmdline.
func (s *Slots) checkRoot(cmdline string) (note string, err error) {
	note, err = bootenv.CheckRoot(cmdline, s.DeviceA, s.DeviceB)
	if errors.Is(err, bootenv.ErrRootMismatch) {
		return "", fmt.Errorf("%s: %s: %w: %w", s.Prefix, s.Cmdline, err, slot.ErrOverwritesRunning)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", s.Prefix, s.Cmdline, err)
	}
	return note, nil
}

// Booted reads the booted slot from the kernel command line, after the
// checks of CheckDevices.
func (s *Slots) Booted() (slot.Name, error) {
	if _, err := s.checkAlias(); err != nil {
		return "", err
	}
	data, err := os.ReadFile(s.Cmdline)
	if err != nil {
		return "", fmt.Errorf("%s: booted slot: %w", s.Prefix, err)
	}
	if _, err := s.checkRoot(string(data)); err != nil {
		return "", err
	}
	n, err := bootenv.BootedSlot(string(data), s.DeviceA, s.DeviceB)
	if err != nil {
		return "", fmt.Errorf("%s: booted slot: %s: %w", s.Prefix, s.Cmdline, err)
	}
	return n, nil
}

func (s *Slots) checkNotBooted(ctx context.Context, op string, n slot.Name) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s: %w", s.Prefix, op, err)
	}
	if _, err := slot.Parse(string(n)); err != nil {
		return fmt.Errorf("%s: %s: %w", s.Prefix, op, err)
	}
	booted, err := s.Booted()
	if err != nil {
		return err
	}
	if n == booted {
		return fmt.Errorf("%s: %s slot %s (%s): it is the booted slot: %w", s.Prefix, op, n, s.Device(n), slot.ErrBootedSlot)
	}
	return nil
}
