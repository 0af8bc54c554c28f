package rollout

import (
	"strings"
	"testing"
)

func TestParseSelectorMatches(t *testing.T) {
	dev := Facts{Inventory: map[string]string{"version": "1.0.0", "hardware": "rev-a", "slot": "a"},
		Groups: []string{"lab"}, Tags: []string{"eu", "beta"}}
	for _, c := range []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"version=1.0.0,hardware=rev-a,group=lab,tag=eu,inventory.slot=a", true},
		{"version=0.9|1.0.0", true},
		{"version=0.9", false},
		{"hardware=rev-b", false},
		{"group=field", false},
		{"group=field|lab", true},
		{"tag=us", false},
		{"tag=beta", true},
		{"inventory.slot=b", false},
		{"inventory.bootloader_version=1", false}, // not reported: no match
		{" group = lab , tag = eu ", true},
		{"group=lab,group=field", false}, // every term must match
	} {
		s, err := ParseSelector(c.filter)
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", c.filter, err)
			continue
		}
		if got := s.Matches(dev); got != c.want {
			t.Errorf("%q matches %v, want %v", c.filter, got, c.want)
		}
		again, err := ParseSelector(s.String())
		if err != nil || again.String() != s.String() {
			t.Errorf("String %q does not parse back: %v", s.String(), err)
		}
	}
}

func TestParseSelectorRefuses(t *testing.T) {
	for _, c := range []struct{ filter, want string }{
		{"lab", "not KEY=VALUE"},
		{"=lab", "not KEY=VALUE"},
		{"colour=red", `unknown key "colour"`},
		{"group=", "empty value"},
		{"group=lab|", "empty value"},
		{"inventory.=x", "not an inventory field"},
		{"inventory.Slot=x", "not an inventory field"},
		{"tag=a=b", "'='"},
		{"version=1.0,", "term 2"},
	} {
		_, err := ParseSelector(c.filter)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--select") {
			t.Errorf("ParseSelector(%q) = %v, want an error naming --select and %q", c.filter, err, c.want)
		}
	}
}

func TestSelectorNames(t *testing.T) {
	s, err := ParseSelector("group=lab|b,tag=eu,version=1,inventory.slot=a,group=lab")
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(s.Names("group"), ","); g != "b,lab" {
		t.Errorf("groups %q", g)
	}
	if f := strings.Join(s.Names("inventory"), ","); f != "slot,version" {
		t.Errorf("fields %q", f)
	}
	if !s.NeedsLabels() {
		t.Error("NeedsLabels false with group terms")
	}
	if s, _ := ParseSelector("version=1"); s.NeedsLabels() {
		t.Error("NeedsLabels true for an inventory-only filter")
	}
}
