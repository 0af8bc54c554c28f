package devauth

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseDictionary(t *testing.T) {
	ms, err := parseDictionary(`a=("x" "y\"z";p);q=1, b=:AQI=:, c, d=-15;e=?0, f=tok/en:x, a=("last")`)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("%d members, want 5 (a twice keeps the last)", len(ms))
	}
	if a := ms[0]; a.key != "a" || !a.isList || len(a.list) != 1 || a.list[0].item.str != "last" {
		t.Errorf("a = %+v", a)
	}
	if b := ms[1]; b.item.kind != kindBytes || string(b.item.bytes) != "\x01\x02" {
		t.Errorf("b = %+v", b)
	}
	if c := ms[2]; c.item.kind != kindBoolean || !c.item.bool {
		t.Errorf("c = %+v", c)
	}
	if d := ms[3]; d.item.num != -15 || len(d.params) != 1 || d.params[0].val.kind != kindBoolean || d.params[0].val.bool {
		t.Errorf("d = %+v", d)
	}
	if f := ms[4]; f.item.kind != kindToken || f.item.str != "tok/en:x" {
		t.Errorf("f = %+v", f)
	}

	ms, err = parseDictionary(`a=("x" "y\"z";p);q=1`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(appendInnerList(nil, ms[0].list, ms[0].params)); got != `("x" "y\"z";p);q=1` {
		t.Errorf("re-serialised %s", got)
	}

	for _, bad := range []string{
		`A=1`, `a=1,`, `a=1 b=2`, `a=(1`, `a=("x"`, `a="unterminated`, `a="bad\q"`,
		`a=1.5`, `a=1234567890123456`, `a=:not base64*:`, `a=:AQI=`, `a=?2`, `a=@`,
		"a=\"tab\there\"", `a=("x""y")`, `a=1;B=2`,
	} {
		if _, err := parseDictionary(bad); err == nil {
			t.Errorf("parseDictionary(%q) accepted it", bad)
		}
	}
	var members, params strings.Builder
	for i := range maxMembers + 1 {
		fmt.Fprintf(&members, "k%d=1, ", i)
		fmt.Fprintf(&params, ";p%d", i)
	}
	for _, big := range []string{
		strings.TrimSuffix(members.String(), ", "),
		"a=(" + strings.Repeat(`"x" `, maxMembers+1) + ")",
		"a=1" + params.String(),
	} {
		if _, err := parseDictionary(big); err != errTooLarge {
			t.Errorf("parseDictionary of %d bytes = %v, want errTooLarge", len(big), err)
		}
	}
	if ms, err := parseDictionary(""); err != nil || len(ms) != 0 {
		t.Errorf("empty field: %v, %v", ms, err)
	}
}
