// Package slot is the A/B contract between the agent and the bootloader: two
// slots, one booted and one inactive, and a bootloader environment that
// tries a freshly written slot a limited number of times before falling back.
//
// The variables follow U-Boot's boot-count convention, used by all backends:
//
//	boot_part          slot the bootloader boots: "a" or "b"
//	upgrade_available  "1" while a newly armed slot is on trial, else "0"
//	bootcount          boots attempted during the trial
//	bootlimit          attempts allowed before the bootloader falls back
//
// On every boot with upgrade_available=1 the bootloader increments bootcount;
// when bootcount exceeds bootlimit it switches boot_part to the other slot and
// clears upgrade_available (U-Boot's altbootcmd). The agent arms a slot with
// boot_part=<new>, upgrade_available=1, bootcount=0, and after a good health
// check commits with upgrade_available=0, bootcount=0.
package slot

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrBootedSlot is returned (wrapped) by OpenWriter and Arm when asked to
// write or arm the slot the running system was booted from: overwriting it
// would destroy the fallback, and arming it would make the unverified other
// slot the fallback.
var ErrBootedSlot = errors.New("slot: refusing to use the booted slot")

// ErrOverwritesRunning is returned (wrapped) by backends whose
// configuration would make the agent write the running system: two slot
// devices that are one file or one device, or a kernel command line whose
// root= is the device of the slot its uptrust.slot= says is not booted.
var ErrOverwritesRunning = errors.New("slot: refusing a configuration that would overwrite the running system")

// Name names a slot: "a" or "b".
type Name string

// The two slots.
const (
	A Name = "a"
	B Name = "b"
)

// Other returns the slot that is not n.
func (n Name) Other() Name {
	if n == A {
		return B
	}
	return A
}

// Parse validates a slot name.
func Parse(s string) (Name, error) {
	switch Name(s) {
	case A, B:
		return Name(s), nil
	}
	return "", fmt.Errorf("slot: invalid slot name %q (want a or b)", s)
}

// State is what the bootloader environment says now.
type State struct {
	// Booted is the slot the running system was booted from.
	Booted Name
	// Primary is the slot the bootloader will boot next (boot_part).
	Primary Name
	// Trial is true while upgrade_available=1.
	Trial bool
	// BootCount and BootLimit are the trial counters.
	BootCount, BootLimit int
}

// Writer receives an image for a slot. Write calls are sequential from
// the offset the writer was opened at (0 for OpenWriter); Sync makes
// everything written durable; Close releases the slot without implying Sync.
type Writer interface {
	io.Writer
	Sync() error
	Close() error
}

// Backend is one bootloader + storage pair. Methods are safe to call again
// after a power loss: each leaves the environment either unchanged or fully
// changed, and repeating Arm, Commit or Revert gives the same environment as
// calling it once. Arm, Commit and Revert write all three trial variables in
// one update and never read-modify-write them, so the result does not depend
// on what a power loss left behind.
//
// The conformance suite in package slottest checks every backend against
// this contract.
type Backend interface {
	// State reads the bootloader environment and the booted slot.
	State(ctx context.Context) (State, error)
	// OpenWriter opens slot n for writing an image from offset 0. It
	// refuses the booted slot with an error wrapping ErrBootedSlot.
	OpenWriter(ctx context.Context, n Name) (Writer, error)
	// OpenWriterAt opens slot n for writing from byte offset off >= 0, to
	// resume an image whose first off bytes an earlier writer made durable.
	// It never truncates or shrinks the slot and never changes the bytes
	// before off. It fails if the slot holds fewer than off bytes (for
	// example a file backend's image file that was replaced since), and
	// refuses the booted slot with an error wrapping ErrBootedSlot.
	OpenWriterAt(ctx context.Context, n Name, off int64) (Writer, error)
	// OpenReader opens slot n for reading. The reader should also
	// implement io.ReaderAt: the agent applies a delta only with random
	// access to the active slot, and otherwise downloads the full payload.
	OpenReader(ctx context.Context, n Name) (io.ReadCloser, error)
	// Arm makes n the slot to try on the next boot:
	// boot_part=n, upgrade_available=1, bootcount=0. It refuses the
	// booted slot with an error wrapping ErrBootedSlot.
	Arm(ctx context.Context, n Name) error
	// Commit accepts the booted slot: boot_part=booted,
	// upgrade_available=0, bootcount=0.
	Commit(ctx context.Context) error
	// Revert gives up a trial from the running system: boot_part=other
	// than booted, upgrade_available=0, bootcount=0. The caller reboots.
	Revert(ctx context.Context) error
}

// BootCounter is implemented by simulated backends, whose power cycles do
// not restart the kernel. BootCount changes with every simulated power
// cycle, so that the agent can tell a new (simulated) boot from a restart
// of its own process; real backends do not implement it, and the kernel's
// boot ID is used alone.
type BootCounter interface {
	BootCount(ctx context.Context) (uint64, error)
}
