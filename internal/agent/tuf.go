package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/multirepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
)

// repoMap is the TAP 4 map: support declarations come from the release
// repository alone; every other target of a product needs both
// repositories to list it with identical length and hashes.
func repoMap(server string) *multirepo.MultiRepoMapType {
	return &multirepo.MultiRepoMapType{
		Repositories: map[string][]string{
			deviceapi.RepoRelease: {server + deviceapi.ReleaseBase},
			deviceapi.RepoFleet:   {server + deviceapi.FleetBase},
		},
		Mapping: []*multirepo.Mapping{
			{Paths: []string{"*/support.json"}, Repositories: []string{deviceapi.RepoRelease}, Threshold: 1, Terminating: true},
			{Paths: []string{"*/*"}, Repositories: []string{deviceapi.RepoRelease, deviceapi.RepoFleet}, Threshold: 2, Terminating: true},
		},
	}
}

// RepoMap is repoMap for other clients of the two repositories (the
// fleet simulator, internal/fleetsim), so that they apply the agent's
// TAP 4 rules and no copy of them.
func RepoMap(server string) *multirepo.MultiRepoMapType { return repoMap(server) }

// repos is one refresh of both repositories.
type repos struct {
	multi *multirepo.MultiRepoClient
	// fetched names, per repository, the metadata file requested last
	// (see fetchLog): the file a failed lookup was loading.
	fetched map[string]*fetchLog
	// recovered says which unreadable cached files the refresh removed
	// (see cleanCache).
	recovered []string
}

func (a *Agent) tufDir(name string) string { return filepath.Join(a.cfg.DataDir, "tuf", name) }

// trustedRoot returns the newest root this device has verified (cached by
// go-tuf after following a rotation), else the provisioned one.
func (a *Agent) trustedRoot(name, provisioned string) ([]byte, error) {
	if b, err := os.ReadFile(filepath.Join(a.tufDir(name), "root.json")); err == nil {
		return b, nil
	}
	b, err := os.ReadFile(provisioned)
	if err != nil {
		return nil, fmt.Errorf("agent: trusted %s root: %w", name, err)
	}
	return b, nil
}

// refresh runs the TUF client workflow on both repositories: root chain,
// timestamp, snapshot, top-level targets, with version, expiry and
// threshold checks, expiry against ref (the check's reference time, see
// refTime). Verified metadata is cached under DataDir/tuf. No metadata
// document longer than its role's MetadataMaxBytes, or than the length its
// signed entry lists, is downloaded whole or parsed.
func (a *Agent) refresh(ctx context.Context, ref time.Time) (*repos, error) {
	m := &multirepo.MultiRepoClient{
		TUFClients: map[string]*updater.Updater{},
		Config:     &multirepo.MultiRepoConfig{RepoMap: repoMap(a.cfg.Server), TrustedRoots: map[string][]byte{}},
	}
	var recovered []string
	fetched := map[string]*fetchLog{}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		recovered = append(recovered, a.cleanCache(name)...)
		if err := a.linkDelegated(name); err != nil {
			return nil, err
		}
		provisioned := a.cfg.ReleaseRoot
		if name == deviceapi.RepoFleet {
			provisioned = a.cfg.FleetRoot
		}
		root, err := a.trustedRoot(name, provisioned)
		if err != nil {
			return nil, err
		}
		base := a.cfg.Server + deviceapi.RepoBase(name)
		cfg, err := config.New(deviceapi.MetadataDir(base), root)
		if err != nil {
			return nil, fmt.Errorf("agent: %s repository: %w", name, err)
		}
		cfg.RemoteTargetsURL = deviceapi.TargetsDir(base)
		cfg.LocalMetadataDir = a.tufDir(name)
		cfg.LocalTargetsDir = filepath.Join(a.tufDir(name), "targets")
		limits := a.cfg.metadataMax()
		fl := &fetchLog{}
		fetched[name] = fl
		cfg.Fetcher = &limitFetcher{next: a.http.TUFFetcher(ctx), metadataDir: deviceapi.MetadataDir(base) + "/", max: limits, log: fl}
		cfg.RootMaxLength, cfg.TimestampMaxLength = int64(limits.Root), int64(limits.Timestamp)
		cfg.SnapshotMaxLength, cfg.TargetsMaxLength = int64(limits.Snapshot), int64(limits.Targets)
		cfg.MaxDelegations = 8
		u, err := updater.New(cfg)
		if err != nil {
			return nil, &tufError{repo: name, err: err}
		}
		u.UnsafeSetRefTime(ref)
		if err := u.Refresh(); err != nil {
			return nil, &tufError{repo: name, file: fl.take(), err: err}
		}
		if err := a.checkRootFloor(name, u); err != nil {
			return nil, err
		}
		if err := syncTree(a.tufDir(name)); err != nil {
			return nil, err
		}
		m.TUFClients[name] = u
	}
	return &repos{multi: m, fetched: fetched, recovered: recovered}, nil
}

