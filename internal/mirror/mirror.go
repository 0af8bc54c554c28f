// Package mirror writes a project's public /repo/ tree (both TUF
// repositories' metadata and the payloads) as plain files, so that any web
// server, object store or CDN can serve it unchanged, and keeps such a
// mirror current.
//
// Security model: a mirror is untrusted. Devices verify everything it serves
// against the roots they were provisioned with, so a mirror can at worst
// withhold updates (stale or missing files); TUF's expiry and version checks
// make that visible on the device. What this package must guarantee is that
// an honest mirror never shows a reader a tree that a device would reject.
//
// Invariants of every run (Export and Sync):
//   - a file appears under its final name only complete and fsync'd: it is
//     written (or hard-linked) under a temporary name in the same directory
//     and renamed, and the directory is fsync'd;
//   - files become visible in dependency order: payloads, then versioned
//     metadata (delegated targets, targets, snapshot, root), then the
//     unversioned root.json, then the timestamps, one repository after the
//     other in Options.Repositories order. A TUF client reaches new versions
//     only through timestamp.json, so until a repository's timestamp is
//     replaced its readers see the previous tree, and afterwards everything
//     the new timestamp names is already in place. Listing the release
//     repository before the fleet repository means a device never sees the
//     fleet offer a release that the release repository does not sign yet;
//   - only then are files that are no longer published removed, and only
//     after they have been unpublished for Options.Grace, so that a client
//     that read the previous timestamp still finds what it names;
//   - a run removes only files it wrote itself (listed in the mirror's state
//     file), and persists the union of the old and new file lists before it
//     writes anything, so a crash never leaks files it would later forget;
//   - a versioned metadata file is never rewritten with other content: that
//     would break caches that hold it forever, and can only mean the
//     directory mirrors another project;
//   - one run at a time per directory (a flock on the lock file).
//
// Layout of a mirror directory DIR: DIR/repo/... is the public tree, URL
// path for URL path (a delegated role "products/thermostat" is the file
// DIR/repo/release/metadata/3.products/thermostat.json, which is where web
// servers map the request "3.products%2Fthermostat.json"). DIR/.uptrust-
// mirror.json is the state file and DIR/.uptrust-mirror.lock the lock; both
// live outside DIR/repo and need not be served.
package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/progress"
	"github.com/uptrust/uptrust/internal/server"
)

// Source is the published content of a project. project.Project implements
// it. Generation must change whenever the content does; Content need not
// read in one transaction, because a run reads it between two equal
// generations (a content read while the project changes could pair a new
// fleet repository with an old release repository).
type Source interface {
	Generation(ctx context.Context) (int64, error)
	Content(ctx context.Context) (*server.Content, error)
}

// readAttempts bounds how often a run reads the content while the project
// keeps changing under it.
const readAttempts = 5

// ErrUnstable: the project changed during every read of its content.
var ErrUnstable = errors.New("mirror: the project changed while its content was read")

// Resigner re-signs online roles that are due (project.Project implements
// it), so that a mirror synced regularly never serves an expired timestamp.
type Resigner interface {
	ResignDue(ctx context.Context) (bool, error)
}

// DefaultGrace is how long a file that is no longer published stays in the
// mirror by default: as long as a timestamp lives by default, so that a
// device that read the previous timestamp can finish its check and its
// download.
const DefaultGrace = 24 * time.Hour

