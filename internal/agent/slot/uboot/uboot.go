// Package uboot is the slot.Backend for U-Boot, driving the environment with
// fw_printenv and fw_setenv (Debian: u-boot-tools, which brings
// libubootenv-tool) and finding the booted slot on the kernel command line.
//
// # Bootloader side
//
// U-Boot must be built with CONFIG_BOOTCOUNT_LIMIT and CONFIG_BOOTCOUNT_ENV:
// it then increments bootcount at every boot while upgrade_available=1 and
// runs altbootcmd instead of bootcmd once bootcount exceeds bootlimit. A
// matching environment (device names are examples):
//
//	boot_part=a
//	upgrade_available=0
//	bootcount=0
//	bootlimit=3
//	uptrust_root=if test "${boot_part}" = b; then setenv uptrust_dev 0:3; setenv uptrust_rootfs /dev/mmcblk0p3; else setenv uptrust_dev 0:2; setenv uptrust_rootfs /dev/mmcblk0p2; fi
//	bootcmd=run uptrust_root; setenv bootargs console=ttyS0 root=${uptrust_rootfs} rootwait ro uptrust.slot=${boot_part}; load mmc ${uptrust_dev} ${kernel_addr_r} /boot/zImage; load mmc ${uptrust_dev} ${fdt_addr_r} /boot/board.dtb; bootz ${kernel_addr_r} - ${fdt_addr_r}
//	altbootcmd=if test "${boot_part}" = a; then setenv boot_part b; else setenv boot_part a; fi; setenv upgrade_available 0; setenv bootcount 0; saveenv; run bootcmd
//
// uptrust.slot= on the kernel command line is how Backend knows the booted
// slot; without it, root= must name one of the slot devices. With both,
// root= must not be the other slot's device (see CheckDevices).
//
// # Tools and atomicity
//
// Every update is one fw_setenv -s call, so the three trial variables are
// written in one environment store. With a single environment copy
// libubootenv rewrites it in place: a power loss during that write leaves a
// bad CRC and U-Boot falls back to its default environment. Configure a
// redundant environment (two lines in fw_env.config, and
// CONFIG_SYS_REDUNDAND_ENVIRONMENT in U-Boot) to make each update
// all-or-nothing: the tools write the older copy and flip its flag.
//
// The -s script syntax used here, "name=value" per line, is libubootenv's,
// which is what Debian, Yocto and Buildroot ship as fw_setenv. U-Boot's own
// legacy tools/env expects "name value"; with it, updates do not land and
// every mutation fails its read-back check rather than passing silently.
package uboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/bootenv"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/envslot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/tool"
)

// toolPkg is the Debian package to install when a tool is missing.
const toolPkg = "u-boot-tools and libubootenv-tool"

const prefix = "slot/uboot"

// Defaults for empty Config fields.
const (
	DefaultEnvConfig = "/etc/fw_env.config"
	DefaultCmdline   = "/proc/cmdline"
)

// Config says where the environment, the slots and the kernel command line
// are.
type Config struct {
	// EnvConfig is the fw_env.config file, passed to the tools with -c.
	// Each line is "device offset size [sector-size [sectors]]", e.g.
	// "/dev/mmcblk0 0x3f8000 0x4000"; two lines make a redundant
	// environment. A regular file works as the device if it exists and is
	// at least offset+size long. Empty means DefaultEnvConfig.
	EnvConfig string
	// DefaultEnv is the environment the tools load when the stored one
	// has a bad CRC (never written, or torn by a power loss), passed with
	// -f; one "name=value" per line. It should be U-Boot's compiled-in
	// default environment, so that what the agent reads is what U-Boot
	// would use. Empty leaves the tools' own default,
	// /etc/u-boot-initial-env.
	DefaultEnv string
	// DeviceA and DeviceB are the slot devices (or image files). Both are
	// required and must differ; CheckDevices also refuses two paths that
	// are one file or device.
	DeviceA, DeviceB string
	// Cmdline is the kernel command line file. Empty means DefaultCmdline.
	Cmdline string
	// FwPrintenv and FwSetenv are the tools. Empty means "fw_printenv" and
	// "fw_setenv" looked up in PATH.
	FwPrintenv, FwSetenv string
}