// syncTree fsyncs the files go-tuf wrote (it renames without fsync), so
// the rollback protection they carry survives a power loss.
func syncTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("agent: fsync %s: %w", e.Name(), err)
		}
	}
	return atomicfile.SyncDir(dir)
}

// offered returns the fleet's offered targets for product, highest version
// first.
func (r *repos) offered(product string) []string {
	var out []string
	for path := range r.multi.TUFClients[deviceapi.RepoFleet].GetTopLevelTargets() {
		if v, ok := strings.CutPrefix(path, product+"/"); ok && release.ValidVersion(v) == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return release.CompareVersions(out[i], out[j]) > 0 })
	return out
}

// errMismatch is returned when the repositories do not agree on a target.
var errMismatch = errors.New("the release and fleet repositories do not agree on the target")

// agreed returns the target both repositories list identically, with the
// release repository's custom metadata, and the fleet's own entry.
func (r *repos) agreed(target string) (rel, fleet *metadata.TargetFiles, err error) {
	r.forget()
	fleet, ferr := r.multi.TUFClients[deviceapi.RepoFleet].GetTargetInfo(target)
	fleetFile := r.fetched[deviceapi.RepoFleet].take()
	info, _, err := r.multi.GetTargetInfo(target)
	if err == nil && ferr == nil {
		// multirepo returns the entry of the first repository in the
		// mapping, the release repository, whose custom holds the manifest.
		relInfo, rerr := r.multi.TUFClients[deviceapi.RepoRelease].GetTargetInfo(target)
		if rerr == nil && relInfo.Equal(*info) {
			return relInfo, fleet, nil
		}
	}
	// Say precisely what is wrong. go-tuf loads a role that failed again
	// on every lookup, so the release file is the one requested last.
	r.forget()
	relInfo, rerr := r.multi.TUFClients[deviceapi.RepoRelease].GetTargetInfo(target)
	if err := lookupFailure(deviceapi.RepoRelease, r.fetched[deviceapi.RepoRelease].take(), target, rerr); err != nil {
		return nil, nil, err
	}
	if err := lookupFailure(deviceapi.RepoFleet, fleetFile, target, ferr); err != nil {
		return nil, nil, err
	}
	// decide already refreshed once more, so a publication between the
	// two refreshes is ruled out; a mirror syncing slowly is not.
	const advice = "; if a mirror is in the middle of a sync the next check agrees, otherwise tell the fleet's operator"
	switch {
	case rerr != nil && ferr != nil:
		return nil, nil, fmt.Errorf("%w: %s is in neither repository"+advice, errMismatch, target)
	case rerr != nil:
		return nil, nil, fmt.Errorf("%w: %s is offered by the fleet repository but not signed in the release repository: "+
			"a release the maker did not sign, refused (the fleet's online keys may be misused)"+advice, errMismatch, target)
	case ferr != nil:
		return nil, nil, fmt.Errorf("%w: %s is not in the fleet repository"+advice, errMismatch, target)
	case relInfo.Length != fleet.Length:
		return nil, nil, fmt.Errorf("%w: %s has length %d in the release repository and %d in the fleet repository: refused"+advice,
			errMismatch, target, relInfo.Length, fleet.Length)
	default:
		return nil, nil, fmt.Errorf("%w: %s has different hashes in the two repositories: refused"+advice, errMismatch, target)
	}
}

// lookupFailure is nil when err is nil or says that repository name does
// not list target, else err as the failure of that repository's file
// (the file it was loading, "" when unknown): a
// delegated role on the way that could not be loaded (too long, unsigned,
// unreachable) says nothing about whether the repositories agree. go-tuf
// gives "not listed" no type, only its message "target <path> not found".
func lookupFailure(name, file, target string, err error) error {
	if err == nil || err.Error() == "target "+target+" not found" {
		return nil
	}
	return &tufError{repo: name, file: file, err: err}
}

// forget clears the record of the files requested so far, so that a
// failure that requests nothing is not blamed on an earlier file.
func (r *repos) forget() {
	for _, l := range r.fetched {
		l.take()
	}
}

// support returns the product's support declaration from the release
// repository, verified against the length and hashes the trusted product
// role lists; nil when there is none. A local copy (go-tuf's target cache
// under tuf/release/targets) with those length and hashes is used as it is,
// so an unchanged declaration is not downloaded again; any other is
// downloaded, verified and cached.
func (r *repos) support(product string) (*release.Support, error) {
	u := r.multi.TUFClients[deviceapi.RepoRelease]
	name := release.SupportTargetName(product)
	info, err := u.GetTargetInfo(name)
	if err != nil {
		return nil, nil
	}
	_, data, err := u.FindCachedTarget(info, "")
	if err != nil || data == nil {
		_, data, err = u.DownloadTarget(info, "", "")
	}
	if err != nil {
		return nil, &tufError{repo: deviceapi.RepoRelease, file: name, err: err}
	}
	var s release.Support
	if err := jsonUnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("agent: support declaration: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}
