package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/store"
)

// This file accepts metadata signed elsewhere: documents an offline
// machine pushes to a server (uptrust push), and documents an offline
// machine pulls from a server (uptrust pull). Both ends run the same
// checks, so neither trusts the other beyond the root chain it holds.
//
// Only the roles signed with offline keys travel: the roots of both
// repositories, and the release repository's targets and product roles.
// Snapshot and timestamp (and the fleet repository's targets) are signed by
// whoever holds the online keys at each end.

// Errors of Accept. Every error Accept returns wraps one of them and names
// the document.
var (
	// ErrRefused: a document is malformed, not signed by the threshold of
	// the keys its delegator names, expired, of a role that does not
	// travel, or changes what must not change.
	ErrRefused = errors.New("refused")
	// ErrDiverged: a document has a version the receiver already holds with
	// a different body, or skips versions: the sender built on metadata
	// other than the receiver's (two offline machines signed independently,
	// or the sender is behind).
	ErrDiverged = errors.New("diverged")
)

// Travels says whether documents of role in repository name are signed
// offline and so can be pushed and pulled.
func Travels(name, role string) bool {
	switch {
	case role == RoleRoot:
		return name == deviceapi.RepoRelease || name == deviceapi.RepoFleet
	case name != deviceapi.RepoRelease:
		return false
	case role == RoleTargets:
		return true
	default:
		return strings.HasPrefix(role, "products/")
	}
}

// Accepted is what Accept stored: for each repository, the roles that
// changed and their new latest version.
type Accepted struct {
	// Docs are the documents stored, in the order they were checked.
	Docs []store.Metadata
}

// Changed reports whether Accept stored a document of role in repository
// name.
func (a Accepted) Changed(name, role string) bool {
	for _, d := range a.Docs {
		if d.Repo == name && d.Role == role {
			return true
		}
	}
	return false
}

// Roles lists the roles of repository name Accept stored documents of,
// sorted.
func (a Accepted) Roles(name string) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range a.Docs {
		if d.Repo == name && !seen[d.Role] {
			seen[d.Role] = true
			out = append(out, d.Role)
		}
	}
	sort.Strings(out)
	return out
}

