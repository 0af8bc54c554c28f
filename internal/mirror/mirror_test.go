package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/server"
)

// fakeSource serves a settable content; blobs are files in a temp dir.
type fakeSource struct {
	t       *testing.T
	blobs   string
	content *server.Content
	err     error
	gen     int64
	// during, if set, runs inside Content, as a concurrent publication
	// would.
	during func()
}

func newSource(t *testing.T) *fakeSource {
	return &fakeSource{t: t, blobs: t.TempDir()}
}

func (s *fakeSource) Generation(context.Context) (int64, error) { return s.gen, nil }

func (s *fakeSource) Content(context.Context) (*server.Content, error) {
	c := s.content
	if s.during != nil {
		s.during()
	}
	return c, s.err
}

// blob stores b and returns its payload entry and URL path for a release.
func (s *fakeSource) blob(version string, b []byte) (string, server.PayloadFile) {
	s.t.Helper()
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	p := filepath.Join(s.blobs, h)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		s.t.Fatal(err)
	}
	return "/repo/release/targets/thermostat/" + h + "." + version, server.PayloadFile{Path: p, Size: int64(len(b)), SHA256: h}
}

// publish sets the content to version v with payloads of the given releases.
func (s *fakeSource) publish(v int, releases ...string) {
	payloads := map[string]server.PayloadFile{}
	for _, r := range releases {
		p, f := s.blob(r, []byte("image of "+r))
		payloads[p] = f
	}
	s.content = pubContent(v, payloads)
	s.gen++
}

