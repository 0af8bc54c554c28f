package bootenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

func vars(bp, ua, bc, bl string) map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{BootPart: bp, UpgradeAvailable: ua, BootCount: bc, BootLimit: bl} {
		if v != "-" {
			m[k] = v
		}
	}
	return m
}

func TestParse(t *testing.T) {
	e, err := Parse(vars("b", "1", "2", "3"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Env{BootPart: slot.B, UpgradeAvailable: true, BootCount: 2, BootLimit: 3}); e != want {
		t.Fatalf("Parse = %+v, want %+v", e, want)
	}
	for name, m := range map[string]map[string]string{
		"boot_part": vars("c", "0", "0", "3"),
		"upgrade":   vars("a", "2", "0", "3"),
		"bootcount": vars("a", "0", "-1", "3"),
		"bootlimit": vars("a", "0", "0", "x"),
	} {
		if _, err := Parse(m); err == nil || errors.Is(err, ErrNotProvisioned) || !strings.Contains(err.Error(), strings.SplitN(name, "_", 2)[0]) {
			t.Errorf("%s: Parse(%v) = %v, want a malformed-variable error naming it", name, m, err)
		}
	}
	for _, m := range []map[string]string{vars("-", "0", "0", "3"), vars("a", "0", "0", "-"), vars("a", "", "0", "3")} {
		if _, err := Parse(m); !errors.Is(err, ErrNotProvisioned) {
			t.Errorf("Parse(%v) = %v, want ErrNotProvisioned", m, err)
		}
	}
}

func TestVarsRoundTrip(t *testing.T) {
	e := Env{BootPart: slot.B, UpgradeAvailable: true, BootCount: 7, BootLimit: 9}
	m := map[string]string{}
	for _, v := range e.Vars() {
		m[v.Name] = v.Value
	}
	if got, err := Parse(m); err != nil || got != e {
		t.Fatalf("Parse(Vars) = %+v, %v; want %+v", got, err, e)
	}
}

func TestPowerOn(t *testing.T) {
	committed := Env{BootPart: slot.A, BootLimit: 2}
	if next, changed := committed.PowerOn(); changed || next != committed {
		t.Fatalf("PowerOn of a committed env = %+v, %v; want unchanged", next, changed)
	}
	e := Env{BootPart: slot.B, UpgradeAvailable: true, BootLimit: 2}
	want := []Env{
		{BootPart: slot.B, UpgradeAvailable: true, BootCount: 1, BootLimit: 2},
		{BootPart: slot.B, UpgradeAvailable: true, BootCount: 2, BootLimit: 2},
		{BootPart: slot.A, UpgradeAvailable: false, BootCount: 0, BootLimit: 2},
		{BootPart: slot.A, UpgradeAvailable: false, BootCount: 0, BootLimit: 2},
	}
	for i, w := range want {
		e, _ = e.PowerOn()
		if e != w {
			t.Fatalf("boot %d: %+v, want %+v", i+1, e, w)
		}
	}
}

func TestUpdateApply(t *testing.T) {
	e := Env{BootPart: slot.A, BootCount: 5, BootLimit: 3}
	got, err := e.Apply(Update(slot.B, true))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Env{BootPart: slot.B, UpgradeAvailable: true, BootLimit: 3}); got != want {
		t.Fatalf("Apply(Update(b, true)) = %+v, want %+v", got, want)
	}
	if err := CheckUpdated(got, slot.B, true); err != nil {
		t.Fatal(err)
	}
	if err := CheckUpdated(got, slot.A, false); err == nil {
		t.Fatal("CheckUpdated accepted the wrong state")
	}
}

func TestBootedSlot(t *testing.T) {
	dir := t.TempDir()
	realA := filepath.Join(dir, "mmcblk0p2")
	realB := filepath.Join(dir, "mmcblk0p3")
	linkA := filepath.Join(dir, "rootfs-a")
	for _, p := range []string{realA, realB} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(realA, linkA); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmdline string
		want    slot.Name
		errHas  string
	}{
		{"console=ttyS0 uptrust.slot=b root=" + realA, slot.B, ""},
		{"uptrust.slot=a uptrust.slot=b", slot.B, ""},
		{"root=" + realB + " rw", slot.B, ""},
		{"root=" + realA, slot.A, ""},
		{"quiet root=" + realA + "\n", slot.A, ""}, // devA given as a symlink below
		{"uptrust.slot=c", "", "uptrust.slot=\"c\""},
		{"console=ttyS0", "", "neither uptrust.slot= nor root="},
		{"root=PARTUUID=1234-02", "", "matches neither"},
		{"root=" + filepath.Join(dir, "other"), "", "matches neither"},
	}
	for _, tc := range tests {
		got, err := BootedSlot(tc.cmdline, linkA, realB)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("BootedSlot(%q) = %s, %v; want error containing %q", tc.cmdline, got, err, tc.errHas)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("BootedSlot(%q) = %s, %v; want %s", tc.cmdline, got, err, tc.want)
		}
	}
}
