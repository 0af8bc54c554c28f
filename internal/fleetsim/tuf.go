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
// The timestamp is downloaded at every full check, as go-tuf does.
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
	// trusted root, timestamp, snapshot and targets (see device.full).
	ts          unique.Handle[string]
	rootVersion int64
	expires     time.Time
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
}

var _ fetcher.Fetcher = (*memFetcher)(nil)

// DownloadFile implements fetcher.Fetcher.
func (f *memFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	name := path.Base(urlPath)
	isRoot := strings.HasSuffix(name, ".root.json")
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
			return nil, &downloadError{http: &metadata.ErrDownloadHTTP{StatusCode: se.status, URL: urlPath}, status: se}
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

// conditional sends the agent's conditional request (agent.ConditionalAllowed
// decided it may): GET of the device's fleet timestamp with the validator
// of the one it verified last. It says whether the server answered 304.
func (s *Sim) conditional(ctx context.Context, d *device) (bool, error) {
	u := s.server + deviceapi.MetadataDir(deviceapi.FleetBase) + "/timestamp.json"
	_, err := s.doHeader(ctx, d, http.MethodGet, u, nil, deviceapi.DefaultMaxTimestampBytes, d.full.Validator, http.StatusNotModified)
	if err == nil {
		return true, nil
	}
	var se *statusError
	if errors.As(err, &se) {
		return false, nil // the full check follows and judges the answer
	}
	return false, err
}

// downloadError is an answer with an unexpected status for go-tuf: it is
// go-tuf's ErrDownloadHTTP (a 404 of the next root ends the root chain),
// and says what the server said (the problem code, such as
// decommissioned).
type downloadError struct {
	http   *metadata.ErrDownloadHTTP
	status *statusError
}

func (e *downloadError) Error() string   { return e.status.Error() }
func (e *downloadError) Unwrap() []error { return []error{e.http, e.status} }

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
func (s *Sim) refresh(ctx context.Context, d *device) (*multirepo.MultiRepoClient, []*memFetcher, []*updater.Updater, error) {
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
		f := &memFetcher{ctx: ctx, sim: s, dev: d, cache: c}
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
