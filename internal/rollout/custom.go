package rollout

import (
	"encoding/json"
	"fmt"
	"time"
)

// Custom is the shape of the custom metadata of a release's target in the
// fleet repository: {"uptrust":{"rollout":{"percent":25,"halted":false,
// "start":"2026-01-02T03:04:05Z"}}}. The manufacturer's side writes it
// (MarshalCustom) when it starts or changes a rollout; devices and the
// compliance check read the rule from it (RuleFromCustom). Devices in the
// field parse this shape: its keys never change.
type Custom struct {
	Uptrust struct {
		// Rollout is nil when the metadata carries no rule.
		Rollout *Rule `json:"rollout"`
		// Managed is set only in a managed device's own fleet view (the
		// per-device view of managed mode); nil in the shared view.
		Managed *ManagedCustom `json:"managed,omitempty"`
	} `json:"uptrust"`
}

// ManagedCustom is what a managed device's own fleet view says about the
// rollout that offers it a release: {"rollout":"r-…","wave":2,
// "window":"Mon-Fri 02:00-04:00 Europe/Berlin"}. The target that carries
// it also carries a Rule with percent 100 (the device is admitted: the
// server chose it), so agents that do not read Managed install as before.
type ManagedCustom struct {
	// Rollout is the rollout's ID.
	Rollout string `json:"rollout"`
	// Wave is the device's wave, 1-based.
	Wave int `json:"wave"`
	// Window is the maintenance window (ParseWindow syntax) the device
	// installs in; "" when it may install at any time. Downloading is
	// allowed at any time.
	Window string `json:"window,omitempty"`
}

// Assignment is what one managed device should run now, as the server's
// rollouts decide it (package project computes it; the per-device fleet
// view publishes it).
type Assignment struct {
	// RolloutID owns the device (Owner); Version is the release it is
	// offered, in Wave (1-based), from Start on.
	RolloutID string
	Version   string
	Wave      int
	Start     time.Time
	// Window is the rollout's maintenance window ("" for none).
	Window string
}

// MarshalCustom returns the fleet target custom metadata that offers a
// release under r.
func MarshalCustom(r Rule) ([]byte, error) {
	var c Custom
	c.Uptrust.Rollout = &r
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("rollout: custom metadata: %w", err)
	}
	return b, nil
}

// RuleFromCustom reads the rule from a fleet target's custom metadata. It
// returns nil and no error when the metadata has no "uptrust"."rollout";
// it does not validate the rule.
func RuleFromCustom(raw []byte) (*Rule, error) {
	var c Custom
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("rollout: custom metadata: %w", err)
	}
	return c.Uptrust.Rollout, nil
}
