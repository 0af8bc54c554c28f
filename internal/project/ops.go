package project

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// ProductSpec describes a new product.
type ProductSpec struct {
	Name     string
	Model    string
	Hardware []string
	// SupportUntil is the last day of support, YYYY-MM-DD.
	SupportUntil string
	Contact      string
	// Policy is the maker's update policy; nil means release.DefaultPolicy.
	Policy *release.Policy
}

// AddProduct creates the product's offline key and delegated role
// "products/<name>" (paths "<name>/*", terminating), signs the delegation
// with the top-level targets key and publishes the signed support
// declaration as the target "<name>/support.json".
func (p *Project) AddProduct(ctx context.Context, s ProductSpec) error {
	if err := release.ValidName("product", s.Name); err != nil {
		return err
	}
	if len(s.Hardware) == 0 {
		return errors.New("project: a product needs at least one hardware revision (--hardware)")
	}
	for _, h := range s.Hardware {
		if err := release.ValidName("hardware revision", h); err != nil {
			return err
		}
	}
	if s.Model == "" {
		s.Model = s.Name
	}
	now := p.Clock.Now().UTC()
	if s.Policy == nil {
		def := release.DefaultPolicy()
		s.Policy = &def
	}
	sup := release.Support{Product: s.Name, Model: s.Model, Hardware: s.Hardware, Until: s.SupportUntil, Contact: s.Contact, Issued: now, Policy: s.Policy}
	if err := sup.Validate(); err != nil {
		return err
	}
	if _, err := p.Store.Product(ctx, s.Name); err == nil {
		return fmt.Errorf("project: product %q exists already", s.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	targetsKey, err := p.keys.load(offlineKey(deviceapi.RepoRelease + "-targets"))
	if err != nil {
		return err
	}
	online, err := p.keys.online(deviceapi.RepoRelease)
	if err != nil {
		return err
	}
	supBytes, _ := json.MarshalIndent(sup, "", "  ")
	supBlob, err := p.Blobs.Put(ctx, bytes.NewReader(supBytes), 0)
	if err != nil {
		return err
	}
	productKey, err := p.keys.create(productKey(s.Name))
	if err != nil {
		return err
	}
	role := repo.ProductRole(s.Name)
	life := p.Lifetimes()
	return p.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutProduct(ctx, store.Product{Name: s.Name, Model: s.Model, Hardware: s.Hardware, Created: now}); err != nil {
			return err
		}
		// Not the contact: it may name a person.
		if err := audit(ctx, tx, now, ActionProductAdd, s.Name, fmt.Sprintf("model %s; hardware %s; support until %s; %s",
			s.Model, strings.Join(s.Hardware, ","), s.SupportUntil, policyDetail(s.Policy))); err != nil {
			return err
		}
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.RoleTargets, now, life, func(t *metadata.TargetsType) error {
			if t.Delegations == nil {
				t.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
			}
			for _, r := range t.Delegations.Roles {
				if r.Name == role {
					return fmt.Errorf("project: delegation %s exists already", role)
				}
			}
			t.Delegations.Roles = append(t.Delegations.Roles, metadata.DelegatedRole{
				Name: role, Threshold: 1, Terminating: true, Paths: []string{s.Name + "/*"}, KeyIDs: []string{},
			})
			return t.AddKey(productKey.TUFKey(), role)
		}, targetsKey)
		if err != nil {
			return err
		}
		sum, _ := hex.DecodeString(supBlob.SHA256)
		_, err = repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, role, now, life, func(t *metadata.TargetsType) error {
			t.Targets[release.SupportTargetName(s.Name)] = repo.NewTarget(repo.TargetInfo{
				Path: release.SupportTargetName(s.Name), Length: supBlob.Size, SHA256: sum})
			return nil
		}, productKey)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, now, life, online.Snapshot, online.Timestamp)
	})
}

