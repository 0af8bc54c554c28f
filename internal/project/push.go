package project

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// Publishing from the offline machine to a server (uptrust push) and back
// (uptrust pull) moves the documents signed with offline keys (repo.Travels)
// and the payloads they name. Both directions end in AcceptSigned, which
// checks the documents against the root chain the receiving project holds
// (repo.Accept), derives the products and releases they declare, and
// re-signs snapshot and timestamp with the receiver's online keys, all in
// one store transaction: devices see all of a push or none of it.

// Audit actions of publishing.
const (
	ActionPush = "push"
	ActionPull = "pull"
	ActionSeed = "server.seed"
)

// RoleVersion is the latest version of one role: what a push compares.
type RoleVersion struct {
	Repo    string `json:"repo"`
	Role    string `json:"role"`
	Version int64  `json:"version"`
	// SHA256 and Length are over the document's exact bytes.
	SHA256 string `json:"sha256"`
	Length int64  `json:"length"`
}

// SignedState returns the latest version of every role signed offline, in
// both repositories, ordered by repository and role.
func (p *Project) SignedState(ctx context.Context) ([]RoleVersion, error) {
	var out []RoleVersion
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		all, err := p.Store.AllMetadata(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("project: %s metadata: %w", name, err)
		}
		latest := map[string]store.Metadata{}
		for _, m := range all {
			if !repo.Travels(name, m.Role) {
				continue
			}
			if cur, ok := latest[m.Role]; !ok || m.Version > cur.Version {
				latest[m.Role] = m
			}
		}
		for _, m := range latest {
			sum := sha256.Sum256(m.Body)
			out = append(out, RoleVersion{Repo: name, Role: m.Role, Version: m.Version, SHA256: hex.EncodeToString(sum[:]), Length: int64(len(m.Body))})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Repo != out[j].Repo {
			return out[i].Repo > out[j].Repo
		}
		return out[i].Role < out[j].Role
	})
	return out, nil
}

