// Package bootenv is what the slot backends share: the four boot-count
// variables, the decision the bootloader takes at power-on, and finding the
// booted slot on the kernel command line.
//
// Everything here is pure: bytes and maps in, values or errors out. Errors
// carry no package prefix; each backend wraps them with its own
// ("slot/uboot: ...").
package bootenv

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

// The variable names, as stored in every bootloader environment.
const (
	BootPart         = "boot_part"
	UpgradeAvailable = "upgrade_available"
	BootCount        = "bootcount"
	BootLimit        = "bootlimit"
)

// ErrNotProvisioned means a boot-count variable is missing: the environment
// was never provisioned (or was lost and replaced by a default that lacks
// it).
var ErrNotProvisioned = errors.New("boot environment not provisioned")

// Env is the boot-count environment.
type Env struct {
	BootPart         slot.Name
	UpgradeAvailable bool
	BootCount        int
	BootLimit        int
}

// Var is one variable assignment. Order matters to tools that print or set
// variables in sequence, so updates are slices, not maps.
type Var struct {
	Name, Value string
}

// Parse reads the four variables from vars. A missing or empty variable is
// ErrNotProvisioned; a malformed one is a plain error naming it.
func Parse(vars map[string]string) (Env, error) {
	for _, name := range []string{BootPart, UpgradeAvailable, BootCount, BootLimit} {
		if vars[name] == "" {
			return Env{}, fmt.Errorf("%w: %s is not set", ErrNotProvisioned, name)
		}
	}
	var e Env
	var err error
	if e.BootPart, err = slot.Parse(vars[BootPart]); err != nil {
		return Env{}, fmt.Errorf("%s=%q: want a or b", BootPart, vars[BootPart])
	}
	switch v := vars[UpgradeAvailable]; v {
	case "0":
	case "1":
		e.UpgradeAvailable = true
	default:
		return Env{}, fmt.Errorf("%s=%q: want 0 or 1", UpgradeAvailable, v)
	}
	if e.BootCount, err = parseCount(BootCount, vars[BootCount]); err != nil {
		return Env{}, err
	}
	if e.BootLimit, err = parseCount(BootLimit, vars[BootLimit]); err != nil {
		return Env{}, err
	}
	return e, nil
}

func parseCount(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a non-negative decimal integer", name, v)
	}
	return n, nil
}

// Vars returns all four variables in a fixed order.
func (e Env) Vars() []Var {
	return []Var{
		{BootPart, string(e.BootPart)},
		{UpgradeAvailable, flag(e.UpgradeAvailable)},
		{BootCount, strconv.Itoa(e.BootCount)},
		{BootLimit, strconv.Itoa(e.BootLimit)},
	}
}

// State combines the environment with the booted slot.
func (e Env) State(booted slot.Name) slot.State {
	return slot.State{
		Booted:    booted,
		Primary:   e.BootPart,
		Trial:     e.UpgradeAvailable,
		BootCount: e.BootCount,
		BootLimit: e.BootLimit,
	}
}

// PowerOn is the bootloader's decision at power-on, as U-Boot takes it with
// CONFIG_BOOTCOUNT_LIMIT and CONFIG_BOOTCOUNT_ENV: during a trial bootcount
// is incremented, and once it exceeds bootlimit altbootcmd switches
// boot_part to the other slot and ends the trial. It returns the environment
// to save before booting e.BootPart, and whether it differs from e.
func (e Env) PowerOn() (next Env, changed bool) {
	if !e.UpgradeAvailable {
		return e, false
	}
	e.BootCount++
	if e.BootCount > e.BootLimit {
		e.BootPart = e.BootPart.Other()
		e.UpgradeAvailable = false
		e.BootCount = 0
	}
	return e, true
}

// Update returns the three variables the agent writes, always together and
// always absolute (never derived from what is stored): boot_part=part,
// upgrade_available=trial, bootcount=0. Arm is Update(n, true), Commit is
// Update(booted, false), Revert is Update(booted.Other(), false).
func Update(part slot.Name, trial bool) []Var {
	return []Var{
		{BootPart, string(part)},
		{UpgradeAvailable, flag(trial)},
		{BootCount, "0"},
	}
}

// Apply returns e with vars applied; vars must come from Update or Vars.
func (e Env) Apply(vars []Var) (Env, error) {
	m := make(map[string]string, 4)
	for _, v := range e.Vars() {
		m[v.Name] = v.Value
	}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return Parse(m)
}

// CheckUpdated reports whether e shows the result of Update(part, trial). It
// lets a backend verify that a tool that claimed success really wrote the
// variables.
func CheckUpdated(e Env, part slot.Name, trial bool) error {
	if e.BootPart != part || e.UpgradeAvailable != trial || e.BootCount != 0 {
		return fmt.Errorf("environment reads %s=%s %s=%s %s=%d after the update, want %s=%s %s=%s %s=0",
			BootPart, e.BootPart, UpgradeAvailable, flag(e.UpgradeAvailable), BootCount, e.BootCount,
			BootPart, part, UpgradeAvailable, flag(trial), BootCount)
	}
	return nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