// ReleaseSpec describes a release to publish.
type ReleaseSpec struct {
	Product         string
	Version         string
	Payload         io.Reader
	Kind            release.Kind
	SecurityVersion uint64
	Notes           string
	// Hardware defaults to all of the product's hardware revisions.
	Hardware   []string
	Impact     release.Impact
	Advisories []release.Advisory
	// SecurityOnly marks a security-only build; SecurityOnlyOf names the
	// feature build it stands in for (see release.Manifest).
	SecurityOnly   bool
	SecurityOnlyOf string
	// Compression is release.CompressionNone (or empty) or
	// release.CompressionZstd: the payload is stored zstd-compressed (window
	// release.MaxZstdWindow), the target's length and hashes cover the
	// compressed bytes and the manifest carries the image's length and
	// SHA-256.
	Compression string
	// ZstdFrame, with CompressionZstd, makes every ZstdFrame bytes of the
	// image an independent zstd frame, so that devices streaming the payload
	// into the slot resume after a power loss at a frame boundary (0: one
	// frame).
	ZstdFrame int64
	// DeltaFrom names earlier releases of the product: for each, a delta
	// from its image to this release's image is created, published as its
	// own target (release.DeltaTargetName) and listed in the manifest.
	DeltaFrom []string
}

// AddRelease stores the payload in the blob store (streamed and hashed,
// compressed on the way if s.Compression says so),
// writes the release manifest into the target's custom metadata, signs the
// product role with the product key and refreshes snapshot and timestamp.
// It refuses a security version lower than any earlier release's.
func (p *Project) AddRelease(ctx context.Context, s ReleaseSpec) (store.Release, error) {
	prod, err := p.Store.Product(ctx, s.Product)
	if err != nil {
		return store.Release{}, fmt.Errorf("project: product %q: %w (add it with uptrust product add)", s.Product, err)
	}
	if len(s.Hardware) == 0 {
		s.Hardware = prod.Hardware
	}
	for _, h := range s.Hardware {
		if !contains(prod.Hardware, h) {
			return store.Release{}, fmt.Errorf("project: hardware revision %q is not one of product %s's (%s)", h, s.Product, strings.Join(prod.Hardware, ", "))
		}
	}
	if s.Impact.DataCollection == "" {
		s.Impact.DataCollection = release.ChangeNone
	}
	if s.Impact.Functionality == "" {
		s.Impact.Functionality = release.ChangeNone
	}
	now := p.Clock.Now().UTC()
	m := release.Manifest{Product: s.Product, Version: s.Version, Hardware: s.Hardware, SecurityVersion: s.SecurityVersion,
		Kind: s.Kind, Impact: s.Impact, Notes: s.Notes, Advisories: s.Advisories,
		Payload: release.Payload{Type: "rootfs", Compression: "none"}, Published: now,
		SecurityOnly: s.SecurityOnly || s.SecurityOnlyOf != "", SecurityOnlyOf: s.SecurityOnlyOf}
	if err := m.Validate(); err != nil {
		return store.Release{}, err
	}
	switch s.Compression {
	case "", release.CompressionNone, release.CompressionZstd:
	default:
		return store.Release{}, fmt.Errorf("project: unsupported compression %q (want none or zstd)", s.Compression)
	}
	if s.ZstdFrame != 0 && (s.Compression != release.CompressionZstd || s.ZstdFrame < MinZstdFrame) {
		return store.Release{}, fmt.Errorf("project: zstd frames of %d bytes: want zstd compression and frames of at least %d bytes", s.ZstdFrame, MinZstdFrame)
	}
	if err := p.checkNewRelease(ctx, m); err != nil {
		return store.Release{}, err
	}
	productKey, err := p.keys.load(productKey(s.Product))
	if err != nil {
		return store.Release{}, err
	}
	online, err := p.keys.online(deviceapi.RepoRelease)
	if err != nil {
		return store.Release{}, err
	}
	if len(s.DeltaFrom) > 0 {
		img, err := readImage(s.Payload, p.Config.MaxPayloadBytes)
		if err != nil {
			return store.Release{}, err
		}
		if m.Deltas, err = p.buildDeltas(ctx, s.Product, s.Version, s.DeltaFrom, img); err != nil {
			return store.Release{}, err
		}
		if err := m.Validate(); err != nil {
			return store.Release{}, err
		}
		s.Payload = bytes.NewReader(img)
	}
	var b blob.Info
	if s.Compression == release.CompressionZstd {
		var img image
		b, img, err = putCompressed(ctx, p.Blobs, s.Payload, p.Config.MaxPayloadBytes, s.ZstdFrame)
		if err != nil {
			return store.Release{}, err
		}
		if img.length == 0 {
			return store.Release{}, errors.New("project: the payload is empty")
		}
		m.Payload.Compression, m.Payload.ImageLength, m.Payload.ImageSHA256 = release.CompressionZstd, img.length, img.sha256
		if err := m.Validate(); err != nil {
			return store.Release{}, err
		}
	} else {
		b, err = p.Blobs.Put(ctx, s.Payload, p.Config.MaxPayloadBytes)
		if err != nil {
			return store.Release{}, err
		}
	}
	if b.Size == 0 {
		return store.Release{}, errors.New("project: the payload is empty")
	}
	custom, err := json.Marshal(release.Custom{Uptrust: &m})
	if err != nil {
		return store.Release{}, err
	}
	manifest, _ := json.Marshal(m)
	rel := store.Release{Product: s.Product, Version: s.Version, SecurityVersion: s.SecurityVersion, Kind: string(s.Kind),
		Target: release.TargetName(s.Product, s.Version), Length: b.Size, SHA256: b.SHA256, Manifest: manifest, Created: now}
	life := p.Lifetimes()
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		if err := p.checkNewReleaseTx(ctx, tx, m); err != nil {
			return err
		}
		if err := tx.AddRelease(ctx, rel); err != nil {
			return err
		}
		// Not the notes: free text is no audit material.
		detail := fmt.Sprintf("kind %s; security version %d; %d bytes; sha256 %s", rel.Kind, rel.SecurityVersion, rel.Length, rel.SHA256)
		if m.Payload.Compression == release.CompressionZstd {
			detail += fmt.Sprintf("; zstd of a %d-byte image, sha256 %s", m.Payload.ImageLength, m.Payload.ImageSHA256)
		}
		for _, d := range m.Deltas {
			detail += fmt.Sprintf("; delta from %s: %d bytes, sha256 %s", d.From, d.Length, d.SHA256)
		}
		if m.SecurityOnly {
			detail += "; security-only"
			if m.SecurityOnlyOf != "" {
				detail += " build of " + m.SecurityOnlyOf
			}
		}
		if err := audit(ctx, tx, now, ActionReleaseAdd, rel.Product+"/"+rel.Version, detail); err != nil {
			return err
		}
		sum, _ := hex.DecodeString(b.SHA256)
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.ProductRole(s.Product), now, life, func(t *metadata.TargetsType) error {
			t.Targets[rel.Target] = repo.NewTarget(repo.TargetInfo{Path: rel.Target, Length: b.Size, SHA256: sum, Custom: custom})
			for _, d := range m.Deltas {
				dsum, _ := hex.DecodeString(d.SHA256)
				t.Targets[d.Target] = repo.NewTarget(repo.TargetInfo{Path: d.Target, Length: d.Length, SHA256: dsum})
			}
			return nil
		}, productKey)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, now, life, online.Snapshot, online.Timestamp)
	})
	return rel, err
}

