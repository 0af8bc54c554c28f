// Package grub is the slot.Backend for GRUB 2, driving the environment
// block (grubenv) with grub-editenv (Debian: grub-common) and finding the
// booted slot on the kernel command line.
//
// # Bootloader side
//
// GRUB has no boot counter of its own; grub.cfg.example in this directory
// (also in ExampleConfig) is the grub.cfg snippet that implements U-Boot's
// boot-count logic with load_env and save_env and passes
// uptrust.slot=<slot> to the kernel. Because GRUB script has no arithmetic
// it counts case by case, which limits bootlimit to MaxBootLimit.
//
// # Atomicity
//
// grub-editenv rewrites its file in place (truncate, write, fsync), so a
// power loss in the middle can leave an empty or torn block. Backend never
// runs it on the live file: it copies the block to a scratch directory,
// runs grub-editenv there, checks the result and then replaces the live file
// atomically (temporary file, fsync, rename, fsync of the directory). Every
// update sets the three trial variables in one grub-editenv call, so each
// lands whole or not at all. GRUB itself later rewrites the same file in
// place with save_env; that write is a single sector.
package grub

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/bootenv"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/envslot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/tool"
	"github.com/uptrust/uptrust/internal/atomicfile"
)

// toolPkg is the Debian package to install when a tool is missing.
const toolPkg = "grub-common"

const prefix = "slot/grub"

// ExampleConfig is grub.cfg.example: the grub.cfg snippet that implements
// the bootloader side. Users edit its device lines and deploy it.
//
//go:embed grub.cfg.example
var ExampleConfig string

// MaxBootLimit is the largest bootlimit ExampleConfig can count to.
const MaxBootLimit = 9

// Defaults for empty Config fields.
const (
	DefaultEnvFile = "/boot/grub/grubenv"
	DefaultCmdline = "/proc/cmdline"
)

// envHeader starts every valid GRUB environment block.
const envHeader = "# GRUB Environment Block\n"

// Config says where the environment, the slots and the kernel command line
// are.
type Config struct {
	// EnvFile is the GRUB environment block, the file load_env and
	// save_env use. Empty means DefaultEnvFile.
	EnvFile string
	// DeviceA and DeviceB are the slot devices (or image files). Both are
	// required and must differ; CheckDevices also refuses two paths that
	// are one file or device.
	DeviceA, DeviceB string
	// Cmdline is the kernel command line file. Empty means DefaultCmdline.
	Cmdline string
	// GrubEditenv is the tool. Empty means "grub-editenv" looked up in
	// PATH.
	GrubEditenv string
}

// Backend is the GRUB slot.Backend. It keeps no state between calls and is
// safe for concurrent use; concurrent mutations each replace the whole file
// and the last one wins.
type Backend struct {
	envslot.Slots
	cfg Config
}

// env reads and writes the environment for envslot.
type env struct{ b *Backend }

func (e env) Read(ctx context.Context) (bootenv.Env, error) { return e.b.readEnv(ctx) }
func (e env) Write(ctx context.Context, vars []bootenv.Var) error {
	b := e.b
	return b.edit(ctx, false, vars)
}

var _ slot.Backend = (*Backend)(nil)

// New checks cfg and fills in defaults. It does no I/O.
func New(cfg Config) (*Backend, error) {
	if cfg.DeviceA == "" || cfg.DeviceB == "" {
		return nil, fmt.Errorf("%s: config: DeviceA and DeviceB are required", prefix)
	}
	if cfg.DeviceA == cfg.DeviceB {
		return nil, fmt.Errorf("%s: config: DeviceA and DeviceB are both %s", prefix, cfg.DeviceA)
	}
	if cfg.EnvFile == "" {
		cfg.EnvFile = DefaultEnvFile
	}
	if cfg.Cmdline == "" {
		cfg.Cmdline = DefaultCmdline
	}
	if cfg.GrubEditenv == "" {
		cfg.GrubEditenv = "grub-editenv"
	}
	b := &Backend{cfg: cfg}
	b.Slots = envslot.Slots{Prefix: prefix, Tool: "grub-editenv", Env: env{b}, DeviceA: cfg.DeviceA, DeviceB: cfg.DeviceB, Cmdline: cfg.Cmdline}
	return b, nil
}