// assertTree checks that dir/repo holds exactly the files of c, plus extra.
func assertTree(t *testing.T, dir string, c *server.Content, extra ...string) {
	t.Helper()
	want := map[string][]byte{}
	for p, b := range c.Metadata {
		want[p] = b
	}
	for p, f := range c.Payloads {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = b
	}
	have := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(dir, "repo"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		have["/"+filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range extra {
		if _, ok := have[p]; !ok {
			t.Errorf("%s was removed too early", p)
		}
		delete(have, p)
	}
	for p, b := range want {
		if h, ok := have[p]; !ok {
			t.Errorf("%s is missing", p)
		} else if !bytes.Equal(h, b) {
			t.Errorf("%s holds %q, want %q", p, h, b)
		}
		delete(have, p)
	}
	for _, p := range slices.Sorted(maps.Keys(have)) {
		t.Errorf("unexpected file %s", p)
	}
}

func TestExportTree(t *testing.T) {
	ctx := t.Context()
	src := newSource(t)
	src.publish(1, "1.0.0", "1.1.0")
	dir := filepath.Join(t.TempDir(), "mirror")
	res, err := Export(ctx, dir, src, Options{Repositories: repos})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, dir, src.content)
	total := len(src.content.Metadata) + len(src.content.Payloads)
	if res.Written != total || res.Linked != 2 || res.Copied != 0 || res.Unchanged != 0 || res.Removed != 0 {
		t.Errorf("result %+v, want %d written, 2 linked", res, total)
	}
	// The temp dirs share a filesystem: payloads are the blob files.
	for p, f := range src.content.Payloads {
		a, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.Stat(f.Path)
		if !os.SameFile(a, b) {
			t.Errorf("%s is not a hard link to its blob", p)
		}
		if a.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v", p, a.Mode())
		}
	}
	want := []Timestamp{{"/repo/release", 1, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, {"/repo/fleet", 1, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}
	if !slices.Equal(res.Timestamps, want) {
		t.Errorf("timestamps %+v, want %+v", res.Timestamps, want)
	}
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Files) != total {
		t.Errorf("state lists %d files, want %d", len(st.Files), total)
	}

	// Copies are separate files with the same bytes.
	dir2 := filepath.Join(t.TempDir(), "copy")
	res, err = Export(ctx, dir2, src, Options{Repositories: repos, Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, dir2, src.content)
	if res.Copied != 2 || res.Linked != 0 {
		t.Errorf("copy result %+v", res)
	}
	for p, f := range src.content.Payloads {
		a, _ := os.Stat(filepath.Join(dir2, p))
		b, _ := os.Stat(f.Path)
		if os.SameFile(a, b) {
			t.Errorf("%s is a hard link despite Copy", p)
		}
	}

	// A second export into the same directory is refused; so is a sync
	// of a directory that is not a mirror.
	if _, err := Export(ctx, dir, src, Options{}); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "sync") {
		t.Errorf("export into a mirror: %v, want ErrNotEmpty naming sync", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "index.html"), []byte("hi"), 0o644)
	if _, err := Export(ctx, other, src, Options{}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("export into a non-empty directory: %v", err)
	}
	if _, err := Sync(ctx, other, src, Options{}); !errors.Is(err, ErrNotMirror) || !strings.Contains(err.Error(), "export") {
		t.Errorf("sync of a non-mirror: %v, want ErrNotMirror naming export", err)
	}
}

func TestSyncOrderAndGrace(t *testing.T) {
	ctx := t.Context()
	src := newSource(t)
	src.publish(1, "1.0.0")
	dir := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	if _, err := Export(ctx, dir, src, Options{Repositories: repos, Clock: clk}); err != nil {
		t.Fatal(err)
	}
	old := maps.Clone(src.content.Metadata)
	oldTS := old["/repo/release/metadata/timestamp.json"]

	// Version 2 drops release 1.0.0 and brings 1.1.0. Record the changes
	// in the order they become visible, and what a reader of the release
	// timestamp sees at each point.
	src.publish(2, "1.1.0")
	var seen []Step
	check := func(_ context.Context, s Step) error {
		seen = append(seen, s)
		ts, err := os.ReadFile(filepath.Join(dir, "repo/release/metadata/timestamp.json"))
		if err != nil {
			return err
		}
		if bytes.Equal(ts, oldTS) {
			// Old timestamp: the whole old tree must still be there.
			for p, b := range old {
				if have, err := os.ReadFile(filepath.Join(dir, p)); err != nil || (!isTimestamp(p) && !bytes.Equal(have, b)) {
					return fmt.Errorf("after %s the old tree lost %s (%v)", s, p, err)
				}
			}
		} else {
			// New timestamp: everything it names must be in place.
			for p, b := range src.content.Metadata {
				if strings.HasPrefix(p, "/repo/release/") && !isTimestamp(p) {
					if have, err := os.ReadFile(filepath.Join(dir, p)); err != nil || !bytes.Equal(have, b) {
						return fmt.Errorf("after %s the new release timestamp is visible without %s (%v)", s, p, err)
					}
				}
			}
		}
		return nil
	}
	clk.Advance(time.Hour)
	res, err := Sync(ctx, dir, src, Options{Repositories: repos, Clock: clk, AfterStep: check})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, seen, repos)
	if last := seen[len(seen)-1]; last.Path != "/repo/fleet/metadata/timestamp.json" {
		t.Errorf("last change %s, want the fleet timestamp", last)
	}
	unchanged := []string{"/repo/release/metadata/1.root.json", "/repo/release/metadata/root.json",
		"/repo/fleet/metadata/1.root.json", "/repo/fleet/metadata/root.json"}
	if res.Removed != 0 || res.Unchanged != len(unchanged) || res.Kept != 6 {
		t.Errorf("result %+v: want nothing removed, %d unchanged, 6 kept for the grace period", res, len(unchanged))
	}
	gone := []string{"/repo/release/metadata/1.targets.json", "/repo/release/metadata/1.snapshot.json",
		"/repo/release/metadata/1.products/thermostat.json", "/repo/fleet/metadata/1.targets.json", "/repo/fleet/metadata/1.snapshot.json"}
	var oldPayload string
	st, _ := loadState(dir)
	for p, f := range st.Files {
		if strings.HasSuffix(p, ".1.0.0") {
			oldPayload = p
			if !f.Unpublished.Equal(clk.Now()) {
				t.Errorf("%s dated %v, want %v", p, f.Unpublished, clk.Now())
			}
		}
	}
	assertTree(t, dir, src.content, append(gone, oldPayload)...)

	// After the grace period the next sync removes them, and the
	// directories they leave empty.
	clk.Advance(DefaultGrace)
	seen = nil
	res, err = Sync(ctx, dir, src, Options{Repositories: repos, Clock: clk, AfterStep: func(_ context.Context, s Step) error {
		seen = append(seen, s)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 6 || res.Written != 0 || res.Kept != 0 {
		t.Errorf("result %+v, want 6 removed, nothing written", res)
	}
	assertTree(t, dir, src.content)
	if _, err := os.Stat(filepath.Join(dir, "repo/release/metadata/1.products")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty delegation directory left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "repo/release/metadata/2.products")); err != nil {
		t.Errorf("live delegation directory: %v", err)
	}
}

func TestSyncCrashAndResume(t *testing.T) {
	ctx := t.Context()
	src := newSource(t)
	src.publish(1, "1.0.0")
	dir := t.TempDir()
	if _, err := Export(ctx, dir, src, Options{Repositories: repos}); err != nil {
		t.Fatal(err)
	}
	oldTS, _ := os.ReadFile(filepath.Join(dir, "repo/fleet/metadata/timestamp.json"))

	// A crash right after the new payload and the first new metadata:
	// readers still see the old timestamps. The run meant to remove the
	// version 1 files at once (no grace).
	src.publish(2, "1.0.0", "1.1.0")
	crash := errors.New("power lost")
	n := 0
	_, err := Sync(ctx, dir, src, Options{Repositories: repos, Grace: -1, AfterStep: func(context.Context, Step) error {
		if n++; n == 2 {
			return crash
		}
		return nil
	}})
	if !errors.Is(err, crash) {
		t.Fatalf("sync: %v, want the injected crash", err)
	}
	if ts, _ := os.ReadFile(filepath.Join(dir, "repo/fleet/metadata/timestamp.json")); !bytes.Equal(ts, oldTS) {
		t.Fatal("the timestamp changed before the run finished its versioned files")
	}
	var newPayload string
	for p := range src.content.Payloads {
		if strings.HasSuffix(p, ".1.1.0") {
			newPayload = p
		}
	}
	if _, err := os.Stat(filepath.Join(dir, newPayload)); err != nil {
		t.Fatalf("the payload, written first, is missing: %v", err)
	}
	// The crash also left a temporary file behind.
	leftover := filepath.Join(dir, "repo/release/metadata", tmpPrefix+"dead")
	if err := os.WriteFile(leftover, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The project moves on before the next sync: 1.1.0 is withdrawn. The
	// payload the crashed run wrote, and the version 1 files it was about
	// to remove, are still the mirror's to remove.
	src.publish(3, "1.0.0")
	if _, err := Sync(ctx, dir, src, Options{Repositories: repos, Grace: -1}); err != nil {
		t.Fatal(err)
	}
	assertTree(t, dir, src.content)
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover temporary file not removed: %v", err)
	}
}

func TestSyncRefusals(t *testing.T) {
	ctx := t.Context()
	src := newSource(t)
	src.publish(1, "1.0.0")
	dir := t.TempDir()
	if _, err := Export(ctx, dir, src, Options{Repositories: repos, Copy: true}); err != nil {
		t.Fatal(err)
	}

	t.Run("versioned file changed", func(t *testing.T) {
		c := pubContent(1, src.content.Payloads)
		c.Metadata["/repo/release/metadata/1.snapshot.json"] = []byte(`{"snapshot":"other project"}`)
		s := &fakeSource{content: c}
		_, err := Sync(ctx, dir, s, Options{Repositories: repos})
		if !errors.Is(err, ErrVersionedChanged) || !strings.Contains(err.Error(), "1.snapshot.json") {
			t.Fatalf("sync: %v, want ErrVersionedChanged naming the file", err)
		}
	})

	t.Run("corrupt blob", func(t *testing.T) {
		s := newSource(t)
		p, f := s.blob("1.2.0", []byte("the real image"))
		os.WriteFile(f.Path, []byte("another image!"), 0o644) // same size, other bytes
		s.content = pubContent(1, map[string]server.PayloadFile{p: f})
		_, err := Sync(ctx, dir, s, Options{Repositories: repos, Copy: true})
		if err == nil || !strings.Contains(err.Error(), f.Path) || !strings.Contains(err.Error(), "SHA-256") {
			t.Fatalf("sync: %v, want an error naming the blob and its hash", err)
		}
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a payload that does not match its hash was published: %v", err)
		}
		_, err = Sync(ctx, dir, s, Options{Repositories: repos, Verify: true})
		if err == nil || !strings.Contains(err.Error(), "SHA-256") {
			t.Fatalf("sync with hard links and verify: %v, want a hash error", err)
		}
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a linked payload that does not match its hash was published: %v", err)
		}
	})

	t.Run("resigner fails", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(dir, stateName))
		s := &fakeSource{content: pubContent(7, nil)}
		_, err := Sync(ctx, dir, s, Options{Repositories: repos, Resigner: resignFunc(func() error { return errors.New("no online key") })})
		if err == nil || !strings.Contains(err.Error(), "re-signing") || !strings.Contains(err.Error(), "no online key") {
			t.Fatalf("sync: %v, want the re-signing error", err)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, stateName)); !bytes.Equal(before, after) {
			t.Error("a failed re-signing still changed the mirror")
		}
	})

	t.Run("source fails", func(t *testing.T) {
		s := &fakeSource{err: errors.New("database locked")}
		if _, err := Sync(ctx, dir, s, Options{}); err == nil || !strings.Contains(err.Error(), "database locked") {
			t.Fatalf("sync: %v", err)
		}
	})

	t.Run("busy", func(t *testing.T) {
		unlock, err := lock(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		if _, err := Sync(ctx, dir, src, Options{Repositories: repos}); !errors.Is(err, ErrBusy) {
			t.Fatalf("sync while locked: %v, want ErrBusy", err)
		}
	})

	t.Run("verify repairs", func(t *testing.T) {
		var p string
		for k := range src.content.Payloads {
			p = k
		}
		name := filepath.Join(dir, p)
		good, _ := os.ReadFile(name)
		bad := bytes.ToUpper(good)
		if err := os.WriteFile(name, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Sync(ctx, dir, src, Options{Repositories: repos, Copy: true}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(name); !bytes.Equal(b, bad) {
			t.Fatal("without Verify a payload of the right size is rewritten")
		}
		res, err := Sync(ctx, dir, src, Options{Repositories: repos, Copy: true, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(name); !bytes.Equal(b, good) || res.Written != 1 {
			t.Fatalf("Verify did not repair the payload (result %+v)", res)
		}
	})
}

type resignFunc func() error

func (f resignFunc) ResignDue(context.Context) (bool, error) { return true, f() }

// TestResignBeforeContent: the content is read after re-signing, so the
// mirror gets the fresh timestamp.
func TestResignBeforeContent(t *testing.T) {
	src := newSource(t)
	src.publish(1)
	r := resignFunc(func() error { src.publish(2); return nil })
	res, err := Export(t.Context(), t.TempDir(), src, Options{Repositories: repos, Resigner: r})
	if err != nil {
		t.Fatal(err)
	}
	if res.Timestamps[0].Version != 2 {
		t.Fatalf("exported timestamp v%d, want the re-signed v2", res.Timestamps[0].Version)
	}
}

// TestConcurrentPublication: content read while the project changed is
// read again; a project that never holds still is an error.
func TestConcurrentPublication(t *testing.T) {
	src := newSource(t)
	src.publish(1)
	once := true
	src.during = func() {
		if once {
			once = false
			src.publish(2)
		}
	}
	res, err := Export(t.Context(), t.TempDir(), src, Options{Repositories: repos})
	if err != nil {
		t.Fatal(err)
	}
	if res.Timestamps[0].Version != 2 {
		t.Fatalf("exported v%d, read while the project changed; want v2", res.Timestamps[0].Version)
	}
	v := 2
	src.during = func() { v++; src.publish(v) }
	dir := t.TempDir()
	if _, err := Export(t.Context(), dir, src, Options{Repositories: repos}); !errors.Is(err, ErrUnstable) {
		t.Fatalf("export: %v, want ErrUnstable", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "repo")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed read still wrote files: %v", err)
	}
}
