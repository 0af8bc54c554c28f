package bootenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/internal/devid"
)

// DiskDir is where udev links partitions by PARTUUID, UUID, LABEL and
// PARTLABEL (by-partuuid/, by-uuid/, by-label/, by-partlabel/).
const DiskDir = "/dev/disk"

// ErrRootMismatch is returned (wrapped) by CheckRoot when root= names the
// other slot's device than uptrust.slot= names as booted.
var ErrRootMismatch = errors.New("root= and uptrust.slot= name different slots")

// CheckRoot cross-checks the two ways a kernel command line names the
// booted slot, when it has both: root= must not be the device of the slot
// that uptrust.slot= says is not booted. Otherwise the agent, trusting
// uptrust.slot=, would write its image over the running system. It fails
// with an error wrapping ErrRootMismatch that says which slot each names.
//
// It checks nothing, and returns why in note, when either parameter is
// missing, when root= does not resolve to an existing path (root=/dev/...
// directly; PARTUUID=, UUID=, LABEL= and PARTLABEL= through the links in
// DiskDir; other forms not at all), when a slot device does not exist, or
// when root= is neither slot device (a device-mapper or initramfs root
// over the slot, for example).
func CheckRoot(cmdline, devA, devB string) (note string, err error) {
	return checkRoot(cmdline, devA, devB, DiskDir)
}

func checkRoot(cmdline, devA, devB, diskDir string) (string, error) {
	param, root, haveParam, haveRoot := parse(cmdline)
	if !haveParam || !haveRoot {
		return "", nil
	}
	booted, err := slot.Parse(param)
	if err != nil {
		return "", fmt.Errorf("kernel command line has %s=%q: want a or b", SlotParam, param)
	}
	path, why := rootPath(root, diskDir)
	if why != "" {
		return fmt.Sprintf("root=%s not cross-checked against %s=%s: %s", root, SlotParam, param, why), nil
	}
	rootID, err := devid.Stat(path)
	if err != nil {
		return fmt.Sprintf("root=%s not cross-checked against %s=%s: %v", root, SlotParam, param, err), nil
	}
	devs := map[slot.Name]string{slot.A: devA, slot.B: devB}
	ids := map[slot.Name]devid.ID{}
	for _, n := range []slot.Name{booted, booted.Other()} {
		id, err := devid.Stat(devs[n])
		if err != nil {
			return fmt.Sprintf("root=%s not cross-checked against %s=%s: slot %s device: %v", root, SlotParam, param, n, err), nil
		}
		ids[n] = id
	}
	switch {
	case rootID.Same(ids[booted]):
		return "", nil
	case rootID.Same(ids[booted.Other()]):
		return "", fmt.Errorf("kernel command line names two booted slots: %s=%s says slot %s (%s), root=%s says slot %s (%s): %w",
			SlotParam, param, booted, ids[booted], root, booted.Other(), ids[booted.Other()], ErrRootMismatch)
	}
	return fmt.Sprintf("root=%s not cross-checked against %s=%s: it is %s, neither slot device (a=%s, b=%s)",
		root, SlotParam, param, rootID, devA, devB), nil
}

// rootPath is the path a root= value names, or why there is none.
func rootPath(root, diskDir string) (path, why string) {
	if filepath.IsAbs(root) {
		return root, ""
	}
	for _, f := range []struct{ tag, dir string }{
		{"PARTUUID=", "by-partuuid"}, {"UUID=", "by-uuid"}, {"PARTLABEL=", "by-partlabel"}, {"LABEL=", "by-label"},
	} {
		v, ok := strings.CutPrefix(root, f.tag)
		if !ok {
			continue
		}
		if v == "" || strings.Contains(v, "/") {
			return "", fmt.Sprintf("%s%s cannot be looked up in %s", f.tag, v, filepath.Join(diskDir, f.dir))
		}
		p := filepath.Join(diskDir, f.dir, v)
		// udev writes most UUIDs in lower case; the kernel takes either.
		if _, err := os.Stat(p); err != nil && strings.HasSuffix(f.tag, "UUID=") {
			p = filepath.Join(diskDir, f.dir, strings.ToLower(v))
		}
		return p, ""
	}
	return "", "not a path nor a PARTUUID=, UUID=, PARTLABEL= or LABEL= reference"
}
