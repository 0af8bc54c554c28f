package agent

import (
	"fmt"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
)

// OpenSlots builds the configured A/B backend.
func OpenSlots(c SlotConfig) (slot.Backend, error) {
	switch c.Backend {
	case "file":
		return fileslot.New(c.Dir), nil
	}
	return nil, fmt.Errorf("agent: slot backend %q is not available", c.Backend)
}