// SignedDocument returns version v of a role signed offline.
func (p *Project) SignedDocument(ctx context.Context, name, role string, v int64) ([]byte, error) {
	if !repo.Travels(name, role) {
		return nil, fmt.Errorf("project: %s %s: %w: not a role signed offline", name, role, store.ErrNotFound)
	}
	all, err := p.Store.AllMetadata(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, m := range all {
		if m.Role == role && m.Version == v {
			return m.Body, nil
		}
	}
	return nil, fmt.Errorf("project: %s %s v%d: %w", name, role, v, store.ErrNotFound)
}

// ErrBehind is returned by Outgoing when the other side holds a newer
// version of a role than this project: pull first.
var ErrBehind = errors.New("project: the server holds newer metadata than this project")

// Outgoing returns the documents this project holds that the other side,
// whose latest versions are remote, lacks: every version of every role
// signed offline above the remote's, oldest first. It checks first that
// both sides agree on the versions they share (the remote's latest version
// of each role must be byte-identical here), and refuses when the remote is
// ahead (ErrBehind) or diverged (repo.ErrDiverged), so a push built on old
// metadata never leaves the offline machine.
func (p *Project) Outgoing(ctx context.Context, remote []RoleVersion) ([]store.Metadata, error) {
	theirs := map[string]RoleVersion{}
	for _, r := range remote {
		theirs[r.Repo+" "+r.Role] = r
	}
	mine, err := p.SignedState(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Metadata
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		all, err := p.Store.AllMetadata(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, r := range remote {
			if r.Repo != name {
				continue
			}
			i := slices.IndexFunc(mine, func(m RoleVersion) bool { return m.Repo == r.Repo && m.Role == r.Role })
			if i < 0 || mine[i].Version < r.Version {
				have := int64(0)
				if i >= 0 {
					have = mine[i].Version
				}
				return nil, fmt.Errorf("%w: %s %s is v%d there, v%d here: run uptrust pull first", ErrBehind, name, r.Role, r.Version, have)
			}
			for _, m := range all {
				if m.Role == r.Role && m.Version == r.Version {
					sum := sha256.Sum256(m.Body)
					if hex.EncodeToString(sum[:]) != r.SHA256 {
						return nil, fmt.Errorf("project: %s %s v%d: %w: the server's copy differs from this project's: the two were signed independently (another offline machine published first); this project cannot push without discarding one of them",
							name, r.Role, r.Version, repo.ErrDiverged)
					}
				}
			}
		}
		for _, m := range all {
			if !repo.Travels(name, m.Role) {
				continue
			}
			if t, ok := theirs[name+" "+m.Role]; ok && m.Version <= t.Version {
				continue
			}
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Repo != out[j].Repo || out[i].Role != out[j].Role {
			return false
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// TargetRef is a payload a document names: what the receiver must hold
// before it accepts the document.
type TargetRef struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Length int64  `json:"length"`
}

// TargetsNamed lists the payloads the product roles among docs name, each
// once, in path order. Documents that do not parse are skipped: Accept
// refuses them.
func TargetsNamed(docs []store.Metadata) []TargetRef {
	seen := map[string]bool{}
	var out []TargetRef
	for _, d := range docs {
		if d.Role == repo.RoleRoot || d.Role == repo.RoleTargets {
			continue
		}
		md, err := metadata.Targets().FromBytes(d.Body)
		if err != nil {
			continue
		}
		for path, tf := range md.Signed.Targets {
			sha := hex.EncodeToString(tf.Hashes["sha256"])
			if seen[sha] {
				continue
			}
			seen[sha] = true
			out = append(out, TargetRef{Path: path, SHA256: sha, Length: tf.Length})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// AcceptResult is what AcceptSigned changed.
type AcceptResult struct {
	// Accepted lists the documents stored, "repo role vN".
	Accepted []string `json:"accepted"`
	// Products and Releases list what the documents added
	// ("product", "product/version"); Support lists products whose support
	// declaration changed.
	Products []string `json:"products_added"`
	Releases []string `json:"releases_added"`
	Support  []string `json:"support_changed"`
}

// ErrNotSeeded is returned by AcceptSigned on a project without roots.
var ErrNotSeeded = errors.New("project: nothing trusted yet")

// ErrMissingPayload is returned by AcceptSigned when a document names a
// payload the blob store does not hold with that length.
var ErrMissingPayload = errors.New("project: payload not uploaded")

// AcceptSigned stores docs, signed offline elsewhere, after repo.Accept's
// checks, in one transaction with everything they imply:
//   - every payload the product roles name must be in the blob store with
//     its length (blobs are stored under their SHA-256, so the content
//     matches the signed hash);
//   - each new support declaration is read, checked (it names its product,
//     it is valid, it does not shorten the support period of the one
//     before) and creates the product when it is the first;
//   - each new release target's signed manifest is checked like
//     AddRelease checks a new release (valid, names its target, security
//     version not below an earlier release's) and recorded;
//   - a new root must keep naming the online keys this project holds, or
//     the receiver could not sign snapshot and timestamp any more;
//   - one audit entry per product, release, support change and root, and
//     one for the whole (action, "push" or "pull");
//   - snapshot and timestamp are re-signed with this project's online keys
//     (the fleet repository's targets too when its root changed).
//
// Documents this project holds already are skipped, so a push repeated
// after a lost answer changes nothing. A project without roots (a server
// not yet seeded, see SeedTrusted) accepts nothing.
func (p *Project) AcceptSigned(ctx context.Context, docs []store.Metadata, action string) (AcceptResult, error) {
	var res AcceptResult
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		if _, err := p.Store.LatestMetadata(ctx, name, repo.RoleRoot); errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("%w: the %s repository has no root yet: start the server from a directory made by uptrust server-kit so it trusts your roots", ErrNotSeeded, name)
		} else if err != nil {
			return res, err
		}
	}
	online := map[string]repo.OnlineKeys{}
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		k, err := p.keys.online(name)
		if err != nil {
			return res, err
		}
		online[name] = k
	}
	now := p.Clock.Now().UTC()
	life := p.Lifetimes()
	protected := func(path string) bool { return !strings.HasSuffix(path, "/support.json") }
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		res = AcceptResult{}
		// Support declarations as they were, to refuse a shortening.
		prevSupport := map[string]*release.Support{}
		for _, d := range docs {
			if d.Role == repo.RoleRoot || d.Role == repo.RoleTargets {
				continue
			}
			product := strings.TrimPrefix(d.Role, "products/")
			if _, ok := prevSupport[product]; ok {
				continue
			}
			prevSupport[product] = nil
			if s, err := p.supportIn(ctx, tx, product); err == nil {
				prevSupport[product] = s
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		acc, err := repo.Accept(ctx, tx, docs, now, protected)
		if err != nil {
			return err
		}
		if len(acc.Docs) == 0 {
			// Nothing new (a push repeated after a lost answer): recorded,
			// nothing re-signed.
			return audit(ctx, tx, now, action, "repositories", "nothing new")
		}
		if err := p.checkPayloads(ctx, acc.Docs); err != nil {
			return err
		}
		for _, d := range acc.Docs {
			res.Accepted = append(res.Accepted, fmt.Sprintf("%s %s v%d", d.Repo, d.Role, d.Version))
		}
		for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
			if acc.Changed(name, repo.RoleRoot) {
				if err := checkOnlineKeys(ctx, tx, name, online[name]); err != nil {
					return err
				}
				root, _ := tx.LatestMetadata(ctx, name, repo.RoleRoot)
				if err := audit(ctx, tx, now, ActionRootPublish, name, fmt.Sprintf("root v%d by %s", root.Version, action)); err != nil {
					return err
				}
			}
		}
		for _, role := range acc.Roles(deviceapi.RepoRelease) {
			if role == repo.RoleRoot || role == repo.RoleTargets {
				continue
			}
			product := strings.TrimPrefix(role, "products/")
			if err := p.deriveProduct(ctx, tx, product, prevSupport[product], now, &res); err != nil {
				return fmt.Errorf("release %s: %w", role, err)
			}
		}
		if err := audit(ctx, tx, now, action, "repositories", pushDetail(res)); err != nil {
			return err
		}
		if len(acc.Roles(deviceapi.RepoRelease)) > 0 {
			k := online[deviceapi.RepoRelease]
			if err := repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, now, life, k.Snapshot, k.Timestamp); err != nil {
				return err
			}
		}
		if acc.Changed(deviceapi.RepoFleet, repo.RoleRoot) {
			k := online[deviceapi.RepoFleet]
			if _, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoFleet, repo.RoleTargets, now, life, func(*metadata.TargetsType) error { return nil }, k.Targets); err != nil {
				return err
			}
			if err := repo.RefreshSnapshot(ctx, tx, deviceapi.RepoFleet, now, life, k.Snapshot, k.Timestamp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return AcceptResult{}, err
	}
	return res, nil
}

func pushDetail(r AcceptResult) string {
	detail := fmt.Sprintf("%d documents: %s", len(r.Accepted), strings.Join(r.Accepted, ", "))
	if len(r.Products) > 0 {
		detail += "; products added: " + strings.Join(r.Products, ", ")
	}
	if len(r.Releases) > 0 {
		detail += "; releases added: " + strings.Join(r.Releases, ", ")
	}
	if len(r.Support) > 0 {
		detail += "; support declarations changed: " + strings.Join(r.Support, ", ")
	}
	return detail
}

// checkOnlineKeys refuses a root of repository name that does not name the
// keys of k for the online roles.
func checkOnlineKeys(ctx context.Context, r store.Reader, name string, k repo.OnlineKeys) error {
	root, err := repo.LoadRoot(ctx, r, name)
	if err != nil {
		return err
	}
	want := map[string]repo.Signer{repo.RoleSnapshot: k.Snapshot, repo.RoleTimestamp: k.Timestamp}
	if name == deviceapi.RepoFleet {
		want[repo.RoleTargets] = k.Targets
	}
	for role, s := range want {
		r := root.Signed.Roles[role]
		if r == nil || !slices.Contains(r.KeyIDs, s.KeyID()) {
			return fmt.Errorf("%w: %s root v%d does not name the %s key this side holds (%s, in keys/online): it could not sign %s any more; copy the new online keys first",
				repo.ErrRefused, name, root.Signed.Version, role, s.KeyID(), role)
		}
	}
	return nil
}

// supportIn reads the support declaration the latest product role in r
// names; an error wrapping store.ErrNotFound when there is none.
func (p *Project) supportIn(ctx context.Context, r store.Reader, product string) (*release.Support, error) {
	md, err := repo.LoadTargets(ctx, r, deviceapi.RepoRelease, repo.ProductRole(product))
	if err != nil {
		return nil, err
	}
	tf, ok := md.Signed.Targets[release.SupportTargetName(product)]
	if !ok {
		return nil, fmt.Errorf("project: product %s: no support declaration: %w", product, store.ErrNotFound)
	}
	b, err := p.readBlob(ctx, hex.EncodeToString(tf.Hashes["sha256"]), tf.Length)
	if err != nil {
		return nil, fmt.Errorf("project: support declaration of %s: %w", product, err)
	}
	var s release.Support
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("project: support declaration of %s: %w", product, err)
	}
	return &s, nil
}

// deriveProduct records what the latest product role of product declares
// and tx does not hold yet: the product, its support declaration's
// change, its new releases. prev is the support declaration before the
// documents were accepted, nil for a new product.
func (p *Project) deriveProduct(ctx context.Context, tx store.Tx, product string, prev *release.Support, now time.Time, res *AcceptResult) error {
	sup, err := p.supportIn(ctx, tx, product)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: the product role names no support declaration (%s)", repo.ErrRefused, release.SupportTargetName(product))
	}
	if err != nil {
		return err
	}
	if err := sup.Validate(); err != nil {
		return fmt.Errorf("%w: support declaration: %v", repo.ErrRefused, err)
	}
	if sup.Product != product {
		return fmt.Errorf("%w: the support declaration names product %q", repo.ErrRefused, sup.Product)
	}
	switch {
	case prev == nil:
		if _, err := tx.Product(ctx, product); errors.Is(err, store.ErrNotFound) {
			if err := tx.PutProduct(ctx, store.Product{Name: product, Model: sup.Model, Hardware: sup.Hardware, Created: sup.Issued.UTC()}); err != nil {
				return err
			}
			res.Products = append(res.Products, product)
			if err := audit(ctx, tx, now, ActionProductAdd, product, fmt.Sprintf("model %s; hardware %s; support until %s; %s",
				sup.Model, strings.Join(sup.Hardware, ","), sup.Until, policyDetail(sup.Policy))); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	case !sameSupport(prev, sup):
		if err := release.CheckExtension(prev, sup); err != nil {
			return fmt.Errorf("%w: %v", repo.ErrRefused, err)
		}
		if !slices.Equal(sup.Hardware, prev.Hardware) || sup.Model != prev.Model {
			if err := tx.PutProduct(ctx, store.Product{Name: product, Model: sup.Model, Hardware: sup.Hardware, Created: prevCreated(ctx, tx, product, sup)}); err != nil {
				return err
			}
		}
		res.Support = append(res.Support, product)
		if err := audit(ctx, tx, now, ActionSupportExtend, product, fmt.Sprintf("support until %s (was %s); %s", sup.Until, prev.Until, policyDetail(sup.Policy))); err != nil {
			return err
		}
	}
	md, err := repo.LoadTargets(ctx, tx, deviceapi.RepoRelease, repo.ProductRole(product))
	if err != nil {
		return err
	}
	var mans []release.Manifest
	for path, tf := range md.Signed.Targets {
		if tf.Custom == nil {
			continue
		}
		m, err := release.ManifestFromCustom(tf.Custom)
		if err != nil {
			return fmt.Errorf("%w: target %s: %v", repo.ErrRefused, path, err)
		}
		if m.Product != product || release.TargetName(m.Product, m.Version) != path {
			return fmt.Errorf("%w: target %s carries the manifest of %s %s", repo.ErrRefused, path, m.Product, m.Version)
		}
		if _, err := tx.Release(ctx, product, m.Version); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		mans = append(mans, *m)
	}
	// Oldest first, so security versions are checked in publication order.
	sort.Slice(mans, func(i, j int) bool {
		if !mans[i].Published.Equal(mans[j].Published) {
			return mans[i].Published.Before(mans[j].Published)
		}
		return release.CompareVersions(mans[i].Version, mans[j].Version) < 0
	})
	for _, m := range mans {
		tf := md.Signed.Targets[release.TargetName(m.Product, m.Version)]
		for _, d := range m.Deltas {
			dt, ok := md.Signed.Targets[d.Target]
			if !ok || dt.Length != d.Length || hex.EncodeToString(dt.Hashes["sha256"]) != d.SHA256 {
				return fmt.Errorf("%w: %s %s: its manifest lists delta %s, which the role does not sign as described", repo.ErrRefused, m.Product, m.Version, d.Target)
			}
		}
		if err := checkNewRelease(ctx, tx, m); err != nil {
			return fmt.Errorf("%w: %v", repo.ErrRefused, err)
		}
		manifest, _ := json.Marshal(m)
		rel := store.Release{Product: m.Product, Version: m.Version, SecurityVersion: m.SecurityVersion, Kind: string(m.Kind),
			Target: release.TargetName(m.Product, m.Version), Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"]),
			Manifest: manifest, Created: m.Published.UTC()}
		if err := tx.AddRelease(ctx, rel); err != nil {
			return err
		}
		res.Releases = append(res.Releases, rel.Product+"/"+rel.Version)
		if err := audit(ctx, tx, now, ActionReleaseAdd, rel.Product+"/"+rel.Version, releaseDetail(rel, m)); err != nil {
			return err
		}
	}
	return nil
}

// prevCreated keeps a product's creation time when its declaration
// changes its model or hardware.
func prevCreated(ctx context.Context, r store.Reader, product string, sup *release.Support) time.Time {
	if pr, err := r.Product(ctx, product); err == nil {
		return pr.Created
	}
	return sup.Issued.UTC()
}

// Incoming returns the documents the other side, whose latest versions are
// remote, holds and this project lacks, oldest first, fetched with fetch.
// A role whose latest version here is above the remote's is left alone
// (this project has changes to push); a role whose version here differs
// from the remote's copy of the same version is repo.ErrDiverged. Nothing
// is stored: AcceptSigned checks and stores what Incoming returns.
func (p *Project) Incoming(ctx context.Context, remote []RoleVersion, fetch func(name, role string, v int64) ([]byte, error)) ([]store.Metadata, error) {
	mine, err := p.SignedState(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Metadata
	for _, r := range remote {
		if !repo.Travels(r.Repo, r.Role) {
			continue
		}
		have := int64(0)
		if i := slices.IndexFunc(mine, func(m RoleVersion) bool { return m.Repo == r.Repo && m.Role == r.Role }); i >= 0 {
			have = mine[i].Version
		}
		shared := min(have, r.Version)
		if shared > 0 {
			body, err := p.SignedDocument(ctx, r.Repo, r.Role, shared)
			if err != nil {
				return nil, err
			}
			theirs, err := fetch(r.Repo, r.Role, shared)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(body, theirs) {
				return nil, fmt.Errorf("project: %s %s v%d: %w: the server's copy differs from this project's: the two were signed independently",
					r.Repo, r.Role, shared, repo.ErrDiverged)
			}
		}
		for v := have + 1; v <= r.Version; v++ {
			body, err := fetch(r.Repo, r.Role, v)
			if err != nil {
				return nil, err
			}
			out = append(out, store.Metadata{Repo: r.Repo, Role: r.Role, Version: v, Body: body})
		}
	}
	return out, nil
}

// checkPayloads refuses docs when a payload they name is not in the blob
// store with the length they sign. Blobs are stored under their SHA-256,
// so a stored blob's content is what the documents sign.
func (p *Project) checkPayloads(ctx context.Context, docs []store.Metadata) error {
	for _, t := range TargetsNamed(docs) {
		info, err := p.Blobs.Stat(ctx, t.SHA256)
		if err != nil {
			return fmt.Errorf("%w: %s (sha256 %s, %d bytes): %v", ErrMissingPayload, t.Path, t.SHA256, t.Length, err)
		}
		if info.Size != t.Length {
			return fmt.Errorf("%w: %s: the stored payload with sha256 %s has %d bytes, the metadata says %d", ErrMissingPayload, t.Path, t.SHA256, info.Size, t.Length)
		}
	}
	return nil
}

func sameSupport(a, b *release.Support) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
