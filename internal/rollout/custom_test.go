package rollout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The bytes are what devices in the field parse.
func TestCustomRoundTrip(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		r    Rule
		want string
	}{
		{Rule{Percent: 25, Start: start}, `{"uptrust":{"rollout":{"percent":25,"halted":false,"start":"2026-01-02T03:04:05Z"}}}`},
		{Rule{Percent: 100, Halted: true, Start: start}, `{"uptrust":{"rollout":{"percent":100,"halted":true,"start":"2026-01-02T03:04:05Z"}}}`},
		{Rule{}, `{"uptrust":{"rollout":{"percent":0,"halted":false,"start":"0001-01-01T00:00:00Z"}}}`},
	} {
		b, err := MarshalCustom(tc.r)
		if err != nil || string(b) != tc.want {
			t.Errorf("MarshalCustom(%+v) = %s, %v; want %s", tc.r, b, err, tc.want)
		}
		got, err := RuleFromCustom(b)
		if err != nil || got == nil || got.Percent != tc.r.Percent || got.Halted != tc.r.Halted || !got.Start.Equal(tc.r.Start) {
			t.Errorf("RuleFromCustom(%s) = %+v, %v; want %+v", b, got, err, tc.r)
		}
	}
	// The same bytes the agent decodes into Custom itself.
	var c Custom
	b, _ := MarshalCustom(Rule{Percent: 7, Start: start})
	if err := json.Unmarshal(b, &c); err != nil || c.Uptrust.Rollout == nil || c.Uptrust.Rollout.Percent != 7 {
		t.Errorf("Custom from %s = %+v, %v", b, c, err)
	}
}

func TestRuleFromCustomWithoutRule(t *testing.T) {
	for _, in := range []string{`{}`, `{"uptrust":{}}`, `{"uptrust":{"rollout":null}}`, `{"uptrust":null}`, `null`, `{"other":1,"uptrust":{"x":2}}`} {
		if r, err := RuleFromCustom([]byte(in)); err != nil || r != nil {
			t.Errorf("RuleFromCustom(%s) = %+v, %v; want no rule and no error", in, r, err)
		}
	}
}

func TestRuleFromCustomMalformed(t *testing.T) {
	for _, in := range []string{
		``, `{`, `[]`, `"x"`, `{"uptrust":[]}`, `{"uptrust":{"rollout":5}}`,
		`{"uptrust":{"rollout":{"percent":"25"}}}`, `{"uptrust":{"rollout":{"halted":"yes"}}}`,
		`{"uptrust":{"rollout":{"start":"yesterday"}}}`, `{"uptrust":{"rollout":{"percent":2.5}}}`,
	} {
		if r, err := RuleFromCustom([]byte(in)); err == nil || !strings.HasPrefix(err.Error(), "rollout: custom metadata: ") {
			t.Errorf("RuleFromCustom(%q) = %+v, %v; want a rollout error", in, r, err)
		}
	}
}
