package project

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// A release manifest passes through this file in order: newManifest builds
// it from a ReleaseSpec and checks what it declares; storePayload stores the
// payload and describes it; AddRelease checks that description, then, in one
// transaction, refuses what would conflict with the published releases
// (checkNewRelease), stores and signs it. Readers of a stored manifest decode
// it with manifestOf.

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

// Published is what AddRelease published: the stored release and the
// manifest signed into its target (Release.Manifest is that manifest's
// JSON).
type Published struct {
	Release  store.Release
	Manifest release.Manifest
}

// AddRelease publishes the release s describes. It checks the spec, stores
// the payload in the blob store (streamed and hashed, compressed on the way
// if s.Compression says so) with the deltas s.DeltaFrom asks for, then in one
// store transaction refuses a version that is published already or a
// security version lower than an earlier release's, records the release and
// its audit entry, writes the manifest into the target's custom metadata,
// signs the product role with the product key and refreshes snapshot and
// timestamp.
//
// The checks against the published releases (checkNewRelease) decide
// inside that transaction, so two concurrent calls cannot both pass them. The
// same function runs once before the payload is read, so that a mistyped
// version fails at once rather than after minutes of hashing, compressing
// and building deltas; only the run inside the transaction counts. A
// release refused there leaves nothing in the store; its payload stays in
// the blob store, referenced by nothing.
func (p *Project) AddRelease(ctx context.Context, s ReleaseSpec) (Published, error) {
	prod, err := p.Product(ctx, s.Product)
	if err != nil {
		return Published{}, err
	}
	now := p.Clock.Now().UTC()
	m, err := newManifest(s, prod, now)
	if err != nil {
		return Published{}, err
	}
	if err := CheckCompression(s.Compression); err != nil {
		return Published{}, err
	}
	if err := CheckZstdFrame(s.Compression, s.ZstdFrame); err != nil {
		return Published{}, err
	}
	productKey, err := p.keys.load(productKey(s.Product))
	if err != nil {
		return Published{}, err
	}
	online, err := p.keys.online(deviceapi.RepoRelease)
	if err != nil {
		return Published{}, err
	}
	if err := checkNewRelease(ctx, p.Store, m); err != nil {
		return Published{}, err
	}
	if rels, err := p.Store.Releases(ctx, m.Product); err == nil {
		if newest := belowNewest(rels, m); newest != "" {
			p.Warn(fmt.Sprintf("%s %s is below the newest published release %s: devices that run %s or any release above %s will never install it",
				m.Product, m.Version, newest, newest, m.Version))
		}
	}
	b, err := p.storePayload(ctx, s, &m)
	if err != nil {
		return Published{}, err
	}
	if err := m.ValidatePayload(); err != nil {
		return Published{}, err
	}
	custom, err := json.Marshal(release.Custom{Uptrust: &m})
	if err != nil {
		return Published{}, err
	}
	manifest, _ := json.Marshal(m)
	rel := store.Release{Product: m.Product, Version: m.Version, SecurityVersion: m.SecurityVersion, Kind: string(m.Kind),
		Target: release.TargetName(m.Product, m.Version), Length: b.Size, SHA256: b.SHA256, Manifest: manifest, Created: now}
	life := p.Lifetimes()
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		if err := checkNewRelease(ctx, tx, m); err != nil {
			return err
		}
		if err := tx.AddRelease(ctx, rel); err != nil {
			return err
		}
		if err := audit(ctx, tx, now, ActionReleaseAdd, rel.Product+"/"+rel.Version, releaseDetail(rel, m)); err != nil {
			return err
		}
		sum, _ := hex.DecodeString(b.SHA256)
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.ProductRole(m.Product), now, life, func(t *metadata.TargetsType) error {
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
	if err != nil {
		return Published{}, err
	}
	return Published{Release: rel, Manifest: m}, nil
}

// newManifest builds the manifest of the release s declares for product
// prod, published at now, and checks the declaration
// (release.Manifest.ValidateDeclaration): the hardware defaults to all of
// the product's revisions and must be among them, an impact left empty is
// none. Payload and Deltas stay empty: storePayload fills them in.
func newManifest(s ReleaseSpec, prod store.Product, now time.Time) (release.Manifest, error) {
	hw := s.Hardware
	if len(hw) == 0 {
		hw = prod.Hardware
	}
	for _, h := range hw {
		if !slices.Contains(prod.Hardware, h) {
			return release.Manifest{}, fmt.Errorf("project: hardware revision %q is not one of product %s's (%s)", h, s.Product, strings.Join(prod.Hardware, ", "))
		}
	}
	impact := s.Impact
	if impact.DataCollection == "" {
		impact.DataCollection = release.ChangeNone
	}
	if impact.Functionality == "" {
		impact.Functionality = release.ChangeNone
	}
	m := release.Manifest{Product: s.Product, Version: s.Version, Hardware: hw, SecurityVersion: s.SecurityVersion,
		Kind: s.Kind, Impact: impact, Notes: s.Notes, Advisories: s.Advisories, Published: now,
		SecurityOnly: s.SecurityOnly || s.SecurityOnlyOf != "", SecurityOnlyOf: s.SecurityOnlyOf}
	if err := m.ValidateDeclaration(); err != nil {
		return release.Manifest{}, err
	}
	return m, nil
}

// CheckCompression checks ReleaseSpec.Compression. It reads nothing, so the
// command line can report a mistake before it opens the project; AddRelease
// checks the same.
func CheckCompression(compression string) error {
	switch compression {
	case "", release.CompressionNone, release.CompressionZstd:
		return nil
	}
	return fmt.Errorf("project: unsupported compression %q (want none or zstd)", compression)
}

// CheckZstdFrame checks ReleaseSpec.ZstdFrame against the compression it
// goes with: 0, or at least MinZstdFrame with zstd. Like CheckCompression it
// reads nothing.
func CheckZstdFrame(compression string, frame int64) error {
	switch {
	case frame == 0:
		return nil
	case compression != release.CompressionZstd:
		return fmt.Errorf("project: zstd frames of %d bytes need zstd compression", frame)
	case frame < MinZstdFrame:
		return fmt.Errorf("project: zstd frames of %d bytes: want at least %d bytes (256KiB), such as 4MiB", frame, MinZstdFrame)
	}
	return nil
}

// storePayload stores the payload of s in the blob store, compressed if s
// asks for it, creates the deltas s.DeltaFrom asks for, and describes both
// in m (Payload, Deltas). It returns the blob of the bytes on the wire.
func (p *Project) storePayload(ctx context.Context, s ReleaseSpec, m *release.Manifest) (blob.Info, error) {
	src := s.Payload
	size := sizeOf(src)
	bar := p.Progress
	defer bar.Done()
	m.Payload = release.Payload{Type: "rootfs", Compression: release.CompressionNone}
	if len(s.DeltaFrom) > 0 {
		bar.Start("reading the image", size)
		img, err := readImage(bar.Reader(src), p.Config.MaxPayloadBytes)
		if err != nil {
			return blob.Info{}, err
		}
		size = int64(len(img))
		if m.Deltas, err = p.buildDeltas(ctx, s.Product, s.Version, s.DeltaFrom, img); err != nil {
			return blob.Info{}, err
		}
		src = bytes.NewReader(img)
	}
	if v, ok := p.Blobs.(blob.VerifiedPutter); ok && s.Compression != release.CompressionZstd {
		if rs, ok := src.(io.ReadSeeker); ok && size >= 0 {
			return p.putVerified(ctx, v, rs, size)
		}
	}
	if s.Compression != release.CompressionZstd {
		bar.Start("hashing and storing", size)
		b, err := p.Blobs.Put(ctx, bar.Reader(src), p.Config.MaxPayloadBytes)
		if err != nil {
			return blob.Info{}, err
		}
		if b.Size == 0 {
			return blob.Info{}, errors.New("project: the payload is empty")
		}
		return b, nil
	}
	bar.Start("compressing and hashing", size)
	b, img, err := putCompressed(ctx, p.Blobs, bar.Reader(src), p.Config.MaxPayloadBytes, s.ZstdFrame)
	if err != nil {
		return blob.Info{}, err
	}
	if img.length == 0 {
		return blob.Info{}, errors.New("project: the payload is empty")
	}
	m.Payload.Compression, m.Payload.ImageLength, m.Payload.ImageSHA256 = release.CompressionZstd, img.length, img.sha256
	return b, nil
}

// putVerified stores a seekable payload in a store that takes content of a
// known hash straight under its address (an S3 bucket): it hashes the
// payload first, then uploads it, which costs one more read of the file but
// saves the bucket a server-side copy of the whole payload. A payload that
// changes between the two reads is refused.
func (p *Project) putVerified(ctx context.Context, v blob.VerifiedPutter, rs io.ReadSeeker, size int64) (blob.Info, error) {
	limit := p.Config.MaxPayloadBytes
	bar := p.Progress
	bar.Start("hashing", size)
	h := sha256.New()
	var src io.Reader = rs
	if limit > 0 {
		src = io.LimitReader(rs, limit+1)
	}
	n, err := io.Copy(h, bar.Reader(src))
	if err != nil {
		return blob.Info{}, fmt.Errorf("project: reading the payload: %w", err)
	}
	if limit > 0 && n > limit {
		return blob.Info{}, fmt.Errorf("%w: more than %d bytes", blob.ErrTooLarge, limit)
	}
	if n == 0 {
		return blob.Info{}, errors.New("project: the payload is empty")
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return blob.Info{}, fmt.Errorf("project: reading the payload: %w", err)
	}
	bar.Start("storing", n)
	b, err := v.PutVerified(ctx, bar.Reader(rs), hex.EncodeToString(h.Sum(nil)), limit)
	if errors.Is(err, blob.ErrHashMismatch) {
		return blob.Info{}, fmt.Errorf("project: the payload changed while it was stored: %w", err)
	}
	return b, err
}

// sizeOf returns the size of r when it is a regular file, else -1.
func sizeOf(r io.Reader) int64 {
	if st, ok := r.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}

// checkNewRelease refuses a release that conflicts with those r holds: a
// version published already (releases are immutable) or a security version
// below that of an earlier release of the product (devices would refuse
// it). AddRelease runs it inside the transaction that records the release.
func checkNewRelease(ctx context.Context, r store.Reader, m release.Manifest) error {
	rels, err := r.Releases(ctx, m.Product)
	if err != nil {
		return err
	}
	var highest *store.Release
	for i, e := range rels {
		if e.Version == m.Version {
			return fmt.Errorf("project: %s %s is published already; releases are immutable, publish a new version", m.Product, m.Version)
		}
		if highest == nil || e.SecurityVersion > highest.SecurityVersion ||
			e.SecurityVersion == highest.SecurityVersion && release.CompareVersions(e.Version, highest.Version) > 0 {
			highest = &rels[i]
		}
	}
	// Name the release with the highest security version, so one retry
	// with the number given succeeds.
	if highest != nil && highest.SecurityVersion > m.SecurityVersion {
		return fmt.Errorf("%w: %s %s has security version %d, the earlier release %s has %d (the highest); devices would refuse it: use --security-version %d or more",
			release.ErrSecurityVersionLower, m.Product, m.Version, m.SecurityVersion, highest.Version, highest.SecurityVersion, highest.SecurityVersion)
	}
	return nil
}

// belowNewest returns the newest published version of the product when
// m's version is below it, else "": devices running the newest never
// install an older version.
func belowNewest(rels []store.Release, m release.Manifest) string {
	newest := ""
	for _, e := range rels {
		if newest == "" || release.CompareVersions(e.Version, newest) > 0 {
			newest = e.Version
		}
	}
	if newest != "" && release.CompareVersions(m.Version, newest) < 0 {
		return newest
	}
	return ""
}

// releaseDetail is the audit detail of a published release. Not the notes:
// free text is no audit material.
func releaseDetail(rel store.Release, m release.Manifest) string {
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
	return detail
}

// manifestOf returns the manifest stored with r (release.DecodeManifest).
func manifestOf(r store.Release) (release.Manifest, error) {
	m, err := release.DecodeManifest(r.Manifest)
	if err != nil {
		return release.Manifest{}, fmt.Errorf("project: manifest of %s %s: %w", r.Product, r.Version, err)
	}
	return m, nil
}