// Accept checks docs against what tx holds and stores those that are new,
// with their exact bytes. For every role, documents the receiver holds
// already with the same body are skipped; the others must follow the
// receiver's latest version one by one (ErrDiverged otherwise), and:
//
//   - a root must be signed by the threshold of the previous root and of
//     itself (the TUF rotation rule);
//   - targets must be signed by the threshold the latest root (after the
//     roots in docs) names;
//   - a product role must be delegated by the latest targets, signed by the
//     threshold that delegation names, list only paths the delegation
//     covers, and keep every target of its previous version except
//     support declarations (ProtectedTarget decides) with the same length,
//     hashes and custom metadata: releases are never rewritten nor removed;
//   - the latest version of every role after Accept must not be expired at
//     now.
//
// Roots come first, then targets, then product roles, so a rotation of a
// delegator's keys and documents signed with the new keys can travel
// together. Nothing is stored unless every document passes: the caller runs
// Accept inside the store transaction that also re-signs snapshot and
// timestamp.
func Accept(ctx context.Context, tx store.Tx, docs []store.Metadata, now time.Time, protected func(path string) bool) (Accepted, error) {
	var acc Accepted
	sorted := append([]store.Metadata(nil), docs...)
	for _, d := range sorted {
		if !Travels(d.Repo, d.Role) {
			return acc, fmt.Errorf("%s %s v%d: %w: only roots, targets and product roles signed offline are accepted; snapshot and timestamp are signed by the server", d.Repo, d.Role, d.Version, ErrRefused)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Repo != b.Repo {
			return a.Repo > b.Repo // release before fleet
		}
		if ra, rb := roleRank(a.Role), roleRank(b.Role); ra != rb {
			return ra < rb
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.Version < b.Version
	})
	for _, d := range sorted {
		stored, err := accept1(ctx, tx, d, protected)
		if err != nil {
			return acc, fmt.Errorf("%s %s v%d: %w", d.Repo, d.Role, d.Version, err)
		}
		if stored {
			acc.Docs = append(acc.Docs, d)
		}
	}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		for _, role := range acc.Roles(name) {
			m, err := tx.LatestMetadata(ctx, name, role)
			if err != nil {
				return acc, fmt.Errorf("%s %s: %w", name, role, err)
			}
			if !m.Expires.After(now) {
				return acc, fmt.Errorf("%s %s v%d: %w: expired at %s (now %s): sign it again",
					name, role, m.Version, ErrRefused, m.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			}
		}
	}
	return acc, nil
}

func roleRank(role string) int {
	switch role {
	case RoleRoot:
		return 0
	case RoleTargets:
		return 1
	}
	return 2
}

// accept1 checks one document and stores it; false when the receiver
// holds it already.
func accept1(ctx context.Context, tx store.Tx, d store.Metadata, protected func(string) bool) (bool, error) {
	var latest int64
	switch cur, err := tx.LatestMetadata(ctx, d.Repo, d.Role); {
	case err == nil:
		latest = cur.Version
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	if d.Version <= latest {
		have, err := metadataAt(ctx, tx, d.Repo, d.Role, d.Version)
		if err != nil {
			return false, err
		}
		if bytes.Equal(have, d.Body) {
			return false, nil
		}
		return false, fmt.Errorf("%w: this side holds a different v%d (latest v%d): the two copies of the repository were signed independently; bring the offline project up to date (uptrust pull) and sign again", ErrDiverged, d.Version, latest)
	}
	if d.Version != latest+1 {
		return false, fmt.Errorf("%w: versions between v%d and v%d are missing (latest here is v%d)", ErrDiverged, latest, d.Version, latest)
	}
	var expires time.Time
	switch {
	case d.Role == RoleRoot:
		next, err := metadata.Root().FromBytes(d.Body)
		if err != nil {
			return false, fmt.Errorf("%w: malformed root: %v", ErrRefused, err)
		}
		if err := checkVersion(next.Signed.Version, d.Version); err != nil {
			return false, err
		}
		if latest > 0 {
			prev, err := LoadRoot(ctx, tx, d.Repo)
			if err != nil {
				return false, err
			}
			if err := prev.VerifyDelegate(RoleRoot, next); err != nil {
				return false, fmt.Errorf("%w: not signed by the threshold of the previous root's keys: %v", ErrRefused, err)
			}
		}
		if err := next.VerifyDelegate(RoleRoot, next); err != nil {
			return false, fmt.Errorf("%w: not signed by the threshold of its own root keys: %v", ErrRefused, err)
		}
		expires = next.Signed.Expires
	case d.Role == RoleTargets:
		md, err := metadata.Targets().FromBytes(d.Body)
		if err != nil {
			return false, fmt.Errorf("%w: malformed targets: %v", ErrRefused, err)
		}
		if err := checkVersion(md.Signed.Version, d.Version); err != nil {
			return false, err
		}
		root, err := LoadRoot(ctx, tx, d.Repo)
		if err != nil {
			return false, err
		}
		if err := root.VerifyDelegate(RoleTargets, md); err != nil {
			return false, fmt.Errorf("%w: not signed by the threshold of the targets keys the root names (wrong key?): %v", ErrRefused, err)
		}
		expires = md.Signed.Expires
	default:
		md, err := metadata.Targets().FromBytes(d.Body)
		if err != nil {
			return false, fmt.Errorf("%w: malformed targets: %v", ErrRefused, err)
		}
		if err := checkVersion(md.Signed.Version, d.Version); err != nil {
			return false, err
		}
		top, err := LoadTargets(ctx, tx, d.Repo, RoleTargets)
		if err != nil {
			return false, err
		}
		del := delegation(top, d.Role)
		if del == nil {
			return false, fmt.Errorf("%w: targets does not delegate %s", ErrRefused, d.Role)
		}
		if err := top.VerifyDelegate(d.Role, md); err != nil {
			return false, fmt.Errorf("%w: not signed by the threshold of the keys targets delegates %s to (wrong key?): %v", ErrRefused, d.Role, err)
		}
		for path := range md.Signed.Targets {
			if ok, err := del.IsDelegatedPath(path); err != nil || !ok {
				return false, fmt.Errorf("%w: target %s is outside the paths delegated to %s (%s)", ErrRefused, path, d.Role, strings.Join(del.Paths, ", "))
			}
		}
		if latest > 0 {
			prev, err := LoadTargets(ctx, tx, d.Repo, d.Role)
			if err != nil {
				return false, err
			}
			if err := keepsTargets(prev.Signed, md.Signed, protected); err != nil {
				return false, err
			}
		}
		expires = md.Signed.Expires
	}
	if err := tx.PutMetadata(ctx, store.Metadata{Repo: d.Repo, Role: d.Role, Version: d.Version, Body: d.Body, Expires: expires}); err != nil {
		return false, err
	}
	return true, nil
}

func checkVersion(signed, declared int64) error {
	if signed != declared {
		return fmt.Errorf("%w: the document says version %d", ErrRefused, signed)
	}
	return nil
}

func delegation(top *metadata.Metadata[metadata.TargetsType], role string) *metadata.DelegatedRole {
	if top.Signed.Delegations == nil {
		return nil
	}
	for i, r := range top.Signed.Delegations.Roles {
		if r.Name == role {
			return &top.Signed.Delegations.Roles[i]
		}
	}
	return nil
}

// keepsTargets refuses next when it drops or changes a target of prev that
// protected says must stay as published.
func keepsTargets(prev, next metadata.TargetsType, protected func(string) bool) error {
	for path, old := range prev.Targets {
		if protected != nil && !protected(path) {
			continue
		}
		cur, ok := next.Targets[path]
		if !ok {
			return fmt.Errorf("%w: removes the published target %s (published releases are never withdrawn)", ErrRefused, path)
		}
		if !old.Equal(*cur) {
			return fmt.Errorf("%w: changes the length or hashes of the published target %s (publish a new version instead)", ErrRefused, path)
		}
		if !bytes.Equal(rawCustom(old), rawCustom(cur)) {
			return fmt.Errorf("%w: changes the signed manifest of the published target %s (publish a new version instead)", ErrRefused, path)
		}
	}
	return nil
}

func rawCustom(t *metadata.TargetFiles) []byte {
	if t.Custom == nil {
		return nil
	}
	return *t.Custom
}

// metadataAt returns the body of version v of role; an error wrapping
// store.ErrNotFound when the receiver does not hold it (versions below a
// purge horizon are never purged, so that is a broken store).
func metadataAt(ctx context.Context, r store.Reader, name, role string, v int64) ([]byte, error) {
	all, err := r.AllMetadata(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, m := range all {
		if m.Role == role && m.Version == v {
			return m.Body, nil
		}
	}
	return nil, fmt.Errorf("%s %s v%d: %w", name, role, v, store.ErrNotFound)
}

// InitOnline creates the online roles of a repository whose roots were
// accepted from elsewhere (a server seeded with the offline machine's root
// chain): version 1 of targets when k.Targets is set (the fleet
// repository), then snapshot and timestamp. The release repository's
// targets are signed offline and arrive with the first push; until then it
// has no snapshot and nothing is due (CheckDue).
func InitOnline(ctx context.Context, tx store.Tx, name string, now time.Time, life Lifetimes, k OnlineKeys) error {
	if k.Targets == nil {
		return nil
	}
	root, err := LoadRoot(ctx, tx, name)
	if err != nil {
		return err
	}
	targets := metadata.Targets(expiry(now, life.of(name, RoleTargets)))
	if err := signAndCheck(root, targets, RoleTargets, k.Targets); err != nil {
		return fmt.Errorf("repo %s: %w", name, err)
	}
	if err := put(ctx, tx, name, RoleTargets, targets); err != nil {
		return err
	}
	return RefreshSnapshot(ctx, tx, name, now, life, k.Snapshot, k.Timestamp)
}
