package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// A server that receives pushes starts from a server kit: a directory the
// offline machine writes (WriteServerKit) with the configuration, the
// online keys and the root chain of both repositories under trusted/. The
// kit is the server's trust anchor, as the device root files are a
// device's: the operator carries it to the server, and the server accepts
// only pushes that follow those roots. Its database starts empty and is
// seeded from trusted/ at the first start (SeedTrusted).

// TrustedDir is the directory of a server kit that holds the root chains:
// trusted/<repo>/<version>.root.json.
const TrustedDir = "trusted"

// WriteServerKit writes a server kit for this project into out, which must
// not exist or be empty: uptrust.json (without the database, which the
// server names), keys/online/ and trusted/. It holds no offline key.
func (p *Project) WriteServerKit(ctx context.Context, out string) error {
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return fmt.Errorf("project: %s is not empty", out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("project: %w", err)
	}
	for _, d := range []string{"keys/online", "device"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o700); err != nil {
			return fmt.Errorf("project: %w", err)
		}
	}
	online, err := os.ReadDir(p.path("keys", "online"))
	if err != nil {
		return fmt.Errorf("project: %w", err)
	}
	for _, e := range online {
		if !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		b, err := os.ReadFile(p.path("keys", "online", e.Name()))
		if err != nil {
			return fmt.Errorf("project: %w", err)
		}
		if err := atomicfile.WriteFile(filepath.Join(out, "keys", "online", e.Name()), b, 0o600); err != nil {
			return fmt.Errorf("project: %w", err)
		}
	}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		all, err := p.Store.AllMetadata(ctx, name)
		if err != nil {
			return fmt.Errorf("project: %s metadata: %w", name, err)
		}
		dir := filepath.Join(out, TrustedDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("project: %w", err)
		}
		var latest []byte
		var lv int64
		for _, m := range all {
			if m.Role != repo.RoleRoot {
				continue
			}
			if err := atomicfile.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.root.json", m.Version)), m.Body, 0o644); err != nil {
				return fmt.Errorf("project: %w", err)
			}
			if m.Version > lv {
				latest, lv = m.Body, m.Version
			}
		}
		if err := atomicfile.WriteFile(DeviceRootPath(out, name), latest, 0o644); err != nil {
			return fmt.Errorf("project: %w", err)
		}
	}
	cfg := p.Config
	cfg.Database = ""
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	// uptrust.json last: its presence marks a complete directory.
	return atomicfile.WriteFile(filepath.Join(out, "uptrust.json"), append(b, '\n'), 0o600)
}

// IsServerKit reports whether dir holds trusted/ root chains.
func IsServerKit(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, TrustedDir, deviceapi.RepoRelease))
	return err == nil && st.IsDir()
}

// trustedRoots reads the root chain of repository name from the kit.
func (p *Project) trustedRoots(name string) ([]store.Metadata, error) {
	dir := p.path(TrustedDir, name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("project: trusted roots: %w", err)
	}
	var out []store.Metadata
	for _, e := range ents {
		v, ok := strings.CutSuffix(e.Name(), ".root.json")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("project: %s: unexpected file %s (want N.root.json)", dir, e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("project: %w", err)
		}
		out = append(out, store.Metadata{Repo: name, Role: repo.RoleRoot, Version: n, Body: b})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("project: %s holds no root", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// SeedTrusted stores the root chains of the server kit in an empty
// database, checks that they name the online keys of keys/online, and
// signs the fleet repository's online roles; it returns false and changes
// nothing when the database holds roots already. Each root must be signed
// by the threshold of the one before and of itself (repo.Accept), so a
// kit whose files were mixed up is refused. Replicas starting together
// seed once: the check and the seeding share one transaction.
func (p *Project) SeedTrusted(ctx context.Context) (bool, error) {
	var docs []store.Metadata
	online := map[string]repo.OnlineKeys{}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		roots, err := p.trustedRoots(name)
		if err != nil {
			return false, err
		}
		docs = append(docs, roots...)
		if online[name], err = p.keys.online(name); err != nil {
			return false, err
		}
	}
	now := p.Clock.Now().UTC()
	seeded := false
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		seeded = false
		if _, err := tx.LatestMetadata(ctx, deviceapi.RepoRelease, repo.RoleRoot); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := repo.Accept(ctx, tx, docs, now, nil); err != nil {
			return fmt.Errorf("project: trusted roots: %w", err)
		}
		for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
			if err := checkOnlineKeys(ctx, tx, name, online[name]); err != nil {
				return fmt.Errorf("project: trusted roots: %w", err)
			}
			if err := repo.InitOnline(ctx, tx, name, now, p.Lifetimes(), online[name]); err != nil {
				return err
			}
			root, _ := tx.LatestMetadata(ctx, name, repo.RoleRoot)
			if err := audit(ctx, tx, now, ActionSeed, name, fmt.Sprintf("trusts the %s root chain v1..v%d from %s", name, root.Version, p.path(TrustedDir))); err != nil {
				return err
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}
