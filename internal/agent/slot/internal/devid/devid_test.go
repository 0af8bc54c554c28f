package devid

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSame(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.img")
	b := filepath.Join(dir, "b.img")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "rootfs-a")
	if err := os.Symlink("a.img", link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard-a.img")
	if err := os.Link(a, hard); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		x, y string
		same bool
	}{
		{a, a, true},
		{a, filepath.Join(sub, "..", "a.img"), true},
		{a, link, true},
		{link, hard, true},
		{a, b, false},
		{link, b, false},
	}
	for _, tc := range tests {
		x, err := Stat(tc.x)
		if err != nil {
			t.Fatal(err)
		}
		y, err := Stat(tc.y)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Same(y); got != tc.same {
			t.Errorf("Stat(%s).Same(Stat(%s)) = %v, want %v", tc.x, tc.y, got, tc.same)
		}
	}

	id, err := Stat(link)
	if err != nil {
		t.Fatal(err)
	}
	if s := id.String(); !strings.HasPrefix(s, link+" -> "+a) || !strings.Contains(s, "inode") {
		t.Errorf("String() = %q, want the link, its target and the inode", s)
	}
	if _, err := Stat(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
	}
	if (ID{}).Same(ID{}) {
		t.Error("zero IDs are the same")
	}
}