// Options configure Export and Sync. The zero value is usable.
type Options struct {
	// Resigner, if set, is called before the content is read.
	Resigner Resigner
	// Repositories are the base URL paths of the repositories
	// ("/repo/release", "/repo/fleet") in the order their timestamps are
	// published: a repository whose targets others refer to comes first.
	// Each must have a timestamp.json in the content. Timestamps of
	// repositories not listed follow, in path order.
	Repositories []string
	// Grace is how long files that are no longer published are kept.
	// Zero means DefaultGrace; a negative value removes them at once.
	Grace time.Duration
	// Copy makes payloads copies even where a hard link to the blob store
	// is possible. Hard links cost no space, but a program that modifies
	// a mirror file in place would then modify the blob store too.
	Copy bool
	// Verify re-hashes payloads already in the mirror and replaces those
	// that do not match; otherwise a payload whose size matches is trusted.
	Verify bool
	// Clock dates unpublished files (default: the system clock).
	Clock clock.Clock
	// AfterStep, if set, is called after each step that changed the
	// mirror; an error ends the run with that error, as a crash would.
	// Tests use it to look at every intermediate tree.
	AfterStep func(ctx context.Context, s Step) error
	// Progress shows the bytes of metadata and payloads placed so far
	// against those published; nil shows nothing.
	Progress *progress.Bar
}

// stepBytes is what a step places: the document or the payload.
func stepBytes(s Step) int64 {
	switch s.Op {
	case OpPutMetadata:
		return int64(len(s.Data))
	case OpPutPayload:
		return s.Payload.Size
	}
	return 0
}

// Result says what a run did.
type Result struct {
	// Written counts files created or replaced; Linked and Copied count
	// the payloads among them by how they were made.
	Written, Linked, Copied int
	// Unchanged counts published files that were already in place.
	Unchanged int
	// Removed counts files removed after their grace period; Kept counts
	// unpublished files still within it.
	Removed, Kept int
	// Timestamps describes the published timestamp of every repository,
	// in publication order.
	Timestamps []Timestamp
}

// Timestamp is a repository's published timestamp.
type Timestamp struct {
	// Repository is the base URL path, e.g. "/repo/release".
	Repository string
	Version    int64
	Expires    time.Time
}

// Errors a caller may want to tell apart.
var (
	// ErrNotEmpty: Export was given a directory that already has content.
	ErrNotEmpty = errors.New("mirror: directory is not empty")
	// ErrNotMirror: Sync was given a directory without a mirror state file.
	ErrNotMirror = errors.New("mirror: not a mirror directory")
	// ErrBusy: another run holds the directory's lock.
	ErrBusy = errors.New("mirror: another export or sync is running on this directory")
)

// Names of the bookkeeping files in a mirror directory.
const (
	stateName = ".uptrust-mirror.json"
	lockName  = ".uptrust-mirror.lock"
	// tmpPrefix starts the name of every temporary file; a run removes
	// leftovers of crashed runs under DIR/repo.
	tmpPrefix = ".uptrust-tmp-"
)

// Export writes src's public tree into dir, which must not exist or be
// empty. It is Sync for a new mirror.
func Export(ctx context.Context, dir string, src Source, o Options) (Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("mirror: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Result{}, fmt.Errorf("mirror: %w", err)
	}
	for _, e := range ents {
		if e.Name() != lockName {
			return Result{}, fmt.Errorf("%w: %s holds %s (use sync to update a mirror, or an empty directory to export)",
				ErrNotEmpty, dir, e.Name())
		}
	}
	return run(ctx, dir, State{}, src, o)
}

