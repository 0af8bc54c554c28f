package rollout

import (
	"encoding/json"
	"fmt"
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
	} `json:"uptrust"`
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
