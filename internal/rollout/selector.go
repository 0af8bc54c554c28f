package rollout

import (
	"fmt"
	"slices"
	"strings"
)

// Selection filters: which of a product's devices a managed rollout
// selects. Syntax (uptrust rollout start --select):
//
//	FILTER = "" | TERM { "," TERM }
//	TERM   = KEY "=" VALUE { "|" VALUE }
//	KEY    = "version" | "hardware" | "group" | "tag" | "inventory." FIELD
//
// A device is selected when it matches every term (AND); it matches a term
// when it has one of the term's values (OR):
//
//   - version=V, hardware=H: the device's reported inventory field
//     "version" or "hardware" (the same as inventory.version and
//     inventory.hardware);
//   - group=G, tag=T: the device is in the static group G, has the tag T;
//   - inventory.F=V: the device's reported inventory field F is V.
//
// A device that did not report a field does not match a term on it. The
// empty filter selects every device. Values are compared exactly; spaces
// around keys and values are ignored. Example:
//
//	version=1.0.0|1.0.1,hardware=rev-a,group=lab,tag=eu,inventory.slot=a
//
// Selection is evaluated when a device asks (Selector.Matches), never by
// listing devices up front, so a rollout selects devices that enrol, join a
// group or change their inventory after it started.

// Selector is a parsed selection filter. The zero value selects every
// device.
type Selector struct {
	Terms []Term
}

// Term is one KEY=VALUE|VALUE term of a filter.
type Term struct {
	// Kind is "group", "tag" or "inventory".
	Kind string
	// Field is, for inventory terms, the inventory field ("version",
	// "hardware", "slot"); "" otherwise.
	Field  string
	Values []string
}

// Facts are what a selection filter looks at of one device.
type Facts struct {
	Inventory    map[string]string
	Groups, Tags []string
}

// ParseSelector parses a selection filter (syntax above). The error names
// the bad term.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for i, raw := range strings.Split(s, ",") {
		term := strings.TrimSpace(raw)
		key, val, ok := strings.Cut(term, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			return Selector{}, fmt.Errorf("rollout: --select: term %d %q is not KEY=VALUE (keys: version, hardware, group, tag, inventory.FIELD)", i+1, term)
		}
		var t Term
		switch {
		case key == "version" || key == "hardware":
			t.Kind, t.Field = "inventory", key
		case key == "group" || key == "tag":
			t.Kind = key
		case strings.HasPrefix(key, "inventory."):
			t.Kind, t.Field = "inventory", strings.TrimPrefix(key, "inventory.")
			if !validToken(t.Field) {
				return Selector{}, fmt.Errorf("rollout: --select: term %d: %q is not an inventory field name", i+1, t.Field)
			}
		default:
			return Selector{}, fmt.Errorf("rollout: --select: term %d: unknown key %q (keys: version, hardware, group, tag, inventory.FIELD)", i+1, key)
		}
		for _, v := range strings.Split(val, "|") {
			v = strings.TrimSpace(v)
			if v == "" {
				return Selector{}, fmt.Errorf("rollout: --select: term %d %q has an empty value", i+1, term)
			}
			if strings.ContainsAny(v, "= \t") {
				return Selector{}, fmt.Errorf("rollout: --select: term %d: value %q holds '=' or a space", i+1, v)
			}
			t.Values = append(t.Values, v)
		}
		sel.Terms = append(sel.Terms, t)
	}
	return sel, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Matches reports whether a device with facts f is selected.
func (s Selector) Matches(f Facts) bool {
	for _, t := range s.Terms {
		var ok bool
		switch t.Kind {
		case "group":
			ok = anyIn(t.Values, f.Groups)
		case "tag":
			ok = anyIn(t.Values, f.Tags)
		default:
			v, has := f.Inventory[t.Field]
			ok = has && slices.Contains(t.Values, v)
		}
		if !ok {
			return false
		}
	}
	return true
}

func anyIn(want, have []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// NeedsLabels reports whether the filter looks at groups or tags, so a
// caller can skip reading a device's labels when it does not.
func (s Selector) NeedsLabels() bool {
	for _, t := range s.Terms {
		if t.Kind != "inventory" {
			return true
		}
	}
	return false
}

// Names returns the values the filter names for kind ("group", "tag") or,
// for kind "inventory", the inventory fields it looks at; sorted, without
// duplicates. Callers check them (an unknown group, an undeclared field).
func (s Selector) Names(kind string) []string {
	var out []string
	for _, t := range s.Terms {
		switch {
		case t.Kind != kind:
		case kind == "inventory":
			out = append(out, t.Field)
		default:
			out = append(out, t.Values...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// String writes the filter in its canonical form: ParseSelector of it
// gives the same selector.
func (s Selector) String() string {
	parts := make([]string, len(s.Terms))
	for i, t := range s.Terms {
		key := t.Kind
		if t.Kind == "inventory" {
			key = t.Field
			if t.Field != "version" && t.Field != "hardware" {
				key = "inventory." + t.Field
			}
		}
		parts[i] = key + "=" + strings.Join(t.Values, "|")
	}
	return strings.Join(parts, ",")
}