// Sync brings the mirror in dir, made by Export, up to date with src.
func Sync(ctx context.Context, dir string, src Source, o Options) (Result, error) {
	if _, err := os.Stat(filepath.Join(dir, stateName)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Result{}, fmt.Errorf("%w: %s has no %s (run export first)", ErrNotMirror, dir, stateName)
		}
		return Result{}, fmt.Errorf("mirror: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	st, err := loadState(dir)
	if err != nil {
		return Result{}, err
	}
	return run(ctx, dir, st, src, o)
}

// run applies the plan from prev to src's content, holding the lock.
func run(ctx context.Context, dir string, prev State, src Source, o Options) (Result, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	switch {
	case o.Grace == 0:
		o.Grace = DefaultGrace
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.Resigner != nil {
		if _, err := o.Resigner.ResignDue(ctx); err != nil {
			return Result{}, fmt.Errorf("mirror: re-signing due roles before the export: %w", err)
		}
	}
	c, err := readContent(ctx, src)
	if err != nil {
		return Result{}, err
	}
	p, err := makePlan(c, prev, o.Clock.Now(), o.Grace, o.Repositories)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if res.Timestamps, err = timestamps(c, p); err != nil {
		return Result{}, err
	}
	if err := removeTemps(filepath.Join(dir, "repo")); err != nil {
		return Result{}, err
	}
	// Persist before acting: a crash from here on leaves every file that
	// may appear listed, so a later run can remove it.
	if err := saveState(dir, prev.merge(p.state)); err != nil {
		return Result{}, err
	}
	a := applier{dir: dir, copy: o.Copy, verify: o.Verify}
	var total int64
	for _, s := range p.steps {
		total += stepBytes(s)
	}
	o.Progress.Start("writing the mirror "+dir, total)
	defer o.Progress.Done()
	for _, s := range p.steps {
		changed, how, err := a.apply(ctx, s)
		if err != nil {
			return Result{}, err
		}
		o.Progress.Add(stepBytes(s))
		switch {
		case !changed:
			res.Unchanged++
			continue
		case s.Op == OpRemove:
			res.Removed++
		default:
			res.Written++
			switch how {
			case madeLink:
				res.Linked++
			case madeCopy:
				res.Copied++
			}
		}
		if o.AfterStep != nil {
			if err := o.AfterStep(ctx, s); err != nil {
				return Result{}, err
			}
		}
	}
	if err := saveState(dir, p.state); err != nil {
		return Result{}, err
	}
	for _, f := range p.state.Files {
		if !f.Unpublished.IsZero() {
			res.Kept++
		}
	}
	return res, nil
}

// readContent reads src's content between two equal generations.
func readContent(ctx context.Context, src Source) (*server.Content, error) {
	for range readAttempts {
		before, err := src.Generation(ctx)
		if err != nil {
			return nil, fmt.Errorf("mirror: reading the project's generation: %w", err)
		}
		c, err := src.Content(ctx)
		if err != nil {
			return nil, fmt.Errorf("mirror: reading the published content: %w", err)
		}
		after, err := src.Generation(ctx)
		if err != nil {
			return nil, fmt.Errorf("mirror: reading the project's generation: %w", err)
		}
		if before == after {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w, %d times in a row (try again)", ErrUnstable, readAttempts)
}

// timestamps parses the published timestamps, in the plan's order.
func timestamps(c *server.Content, p plan) ([]Timestamp, error) {
	var out []Timestamp
	for _, s := range p.steps {
		if s.Op != OpPutMetadata || !isTimestamp(s.Path) {
			continue
		}
		var doc struct {
			Signed struct {
				Type    string    `json:"_type"`
				Version int64     `json:"version"`
				Expires time.Time `json:"expires"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(c.Metadata[s.Path], &doc); err != nil || doc.Signed.Type != "timestamp" {
			return nil, fmt.Errorf("mirror: %s is not a TUF timestamp (%v)", s.Path, err)
		}
		out = append(out, Timestamp{Repository: repositoryOf(s.Path), Version: doc.Signed.Version, Expires: doc.Signed.Expires})
	}
	return out, nil
}

// removeTemps removes temporary files that crashed runs left under root.
// Only names with tmpPrefix are touched; the caller holds the lock, so no
// other run is writing them.
func removeTemps(root string) error {
	var tmps []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if !d.IsDir() && len(d.Name()) > len(tmpPrefix) && d.Name()[:len(tmpPrefix)] == tmpPrefix {
			tmps = append(tmps, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mirror: looking for leftover temporary files: %w", err)
	}
	sort.Strings(tmps)
	for _, p := range tmps {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("mirror: removing leftover %s: %w", p, err)
		}
	}
	return nil
}
