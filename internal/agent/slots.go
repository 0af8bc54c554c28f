package agent

import (
	"fmt"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/agent/slot/grub"
	"github.com/uptrust/uptrust/internal/agent/slot/uboot"
)

// OpenSlots builds the configured A/B backend.
func OpenSlots(c SlotConfig) (slot.Backend, error) {
	switch c.Backend {
	case "file":
		return fileslot.New(c.Dir), nil
	case "uboot":
		return uboot.New(uboot.Config{EnvConfig: c.FwEnvConfig, DefaultEnv: c.FwDefaultEnv, DeviceA: c.SlotA, DeviceB: c.SlotB, Cmdline: c.Cmdline})
	case "grub":
		return grub.New(grub.Config{EnvFile: c.GrubEnv, DeviceA: c.SlotA, DeviceB: c.SlotB, Cmdline: c.Cmdline})
	}
	return nil, fmt.Errorf("agent: slot backend %q is not available", c.Backend)
}