func (p *Project) checkNewRelease(ctx context.Context, m release.Manifest) error {
	return p.checkNewReleaseTx(ctx, p.Store, m)
}

// checkNewReleaseTx refuses a duplicate version and a security version below
// that of an earlier release of the product.
func (p *Project) checkNewReleaseTx(ctx context.Context, r store.Reader, m release.Manifest) error {
	rels, err := r.Releases(ctx, m.Product)
	if err != nil {
		return err
	}
	for _, e := range rels {
		if e.Version == m.Version {
			return fmt.Errorf("project: %s %s is published already; releases are immutable, publish a new version", m.Product, m.Version)
		}
		if e.SecurityVersion > m.SecurityVersion {
			return fmt.Errorf("%w: %s %s has security version %d, the earlier release %s has %d; devices would refuse it",
				release.ErrSecurityVersionLower, m.Product, m.Version, m.SecurityVersion, e.Version, e.SecurityVersion)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// StartRollout offers a published release to the product's devices: the
// fleet repository's targets role lists the release's target with the same
// length and hashes and the rollout rule, replacing any earlier offer for
// the product.
func (p *Project) StartRollout(ctx context.Context, product, version string, percent int) (store.Rollout, error) {
	now := p.Clock.Now().UTC()
	ro := store.Rollout{Product: product, Version: version, Percent: percent, Start: now, Updated: now}
	detail := fmt.Sprintf("percent %d", percent)
	if old, err := p.Store.Rollout(ctx, product); err == nil {
		detail += fmt.Sprintf("; replaces the rollout of %s at %d%%", old.Version, old.Percent)
	}
	return ro, p.publishRollout(ctx, ro, ActionRolloutStart, detail)
}

// ChangeRollout changes the running rollout of a product.
func (p *Project) ChangeRollout(ctx context.Context, product string, change func(*store.Rollout)) (store.Rollout, error) {
	ro, err := p.Store.Rollout(ctx, product)
	if err != nil {
		return ro, fmt.Errorf("project: rollout of %s: %w (start one with uptrust rollout start)", product, err)
	}
	old := ro
	change(&ro)
	ro.Updated = p.Clock.Now().UTC()
	return ro, p.publishRollout(ctx, ro, ActionRolloutChange, rolloutChange(old, ro))
}

// publishRollout stores ro, publishes it in the fleet repository and
// records action with detail in the audit log, in one transaction.
func (p *Project) publishRollout(ctx context.Context, ro store.Rollout, action, detail string) error {
	rule := rollout.Rule{Percent: ro.Percent, Halted: ro.Halted, Start: ro.Start}
	if err := rule.Validate(); err != nil {
		return err
	}
	rel, err := p.Store.Release(ctx, ro.Product, ro.Version)
	if err != nil {
		return fmt.Errorf("project: release %s %s: %w", ro.Product, ro.Version, err)
	}
	online, err := p.keys.online(deviceapi.RepoFleet)
	if err != nil {
		return err
	}
	custom, err := rollout.MarshalCustom(rule)
	if err != nil {
		return err
	}
	offered := []store.Release{rel}
	companions, err := p.securityOnlyCompanions(ctx, rel)
	if err != nil {
		return err
	}
	offered = append(offered, companions...)
	// The deltas of the offered releases, listed with the release
	// repository's length and hashes so that both repositories agree.
	var deltas []release.Delta
	for _, r := range offered {
		ds, err := deltaTargets(r)
		if err != nil {
			return err
		}
		deltas = append(deltas, ds...)
	}
	now := p.Clock.Now().UTC()
	life := p.Lifetimes()
	return p.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutRollout(ctx, ro); err != nil {
			return err
		}
		if err := audit(ctx, tx, now, action, ro.Product+"/"+ro.Version, detail); err != nil {
			return err
		}
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoFleet, repo.RoleTargets, now, life, func(t *metadata.TargetsType) error {
			for path := range t.Targets {
				if strings.HasPrefix(path, ro.Product+"/") {
					delete(t.Targets, path)
				}
			}
			for _, r := range offered {
				sum, _ := hex.DecodeString(r.SHA256)
				t.Targets[r.Target] = repo.NewTarget(repo.TargetInfo{Path: r.Target, Length: r.Length, SHA256: sum, Custom: custom})
			}
			for _, d := range deltas {
				dsum, _ := hex.DecodeString(d.SHA256)
				t.Targets[d.Target] = repo.NewTarget(repo.TargetInfo{Path: d.Target, Length: d.Length, SHA256: dsum})
			}
			return nil
		}, online.Targets)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoFleet, now, life, online.Snapshot, online.Timestamp)
	})
}

// securityOnlyCompanions returns the security-only builds published for a
// feature release; a rollout offers them next to it, for devices whose
// owners have not consented to the feature build.
func (p *Project) securityOnlyCompanions(ctx context.Context, rel store.Release) ([]store.Release, error) {
	rels, err := p.Store.Releases(ctx, rel.Product)
	if err != nil {
		return nil, err
	}
	var out []store.Release
	for _, r := range rels {
		var m release.Manifest
		if err := json.Unmarshal(r.Manifest, &m); err != nil {
			return nil, fmt.Errorf("project: manifest of %s %s: %w", r.Product, r.Version, err)
		}
		if m.SecurityOnlyOf == rel.Version {
			out = append(out, r)
		}
	}
	return out, nil
}
