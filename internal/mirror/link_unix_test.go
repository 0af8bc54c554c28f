//go:build unix

package mirror

import (
	"os"
	"syscall"
	"testing"
)

// sameDevice reports whether two files are on one filesystem.
func sameDevice(a, b os.FileInfo) bool {
	sa, okA := a.Sys().(*syscall.Stat_t)
	sb, okB := b.Sys().(*syscall.Stat_t)
	return !okA || !okB || sa.Dev == sb.Dev
}

// TestLinkFallsBackToCopy: a blob store on another filesystem cannot be
// hard-linked; the payload is copied (and checked) instead.
func TestLinkFallsBackToCopy(t *testing.T) {
	const other = "/dev/shm"
	dir := t.TempDir()
	a, errA := os.Stat(other)
	b, errB := os.Stat(dir)
	if errA != nil || errB != nil || !a.IsDir() || sameDevice(a, b) {
		t.Skipf("SKIP: no second filesystem at %s to put the blobs on (%v, %v)", other, errA, errB)
	}
	blobs, err := os.MkdirTemp(other, "uptrust-mirror-test-")
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(blobs) })
	src := &fakeSource{t: t, blobs: blobs}
	src.publish(1, "1.0.0")
	res, err := Export(t.Context(), dir, src, Options{Repositories: repos})
	if err != nil {
		t.Fatal(err)
	}
	if res.Copied != 1 || res.Linked != 0 {
		t.Fatalf("result %+v, want the payload copied", res)
	}
	assertTree(t, dir, src.content)
}
