package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
	"unique"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/multirepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/uptrust/uptrust/internal/deviceapi"
)

// repoCache is what the agent keeps under tuf/<repo>/ on disk, held in
// memory: the newest verified root (when it rotated past the provisioned
// one) and the versioned metadata documents (N.snapshot.json,
// N.targets.json, delegated roles) the last successful refresh verified.
// The timestamp is downloaded at every check, as go-tuf does.
//
// Documents are unique.Handles: the shared release repository's bytes are
// held once for all devices and freed when no device holds them any more.
// Invariant: every entry was verified by go-tuf in a refresh that
// succeeded; a refresh that fails empties files (the next one downloads
// everything again, as an agent whose cache was damaged).
type repoCache struct {
	root  unique.Handle[string] // zero: the provisioned root
	files []cachedFile
	// ts is the timestamp the last full refresh verified, rootVersion the
	// trusted root's version then, and expires the earliest expiry of the
	// trusted root, timestamp, snapshot and targets (see quick).
	ts          unique.Handle[string]
	rootVersion int64
	expires     time.Time
}

// prefetched is an answer check already has for this refresh: the probe
// of the next root and the timestamp, which quick fetched.
type prefetched struct {
	name   string
	status int
	data   []byte
}

type cachedFile struct {
	name string // file name under metadata/, e.g. "3.snapshot.json"
	data unique.Handle[string]
}

// noLocalDir is the LocalMetadataDir given to go-tuf. With
// DisableLocalCache go-tuf still tries to read <dir>/timestamp.json
// and friends; a name with a NUL byte fails in os.Open before any system
// call, so no file on this machine is ever read as a device's cache.
const noLocalDir = "\x00fleetsim-no-local-cache"

// memFetcher is a device's go-tuf fetcher for one refresh of one
// repository: versioned documents come from the device's repoCache when it
// holds them (the agent reads them from its disk), everything else is a
// signed GET. got records what the refresh used, for the cache.
type memFetcher struct {
	ctx   context.Context
	sim   *Sim
	dev   *device
	cache *repoCache
	got   []cachedFile
	root  unique.Handle[string] // the newest root downloaded
	ts    unique.Handle[string] // the timestamp downloaded
	pre   []prefetched
}

var _ fetcher.Fetcher = (*memFetcher)(nil)

// DownloadFile implements fetcher.Fetcher.
func (f *memFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	name := path.Base(urlPath)
	isRoot := strings.HasSuffix(name, ".root.json")
	for i, p := range f.pre {
		if p.name == name {
			f.pre = append(f.pre[:i:i], f.pre[i+1:]...)
			if p.status != http.StatusOK {
				return nil, &metadata.ErrDownloadHTTP{StatusCode: p.status, URL: urlPath}
			}
			if name == "timestamp.json" {
				f.ts = unique.Make(string(p.data))
			}
			return p.data, nil
		}
	}
	if name != "timestamp.json" && !isRoot {
		for _, c := range f.cache.files {
			if c.name == name {
				f.got = append(f.got, c)
				return []byte(c.data.Value()), nil
			}
		}
	}
	b, err := f.sim.get(f.ctx, f.dev, urlPath, maxLength)
	if err != nil {
		var se *statusError
		if errors.As(err, &se) {
			return nil, &metadata.ErrDownloadHTTP{StatusCode: se.status, URL: urlPath}
		}
		if errors.Is(err, errTooLong) {
			return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("download failed for %s, longer than %d bytes", urlPath, maxLength)}
		}
		return nil, err
	}
	h := unique.Make(string(b))
	switch {
	case isRoot:
		f.root = h
	case name == "timestamp.json":
		f.ts = h
	default:
		f.got = append(f.got, cachedFile{name: name, data: h})
	}
	return b, nil
}

// commit keeps what a successful check verified; u is the refreshed
// updater.
func (f *memFetcher) commit(u *updater.Updater) {
	if f.root != (unique.Handle[string]{}) {
		f.cache.root = f.root
	}
	f.cache.files = f.got
	f.cache.ts = f.ts
	t := u.GetTrustedMetadataSet()
	f.cache.rootVersion = t.Root.Signed.Version
	exp := t.Root.Signed.Expires
	for _, e := range []time.Time{t.Timestamp.Signed.Expires, t.Snapshot.Signed.Expires, t.Targets["targets"].Signed.Expires} {
		if e.Before(exp) {
			exp = e
		}
	}
	f.cache.expires = exp
}