// Provision writes the factory environment: boot_part=a,
// upgrade_available=0, bootcount=0 and bootlimit (1..MaxBootLimit). It
// creates the environment block if missing and keeps other variables.
func (b *Backend) Provision(ctx context.Context, bootlimit int) error {
	if bootlimit < 1 || bootlimit > MaxBootLimit {
		return fmt.Errorf("%s: provision: bootlimit %d: want 1..%d (the most grub.cfg.example counts to)", prefix, bootlimit, MaxBootLimit)
	}
	want := bootenv.Env{BootPart: slot.A, BootLimit: bootlimit}
	if err := b.edit(ctx, true, want.Vars()); err != nil {
		return fmt.Errorf("%s: provision: %w", prefix, err)
	}
	got, err := b.readEnv(ctx)
	if err != nil {
		return fmt.Errorf("%s: provision: %w", prefix, err)
	}
	if got != want {
		return fmt.Errorf("%s: provision: grub-editenv reported success but the environment reads %+v, want %+v", prefix, got, want)
	}
	return nil
}

// readEnv lists the environment block with grub-editenv. It checks that
// the file exists first: grub-editenv list creates a missing file.
func (b *Backend) readEnv(ctx context.Context) (bootenv.Env, error) {
	if _, err := os.Stat(b.cfg.EnvFile); errors.Is(err, fs.ErrNotExist) {
		return bootenv.Env{}, fmt.Errorf("%s missing: %w (run grub.Backend.Provision at the factory)", b.cfg.EnvFile, bootenv.ErrNotProvisioned)
	}
	out, err := tool.Run(ctx, toolPkg, b.cfg.GrubEditenv, b.cfg.EnvFile, "list")
	if err != nil {
		return bootenv.Env{}, err
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			vars[name] = value
		}
	}
	env, err := bootenv.Parse(vars)
	if errors.Is(err, bootenv.ErrNotProvisioned) {
		return bootenv.Env{}, fmt.Errorf("%s: %w (run grub.Backend.Provision at the factory)", b.cfg.EnvFile, err)
	}
	if err != nil {
		return bootenv.Env{}, fmt.Errorf("%s: %w", b.cfg.EnvFile, err)
	}
	return env, nil
}

// edit sets vars in the environment block with one grub-editenv call on a
// scratch copy, then atomically replaces the live file with the result. If
// the file is missing, create says whether to start from a blank block.
func (b *Backend) edit(ctx context.Context, create bool, vars []bootenv.Var) error {
	live := b.cfg.EnvFile
	orig, err := os.ReadFile(live)
	mode := os.FileMode(0o644)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		orig = nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s missing: %w (run grub.Backend.Provision at the factory)", live, bootenv.ErrNotProvisioned)
	case err != nil:
		return err
	default:
		if fi, err := os.Stat(live); err == nil {
			mode = fi.Mode().Perm()
		}
	}

	dir, err := os.MkdirTemp("", "uptrust-grubenv-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scratch := filepath.Join(dir, "grubenv")
	if orig == nil {
		if _, err := tool.Run(ctx, toolPkg, b.cfg.GrubEditenv, scratch, "create"); err != nil {
			return err
		}
	} else if err := os.WriteFile(scratch, orig, 0o600); err != nil {
		return err
	}
	args := []string{scratch, "set"}
	for _, v := range vars {
		args = append(args, v.Name+"="+v.Value)
	}
	if _, err := tool.Run(ctx, toolPkg, b.cfg.GrubEditenv, args...); err != nil {
		return err
	}
	block, err := os.ReadFile(scratch)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(block, []byte(envHeader)) || (orig != nil && len(block) != len(orig)) {
		return fmt.Errorf("grub-editenv produced a %d-byte block that is not a GRUB environment block of the original size (%d bytes); %s left unchanged", len(block), len(orig), live)
	}
	return atomicfile.WriteFile(live, block, mode)
}
