// Package devid tells whether two paths name the same slot: the same file
// (same device and inode, so also hard links), or the same block or
// character device (same device number, also through two different device
// nodes), after resolving symlinks.
package devid

import (
	"fmt"
	"os"
	"path/filepath"
)

// ID is what a path resolves to. The zero ID resolves to nothing.
type ID struct {
	// Path is the path as given.
	Path string
	// Resolved is Path with symlinks evaluated.
	Resolved string
	info     os.FileInfo
	sys      sysID
}

// sysID is what the platform tells of a file, where it tells it (ok).
type sysID struct {
	// dev and ino locate the file; rdev is a device node's number.
	dev, ino, rdev uint64
	ok             bool
}

// Stat resolves path's symlinks and stats what they lead to. A path that
// does not exist is an error wrapping fs.ErrNotExist.
func Stat(path string) (ID, error) {
	r, err := filepath.EvalSymlinks(path)
	if err != nil {
		return ID{}, err
	}
	fi, err := os.Stat(r)
	if err != nil {
		return ID{}, err
	}
	return ID{Path: path, Resolved: r, info: fi, sys: sysOf(fi)}, nil
}

// Same says whether a and b are one file or one device: both resolved to
// the same file (os.SameFile: device and inode), or both are device nodes
// of the same kind (block or character) with the same device number.
func (a ID) Same(b ID) bool {
	if a.info == nil || b.info == nil {
		return false
	}
	if os.SameFile(a.info, b.info) {
		return true
	}
	kind := os.ModeDevice | os.ModeCharDevice
	return a.isDevice() && b.isDevice() && a.info.Mode()&kind == b.info.Mode()&kind && a.sys.rdev == b.sys.rdev
}

// isDevice says whether a is a device node with a known device number.
func (a ID) isDevice() bool { return a.sys.ok && a.info.Mode()&os.ModeDevice != 0 }

// String describes what the path resolves to, for errors: the path, the
// resolved path when it differs, and the device number of a device node
// or the inode of a file, e.g. "/dev/disk/by-partlabel/rootfs-a ->
// /dev/mmcblk0p2, block device 179:2".
func (a ID) String() string {
	s := a.Path
	if a.Resolved != "" && a.Resolved != filepath.Clean(a.Path) {
		s += " -> " + a.Resolved
	}
	switch {
	case a.isDevice():
		kind := "block"
		if a.info.Mode()&os.ModeCharDevice != 0 {
			kind = "character"
		}
		s += fmt.Sprintf(", %s device %s", kind, number(a.sys.rdev))
	case a.sys.ok:
		s += fmt.Sprintf(", inode %d on device %s", a.sys.ino, number(a.sys.dev))
	}
	return s
}
