package devid

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSameDeviceNumber: two device nodes with one device number are one
// device, though they are different files.
func TestSameDeviceNumber(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, mode uint32, major, minor uint32) string {
		p := filepath.Join(dir, name)
		if err := unix.Mknod(p, mode|0o600, int(unix.Mkdev(major, minor))); err != nil {
			t.Skipf("cannot create device nodes here (needs CAP_MKNOD): %v", err)
		}
		return p
	}
	blkA := mk("mmcblk0p2", unix.S_IFBLK, 179, 2)
	blkA2 := mk("rootfs-a", unix.S_IFBLK, 179, 2)
	blkB := mk("mmcblk0p3", unix.S_IFBLK, 179, 3)
	chrA := mk("char-179-2", unix.S_IFCHR, 179, 2)
	stat := func(p string) ID {
		id, err := Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if !stat(blkA).Same(stat(blkA2)) {
		t.Errorf("%s and %s (both block 179:2) are not the same", blkA, blkA2)
	}
	if stat(blkA).Same(stat(blkB)) {
		t.Errorf("%s (179:2) and %s (179:3) are the same", blkA, blkB)
	}
	if stat(blkA).Same(stat(chrA)) {
		t.Errorf("block and character device 179:2 are the same")
	}
	if s := stat(blkA2).String(); !strings.Contains(s, "block device 179:2") {
		t.Errorf("String() = %q, want the device number", s)
	}
}
