package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/uptrust/uptrust/internal/atomicfile"
)

// The metadata cache (DataDir/tuf/<repository>) carries the device's
// rollback protection between checks. A cached file that does not parse
// would stop every later refresh (go-tuf returns the parse error), so
// cleanCache removes it first: a non-root file is fetched again, verified
// like any other; an unreadable root.json makes the refresh start from the
// provisioned root and walk the chain of roots again. That walk can only
// reach the versions the server still signs, so the highest root version
// ever trusted is kept in floor.json, and a chain that ends below it is
// refused as a rollback (checkRootFloor).

// cleanCache removes the cached metadata files of repository name that do
// not parse, and says which it removed.
func (a *Agent) cleanCache(name string) []string {
	dir := a.tufDir(name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err == nil {
			err = parseCached(e.Name(), b)
		}
		if err == nil {
			continue
		}
		if rerr := os.Remove(path); rerr != nil {
			a.log.Warn("cannot remove an unreadable cached metadata file", "file", path, "err", rerr)
			continue
		}
		what := "fetched again"
		if e.Name() == "root.json" {
			what = "the root chain is walked again from the provisioned root"
		}
		a.log.Warn("removed an unreadable cached metadata file", "file", path, "err", err)
		removed = append(removed, fmt.Sprintf("the cached %s metadata %s was unreadable (%v); %s", name, e.Name(), err, what))
	}
	return removed
}

// parseCached parses a cached metadata file as the role its name or
// content says.
func parseCached(file string, b []byte) error {
	var env struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	var err error
	switch env.Signed.Type {
	case metadata.ROOT:
		_, err = metadata.Root().FromBytes(b)
	case metadata.TIMESTAMP:
		_, err = metadata.Timestamp().FromBytes(b)
	case metadata.SNAPSHOT:
		_, err = metadata.Snapshot().FromBytes(b)
	case metadata.TARGETS:
		_, err = metadata.Targets().FromBytes(b)
	default:
		err = fmt.Errorf("unknown metadata type %q", env.Signed.Type)
	}
	if err == nil && file == "root.json" && env.Signed.Type != metadata.ROOT {
		err = fmt.Errorf("it holds %s metadata", env.Signed.Type)
	}
	return err
}

// checkRootFloor refuses a refreshed repository whose trusted root is
// older than the newest this device ever trusted, and records a newer one.
func (a *Agent) checkRootFloor(name string, u *updater.Updater) error {
	v := u.GetTrustedMetadataSet().Root.Signed.Version
	f, err := readFloor(a.cfg.DataDir)
	if err != nil || f == nil {
		// Without a readable floor there is nothing to compare with;
		// LoadState rebuilds or reports it.
		return nil
	}
	if have := f.Roots[name]; v < have {
		return &tufError{repo: name, err: &metadata.ErrBadVersionNumber{
			Msg: fmt.Sprintf("the %s root chain ends at version %d, below version %d this device trusted before", name, v, have)}}
	} else if v == have {
		return nil
	}
	if f.Roots == nil {
		f.Roots = map[string]int64{}
	}
	f.Roots[name] = v
	return writeFloor(a.cfg.DataDir, f)
}

// go-tuf v2.4 saves a verified delegated role under its name path-escaped
// (tuf/release/products%2Fthermostat.json) but looks for the trusted local
// copy under the name unescaped (tuf/release/products/thermostat.json), so
// it never finds one and downloads every delegated role on every check.
// linkDelegated copies each saved delegated role to the path go-tuf reads,
// and removes copies whose saved role is gone. The copies are derived: go-tuf
// verifies a local copy against the trusted snapshot (version, and the
// length and hashes the snapshot lists) and the delegating role's keys
// before using it, and downloads the role when the copy does not verify.
func (a *Agent) linkDelegated(name string) error {
	dir := a.tufDir(name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	want := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !strings.Contains(e.Name(), "%") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		role, err := url.PathUnescape(e.Name())
		if err != nil || !filepath.IsLocal(role) || role == e.Name() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("agent: cached %s metadata: %w", name, err)
		}
		path := filepath.Join(dir, filepath.FromSlash(role))
		want[path] = true
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, b) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("agent: cached %s metadata: %w", name, err)
		}
		if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("agent: cached %s metadata: %w", name, err)
		}
	}
	// Remove copies of roles no longer saved (cleanCache removed an
	// unreadable one, or the tree was edited by hand).
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return nil
		}
		if d.IsDir() {
			if d.Name() == "targets" && filepath.Dir(path) == dir {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Dir(path) != dir && !want[path] {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("agent: cached %s metadata: %w", name, err)
			}
		}
		return nil
	})
}