// Backend is the U-Boot slot.Backend. It keeps no state between calls and
// is safe for concurrent use; libubootenv serialises the tools with a lock
// file, and concurrent mutations leave the last one's values.
type Backend struct {
	envslot.Slots
	cfg Config
}

// env reads and writes the environment for envslot.
type env struct{ b *Backend }

func (e env) Read(ctx context.Context) (bootenv.Env, error) { return e.b.readEnv(ctx) }
func (e env) Write(ctx context.Context, vars []bootenv.Var) error {
	b := e.b
	return b.setenv(ctx, vars)
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
	if cfg.EnvConfig == "" {
		cfg.EnvConfig = DefaultEnvConfig
	}
	if cfg.Cmdline == "" {
		cfg.Cmdline = DefaultCmdline
	}
	if cfg.FwPrintenv == "" {
		cfg.FwPrintenv = "fw_printenv"
	}
	if cfg.FwSetenv == "" {
		cfg.FwSetenv = "fw_setenv"
	}
	b := &Backend{cfg: cfg}
	b.Slots = envslot.Slots{Prefix: prefix, Tool: "fw_setenv", Env: env{b}, DeviceA: cfg.DeviceA, DeviceB: cfg.DeviceB, Cmdline: cfg.Cmdline}
	return b, nil
}

// Provision writes the factory environment: boot_part=a,
// upgrade_available=0, bootcount=0 and bootlimit (at least 1; U-Boot treats
// 0 as no limit). Other variables are kept; if the stored environment is
// blank or corrupt, it starts from DefaultEnv.
func (b *Backend) Provision(ctx context.Context, bootlimit int) error {
	if bootlimit < 1 {
		return fmt.Errorf("%s: provision: bootlimit %d: want at least 1", prefix, bootlimit)
	}
	want := bootenv.Env{BootPart: slot.A, BootLimit: bootlimit}
	if err := b.setenv(ctx, want.Vars()); err != nil {
		return fmt.Errorf("%s: provision: %w", prefix, err)
	}
	got, err := b.readEnv(ctx)
	if err != nil {
		return fmt.Errorf("%s: provision: %w", prefix, err)
	}
	if got != want {
		return fmt.Errorf("%s: provision: fw_setenv reported success but the environment reads %+v, want %+v", prefix, got, want)
	}
	return nil
}

// toolArgs are the arguments every tool call starts with.
func (b *Backend) toolArgs() []string {
	args := []string{"-c", b.cfg.EnvConfig}
	if b.cfg.DefaultEnv != "" {
		args = append(args, "-f", b.cfg.DefaultEnv)
	}
	return args
}

// readEnv asks fw_printenv for the four variables by name. libubootenv
// prints "name=" for an unset variable, which Parse reports as not
// provisioned.
func (b *Backend) readEnv(ctx context.Context) (bootenv.Env, error) {
	names := []string{bootenv.BootPart, bootenv.UpgradeAvailable, bootenv.BootCount, bootenv.BootLimit}
	out, err := tool.Run(ctx, toolPkg, b.cfg.FwPrintenv, append(b.toolArgs(), names...)...)
	if err != nil {
		return bootenv.Env{}, err
	}
	vars := make(map[string]string, len(names))
	for _, line := range strings.Split(string(out), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			vars[name] = value
		}
	}
	env, err := bootenv.Parse(vars)
	if errors.Is(err, bootenv.ErrNotProvisioned) {
		return bootenv.Env{}, fmt.Errorf("environment in %s: %w (run uboot.Backend.Provision at the factory)", b.cfg.EnvConfig, err)
	}
	if err != nil {
		return bootenv.Env{}, fmt.Errorf("environment in %s: %w", b.cfg.EnvConfig, err)
	}
	return env, nil
}

// setenv writes vars with one "fw_setenv -s script" call, so they land in
// one environment store.
func (b *Backend) setenv(ctx context.Context, vars []bootenv.Var) error {
	var script bytes.Buffer
	for _, v := range vars {
		fmt.Fprintf(&script, "%s=%s\n", v.Name, v.Value)
	}
	f, err := os.CreateTemp("", "uptrust-fw_setenv-*.txt")
	if err != nil {
		return fmt.Errorf("fw_setenv script: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(script.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fw_setenv script: %w", err)
	}
	_, err = tool.Run(ctx, toolPkg, b.cfg.FwSetenv, append(b.toolArgs(), "-s", f.Name())...)
	return err
}
