package bootenv

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

// SlotParam is the kernel command-line parameter the bootloader script adds
// to name the slot it booted: uptrust.slot=a or uptrust.slot=b.
const SlotParam = "uptrust.slot"

// BootedSlot tells which slot the running kernel came from, given its
// command line (the content of /proc/cmdline) and the two slot devices.
//
// uptrust.slot= wins when present (the last occurrence, as the kernel lets
// later parameters override earlier ones). Otherwise root= must name one of
// the devices, either literally or after resolving symlinks on both sides
// (root=/dev/mmcblk0p2 matches /dev/disk/by-partlabel/rootfs-a if that links
// to it). root=PARTUUID=..., LABEL=... and the like are not resolved: use
// uptrust.slot= with them. CheckRoot cross-checks the two when both are
// present; BootedSlot does not.
func BootedSlot(cmdline string, devA, devB string) (slot.Name, error) {
	param, root, haveParam, haveRoot := parse(cmdline)
	if haveParam {
		n, err := slot.Parse(param)
		if err != nil {
			return "", fmt.Errorf("kernel command line has %s=%q: want a or b", SlotParam, param)
		}
		return n, nil
	}
	if !haveRoot {
		return "", fmt.Errorf("kernel command line has neither %s= nor root=; add %s=a|b in the bootloader script", SlotParam, SlotParam)
	}
	rootReal := resolve(root)
	for _, c := range []struct {
		n   slot.Name
		dev string
	}{{slot.A, devA}, {slot.B, devB}} {
		if root == c.dev || rootReal == resolve(c.dev) {
			return c.n, nil
		}
	}
	return "", fmt.Errorf("kernel command line has no %s= and root=%s matches neither slot device (a=%s, b=%s); add %s=a|b in the bootloader script",
		SlotParam, root, devA, devB, SlotParam)
}

// resolve returns the path with symlinks evaluated, or "" when it is not an
// existing absolute path (so two unresolvable values never match).
func resolve(p string) string {
	if !filepath.IsAbs(p) {
		return ""
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}

// parse returns the last uptrust.slot= and root= values of a kernel
// command line and whether each is present.
func parse(cmdline string) (param, root string, haveParam, haveRoot bool) {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, SlotParam+"="); ok {
			param, haveParam = v, true
		}
		if v, ok := strings.CutPrefix(f, "root="); ok {
			root, haveRoot = v, true
		}
	}
	return param, root, haveParam, haveRoot
}
