package bootenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRoot(t *testing.T) {
	dir := t.TempDir()
	realA := filepath.Join(dir, "mmcblk0p2")
	realB := filepath.Join(dir, "mmcblk0p3")
	linkA := filepath.Join(dir, "rootfs-a")
	hardB := filepath.Join(dir, "hard-b")
	for _, p := range []string{realA, realB} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(realA, linkA); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(realB, hardB); err != nil {
		t.Fatal(err)
	}
	// A fake /dev/disk as udev lays it out.
	disk := filepath.Join(dir, "disk")
	for link, target := range map[string]string{
		"by-partuuid/1234abcd-02": realA, "by-partuuid/1234abcd-03": realB,
		"by-uuid/0f1e-aa": realB, "by-label/rootfs b": realB, "by-partlabel/rootfs-a": realA,
	} {
		p := filepath.Join(disk, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		cmdline string
		// mismatch: an error wrapping ErrRootMismatch containing it;
		// note: no error and a note containing it; neither: checked
		// and agreeing.
		mismatch, note string
	}{
		{"uptrust.slot=a root=" + realA, "", ""},
		{"uptrust.slot=a root=" + linkA, "", ""},
		{"uptrust.slot=b root=" + hardB, "", ""},
		{"root=" + realA + " uptrust.slot=b", "uptrust.slot=b says slot b (" + realB + ", inode", ""},
		{"uptrust.slot=a root=" + hardB, "root=" + hardB + " says slot b (" + realB, ""},
		{"uptrust.slot=a uptrust.slot=b root=" + realB, "", ""}, // the last uptrust.slot= counts
		{"uptrust.slot=a root=PARTUUID=1234abcd-02", "", ""},
		{"uptrust.slot=a root=PARTUUID=1234ABCD-03", "root=PARTUUID=1234ABCD-03 says slot b (" + realB + ", inode", ""},
		{"uptrust.slot=a root=UUID=0F1E-AA", "says slot b", ""},
		{"uptrust.slot=b root=PARTLABEL=rootfs-a", "uptrust.slot=b says slot b (" + realB + ", inode", ""},
		{"uptrust.slot=a root=PARTUUID=99999999-02", "", "by-partuuid/99999999-02: no such file"},
		{"uptrust.slot=a root=PARTUUID=1234abcd-02/PARTNROFF=1", "", "cannot be looked up"},
		{"uptrust.slot=a root=/dev/nfs-" + filepath.Base(dir), "", "not cross-checked"},
		{"uptrust.slot=a root=179:2", "", "not a path nor a PARTUUID="},
		{"uptrust.slot=a root=" + disk, "", "neither slot device"},
		{"uptrust.slot=a", "", ""},
		{"root=" + realB, "", ""},
	}
	for _, tc := range tests {
		note, err := checkRoot(tc.cmdline, linkA, realB, disk)
		switch {
		case tc.mismatch != "":
			if !errors.Is(err, ErrRootMismatch) || !strings.Contains(err.Error(), tc.mismatch) {
				t.Errorf("checkRoot(%q) = %q, %v; want a mismatch containing %q", tc.cmdline, note, err, tc.mismatch)
			}
		case err != nil || (tc.note == "") != (note == "") || !strings.Contains(note, tc.note):
			t.Errorf("checkRoot(%q) = %q, %v; want no error and note %q", tc.cmdline, note, err, tc.note)
		}
	}

	// A slot device that does not exist is not cross-checked.
	note, err := checkRoot("uptrust.slot=a root="+realA, realA, filepath.Join(dir, "missing"), disk)
	if err != nil || !strings.Contains(note, "slot b device") {
		t.Errorf("missing slot b: %q, %v; want a note on slot b", note, err)
	}
	if _, err := CheckRoot("uptrust.slot=c root="+realA, realA, realB); err == nil {
		t.Error("CheckRoot accepted uptrust.slot=c")
	}
}