// quick is the start of every check: it fetches, signed, what go-tuf
// fetches first from each repository (the next root version, expected to
// be 404, and the timestamp) and reports whether the check can end there:
// d settled at its last check (nothing to install), no root rotated, both
// timestamps are byte for byte the ones the last full refresh verified,
// and nothing of it has expired. Then go-tuf would download nothing more
// and reach the same trusted metadata, and the same decision. Otherwise
// the answers are returned for the full refresh, which verifies them
// without fetching them again. fullVerify turns the shortcut off (go-tuf
// runs at every check, as in the agent).
func (s *Sim) quick(ctx context.Context, d *device, now time.Time) (bool, [2][]prefetched, error) {
	var pre [2][]prefetched
	same := d.settled && !s.fullVerify
	for i, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		c := &d.repos[i]
		if c.rootVersion == 0 {
			return false, pre, nil // never refreshed: go-tuf from the start
		}
		base := s.server + deviceapi.RepoBase(name)
		next := fmt.Sprintf("%d.root.json", c.rootVersion+1)
		_, err := s.get(ctx, d, deviceapi.MetadataDir(base)+"/"+next, deviceapi.DefaultMaxRootBytes)
		var se *statusError
		switch {
		case errors.As(err, &se) && (se.status == http.StatusNotFound || se.status == http.StatusForbidden):
			pre[i] = append(pre[i], prefetched{name: next, status: se.status})
		case err != nil:
			return false, pre, &tufError{repo: name, err: err}
		default:
			return false, [2][]prefetched{}, nil // a new root: go-tuf fetches it
		}
		ts, err := s.get(ctx, d, deviceapi.MetadataDir(base)+"/timestamp.json", deviceapi.DefaultMaxTimestampBytes)
		if err != nil {
			return false, pre, &tufError{repo: name, err: err}
		}
		pre[i] = append(pre[i], prefetched{name: "timestamp.json", status: http.StatusOK, data: ts})
		same = same && c.ts == unique.Make(string(ts)) && now.Before(c.expires)
	}
	return same, pre, nil
}

// tufError is a failure of one repository's metadata.
type tufError struct {
	repo string
	err  error
}

func (e *tufError) Error() string { return "fleetsim: " + e.repo + " repository: " + e.err.Error() }
func (e *tufError) Unwrap() error { return e.err }

// refresh runs go-tuf's client workflow on both repositories for d (root
// chain, timestamp, snapshot, top-level targets, with version, expiry,
// threshold and length checks), exactly as the agent's refresh but with
// the cache in memory. The fetchers are returned for commit once the
// whole check succeeded.
func (s *Sim) refresh(ctx context.Context, d *device, pre [2][]prefetched) (*multirepo.MultiRepoClient, []*memFetcher, []*updater.Updater, error) {
	m := &multirepo.MultiRepoClient{
		TUFClients: map[string]*updater.Updater{},
		Config:     &multirepo.MultiRepoConfig{RepoMap: s.repoMap, TrustedRoots: map[string][]byte{}},
	}
	var fs []*memFetcher
	var us []*updater.Updater
	for i, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		c := &d.repos[i]
		root := s.roots[i]
		if c.root != (unique.Handle[string]{}) {
			root = []byte(c.root.Value())
		}
		base := s.server + deviceapi.RepoBase(name)
		cfg, err := config.New(deviceapi.MetadataDir(base), root)
		if err != nil {
			return nil, nil, nil, &tufError{repo: name, err: err}
		}
		f := &memFetcher{ctx: ctx, sim: s, dev: d, cache: c, pre: pre[i]}
		cfg.RemoteTargetsURL = deviceapi.TargetsDir(base)
		cfg.LocalMetadataDir, cfg.LocalTargetsDir = noLocalDir, noLocalDir
		cfg.DisableLocalCache = true
		cfg.Fetcher = f
		cfg.RootMaxLength, cfg.TimestampMaxLength = deviceapi.DefaultMaxRootBytes, deviceapi.DefaultMaxTimestampBytes
		cfg.SnapshotMaxLength, cfg.TargetsMaxLength = deviceapi.DefaultMaxSnapshotBytes, deviceapi.DefaultMaxTargetsBytes
		cfg.MaxDelegations = 8
		u, err := updater.New(cfg)
		if err != nil {
			return nil, nil, nil, &tufError{repo: name, err: err}
		}
		if err := u.Refresh(); err != nil {
			c.files, c.ts = nil, unique.Handle[string]{}
			return nil, nil, nil, &tufError{repo: name, err: err}
		}
		m.TUFClients[name] = u
		fs = append(fs, f)
		us = append(us, u)
	}
	return m, fs, us, nil
}
