package agent

import (
	"fmt"
	"log/slog"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/agent/slot/grub"
	"github.com/uptrust/uptrust/internal/agent/slot/uboot"
)

// deviceChecker is a backend over slot devices named in the config (uboot,
// grub) that can tell whether they would let the agent write the running
// system.
type deviceChecker interface {
	// CheckDevices fails (wrapping slot.ErrOverwritesRunning) when slot_a
	// and slot_b are one file or device, or when the kernel command line's
	// root= is the other slot's device than its uptrust.slot= names. It
	// returns notes on what it could not check.
	CheckDevices() (notes []string, err error)
}

// OpenSlots builds the configured A/B backend. For the uboot and grub
// backends it first refuses a configuration that would overwrite the
// running system (see deviceChecker) and logs to log, when not nil, what
// it could not check; the agent, provisioning and status all open the
// slots through it, so none of them runs on such a configuration.
func OpenSlots(c SlotConfig, log *slog.Logger) (slot.Backend, error) {
	var b slot.Backend
	var err error
	switch c.Backend {
	case "file":
		return fileslot.New(c.Dir), nil
	case "uboot":
		b, err = uboot.New(uboot.Config{EnvConfig: c.FwEnvConfig, DefaultEnv: c.FwDefaultEnv, DeviceA: c.SlotA, DeviceB: c.SlotB, Cmdline: c.Cmdline})
	case "grub":
		b, err = grub.New(grub.Config{EnvFile: c.GrubEnv, DeviceA: c.SlotA, DeviceB: c.SlotB, Cmdline: c.Cmdline})
	default:
		return nil, fmt.Errorf("agent: slot backend %q is not available", c.Backend)
	}
	if err != nil {
		return nil, err
	}
	if dc, ok := b.(deviceChecker); ok {
		notes, err := dc.CheckDevices()
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		for _, n := range notes {
			if log != nil {
				log.Warn("slot configuration only partly checked", "slot_backend", c.Backend, "note", n)
			}
		}
	}
	return b, nil
}
