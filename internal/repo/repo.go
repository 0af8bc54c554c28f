// Package repo maintains the server-side TUF repositories of uptrust: the
// release repository (offline root, targets and product roles; online
// snapshot and timestamp) and the fleet repository (offline root; online
// targets, snapshot and timestamp).
//
// All metadata is plain TUF 1.0 built with go-tuf's metadata package, signed
// over canonical JSON, with consistent snapshots. Documents are stored
// through a store.Tx, so a publish (targets + snapshot + timestamp) lands in
// one transaction or not at all.
//
// Invariants:
//   - every stored document carries at least the threshold of valid
//     signatures its delegator requires (checked before storing);
//   - versions of a role increase by exactly one per change;
//   - a new root is signed by the threshold of both the previous and the new
//     root (TUF root rotation), so clients can follow the chain.
package repo

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/store"
)

// Top-level role names.
const (
	RoleRoot      = metadata.ROOT
	RoleTargets   = metadata.TARGETS
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTimestamp = metadata.TIMESTAMP
)

// ProductRole is the name of the delegated targets role of a product.
func ProductRole(product string) string { return "products/" + product }

// Signer signs metadata. keys.Key implements it; so can a PKCS#11 or KMS
// backed signer.
type Signer interface {
	signature.Signer
	TUFKey() *metadata.Key
	KeyID() string
}

// Lifetimes says how long each kind of metadata is valid after signing.
type Lifetimes struct {
	Root         time.Duration `json:"root"`
	Targets      time.Duration `json:"targets"`
	Product      time.Duration `json:"product"`
	FleetTargets time.Duration `json:"fleet_targets"`
	Snapshot     time.Duration `json:"snapshot"`
	Timestamp    time.Duration `json:"timestamp"`
}

// DefaultLifetimes are the lifetimes of a new project: offline roles a year,
// online fleet targets and snapshots a week, timestamps a day.
func DefaultLifetimes() Lifetimes {
	day := 24 * time.Hour
	return Lifetimes{
		Root: 365 * day, Targets: 365 * day, Product: 365 * day,
		FleetTargets: 7 * day, Snapshot: 7 * day, Timestamp: day,
	}
}

// Validate checks that every lifetime is positive.
func (l Lifetimes) Validate() error {
	for name, d := range map[string]time.Duration{"root": l.Root, "targets": l.Targets, "product": l.Product,
		"fleet_targets": l.FleetTargets, "snapshot": l.Snapshot, "timestamp": l.Timestamp} {
		if d <= 0 {
			return fmt.Errorf("repo: lifetime %s must be positive, is %v", name, d)
		}
	}
	return nil
}

func (l Lifetimes) of(repoName, role string) time.Duration {
	switch {
	case role == RoleRoot:
		return l.Root
	case role == RoleSnapshot:
		return l.Snapshot
	case role == RoleTimestamp:
		return l.Timestamp
	case role == RoleTargets && repoName == deviceapi.RepoFleet:
		return l.FleetTargets
	case role == RoleTargets:
		return l.Targets
	default:
		return l.Product
	}
}

// RoleKeys are the keys of the four top-level roles at initialisation.
type RoleKeys struct {
	Root          []Signer
	RootThreshold int
	Targets       Signer
	Snapshot      Signer
	Timestamp     Signer
}

// Init creates version 1 of every top-level role of a repository. The root
// lists all root keys with the given threshold and is signed by all of them.
func Init(ctx context.Context, tx store.Tx, name string, now time.Time, life Lifetimes, k RoleKeys) error {
	if _, err := tx.LatestMetadata(ctx, name, RoleRoot); err == nil {
		return fmt.Errorf("repo %s: already initialised", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if k.RootThreshold < 1 || k.RootThreshold > len(k.Root) {
		return fmt.Errorf("repo %s: root threshold %d with %d keys", name, k.RootThreshold, len(k.Root))
	}
	root := metadata.Root(expiry(now, life.Root))
	for _, s := range k.Root {
		if err := root.Signed.AddKey(s.TUFKey(), RoleRoot); err != nil {
			return fmt.Errorf("repo %s: root key: %w", name, err)
		}
	}
	root.Signed.Roles[RoleRoot].Threshold = k.RootThreshold
	for role, s := range map[string]Signer{RoleTargets: k.Targets, RoleSnapshot: k.Snapshot, RoleTimestamp: k.Timestamp} {
		if s == nil {
			return fmt.Errorf("repo %s: no %s key", name, role)
		}
		if err := root.Signed.AddKey(s.TUFKey(), role); err != nil {
			return fmt.Errorf("repo %s: %s key: %w", name, role, err)
		}
	}
	if err := signAndCheck(root, root, RoleRoot, k.Root...); err != nil {
		return fmt.Errorf("repo %s: %w", name, err)
	}
	if err := put(ctx, tx, name, RoleRoot, root); err != nil {
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

func expiry(now time.Time, d time.Duration) time.Time {
	return now.Add(d).UTC().Truncate(time.Second)
}

// signAndCheck replaces md's signatures with ones from signers and checks
// that the delegator's threshold for role is met.
func signAndCheck[D metadata.Roles, T metadata.Roles](delegator *metadata.Metadata[D], md *metadata.Metadata[T], role string, signers ...Signer) error {
	md.ClearSignatures()
	for _, s := range signers {
		if s == nil {
			continue
		}
		if _, err := md.Sign(s); err != nil {
			return fmt.Errorf("signing %s: %w", role, err)
		}
	}
	if err := delegator.VerifyDelegate(role, md); err != nil {
		return fmt.Errorf("%s: signatures do not meet the threshold (wrong or too few keys?): %w", role, err)
	}
	return nil
}

func put[T metadata.Roles](ctx context.Context, tx store.Tx, name, role string, md *metadata.Metadata[T]) error {
	body, err := md.ToBytes(false)
	if err != nil {
		return fmt.Errorf("repo %s: encoding %s: %w", name, role, err)
	}
	var version int64
	var expires time.Time
	switch s := any(&md.Signed).(type) {
	case *metadata.RootType:
		version, expires = s.Version, s.Expires
	case *metadata.TargetsType:
		version, expires = s.Version, s.Expires
	case *metadata.SnapshotType:
		version, expires = s.Version, s.Expires
	case *metadata.TimestampType:
		version, expires = s.Version, s.Expires
	}
	if err := tx.PutMetadata(ctx, store.Metadata{Repo: name, Role: role, Version: version, Body: body, Expires: expires}); err != nil {
		return fmt.Errorf("repo %s: storing %s v%d: %w", name, role, version, err)
	}
	return nil
}

// LoadRoot returns the latest root of a repository.
func LoadRoot(ctx context.Context, r store.Reader, name string) (*metadata.Metadata[metadata.RootType], error) {
	m, err := r.LatestMetadata(ctx, name, RoleRoot)
	if err != nil {
		return nil, fmt.Errorf("repo %s: root: %w", name, err)
	}
	return metadata.Root().FromBytes(m.Body)
}

// LoadTargets returns the latest version of a targets role, or ErrNotFound.
func LoadTargets(ctx context.Context, r store.Reader, name, role string) (*metadata.Metadata[metadata.TargetsType], error) {
	m, err := r.LatestMetadata(ctx, name, role)
	if err != nil {
		return nil, fmt.Errorf("repo %s: %s: %w", name, role, err)
	}
	return metadata.Targets().FromBytes(m.Body)
}

func loadSnapshot(ctx context.Context, r store.Reader, name string) (*metadata.Metadata[metadata.SnapshotType], error) {
	m, err := r.LatestMetadata(ctx, name, RoleSnapshot)
	if err != nil {
		return nil, fmt.Errorf("repo %s: snapshot: %w", name, err)
	}
	return metadata.Snapshot().FromBytes(m.Body)
}

func loadTimestamp(ctx context.Context, r store.Reader, name string) (*metadata.Metadata[metadata.TimestampType], error) {
	m, err := r.LatestMetadata(ctx, name, RoleTimestamp)
	if err != nil {
		return nil, fmt.Errorf("repo %s: timestamp: %w", name, err)
	}
	return metadata.Timestamp().FromBytes(m.Body)
}

// UpdateTargets applies change to the latest version of a targets role (a
// new, empty role when the role does not exist yet), bumps its version,
// signs it with signers, checks the delegator's threshold and stores it.
// It does not refresh snapshot and timestamp: call RefreshSnapshot after the
// last change of a transaction.
func UpdateTargets(ctx context.Context, tx store.Tx, name, role string, now time.Time, life Lifetimes,
	change func(*metadata.TargetsType) error, signers ...Signer) (*metadata.Metadata[metadata.TargetsType], error) {
	md, err := LoadTargets(ctx, tx, name, role)
	switch {
	case err == nil:
		md.Signed.Version++
	case errors.Is(err, store.ErrNotFound) && role != RoleTargets:
		md = metadata.Targets()
	default:
		return nil, err
	}
	md.Signed.Expires = expiry(now, life.of(name, role))
	if err := change(&md.Signed); err != nil {
		return nil, err
	}
	var delegatorErr error
	if role == RoleTargets {
		root, err := LoadRoot(ctx, tx, name)
		if err != nil {
			return nil, err
		}
		delegatorErr = signAndCheck(root, md, role, signers...)
	} else {
		top, err := LoadTargets(ctx, tx, name, RoleTargets)
		if err != nil {
			return nil, err
		}
		delegatorErr = signAndCheck(top, md, role, signers...)
	}
	if delegatorErr != nil {
		return nil, fmt.Errorf("repo %s: %w", name, delegatorErr)
	}
	return md, put(ctx, tx, name, role, md)
}

// targetsRoles lists the targets roles of a repository: "targets" and every
// delegated role that has been stored.
func targetsRoles(ctx context.Context, r store.Reader, name string) ([]string, error) {
	all, err := r.AllMetadata(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", name, err)
	}
	seen := map[string]bool{}
	var roles []string
	for _, m := range all {
		switch m.Role {
		case RoleRoot, RoleSnapshot, RoleTimestamp:
			continue
		}
		if !seen[m.Role] {
			seen[m.Role] = true
			roles = append(roles, m.Role)
		}
	}
	sort.Strings(roles)
	return roles, nil
}

// RefreshSnapshot signs a new snapshot listing the latest version of every
// targets role with its length and SHA-256, and a new timestamp for it.
// Clients download a targets role only up to the listed length and check
// its hash before parsing it, so a mirror cannot make them parse anything
// the snapshot key did not list (TUF spec 5.6.2).
func RefreshSnapshot(ctx context.Context, tx store.Tx, name string, now time.Time, life Lifetimes, snapshotKey, timestampKey Signer) error {
	root, err := LoadRoot(ctx, tx, name)
	if err != nil {
		return err
	}
	roles, err := targetsRoles(ctx, tx, name)
	if err != nil {
		return err
	}
	snap := metadata.Snapshot(expiry(now, life.Snapshot))
	if prev, err := loadSnapshot(ctx, tx, name); err == nil {
		snap.Signed.Version = prev.Signed.Version + 1
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	snap.Signed.Meta = map[string]*metadata.MetaFiles{}
	for _, role := range roles {
		m, err := tx.LatestMetadata(ctx, name, role)
		if err != nil {
			return fmt.Errorf("repo %s: %s: %w", name, role, err)
		}
		snap.Signed.Meta[role+".json"] = metaFile(m)
	}
	if err := signAndCheck(root, snap, RoleSnapshot, snapshotKey); err != nil {
		return fmt.Errorf("repo %s: %w", name, err)
	}
	if err := put(ctx, tx, name, RoleSnapshot, snap); err != nil {
		return err
	}
	return RefreshTimestamp(ctx, tx, name, now, life, timestampKey)
}

// RefreshTimestamp signs a new timestamp for the latest snapshot. It lists
// the snapshot's length and SHA-256 so clients detect a swapped snapshot
// before parsing it.
func RefreshTimestamp(ctx context.Context, tx store.Tx, name string, now time.Time, life Lifetimes, timestampKey Signer) error {
	root, err := LoadRoot(ctx, tx, name)
	if err != nil {
		return err
	}
	snapDoc, err := tx.LatestMetadata(ctx, name, RoleSnapshot)
	if err != nil {
		return fmt.Errorf("repo %s: snapshot: %w", name, err)
	}
	ts := metadata.Timestamp(expiry(now, life.Timestamp))
	if prev, err := loadTimestamp(ctx, tx, name); err == nil {
		ts.Signed.Version = prev.Signed.Version + 1
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(snapDoc)}
	if err := signAndCheck(root, ts, RoleTimestamp, timestampKey); err != nil {
		return fmt.Errorf("repo %s: %w", name, err)
	}
	return put(ctx, tx, name, RoleTimestamp, ts)
}

// metaFile is the entry that lists stored document m in a snapshot or
// timestamp: its version, its length and its SHA-256, all over the exact
// bytes served.
func metaFile(m store.Metadata) *metadata.MetaFiles {
	sum := sha256.Sum256(m.Body)
	mf := metadata.MetaFile(m.Version)
	mf.Length = int64(len(m.Body))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	return mf
}

// UpdateRoot applies change to a copy of the latest root, bumps its version
// and signs it with signers. The new root must be signed by the threshold of
// the previous root and by the threshold of itself, the rule TUF clients
// apply when they follow a root rotation.
func UpdateRoot(ctx context.Context, tx store.Tx, name string, now time.Time, life Lifetimes,
	change func(*metadata.RootType) error, signers ...Signer) (*metadata.Metadata[metadata.RootType], error) {
	prev, next, err := NextRoot(ctx, tx, name, now, life, change)
	if err != nil {
		return nil, err
	}
	if err := signAndCheck(prev, next, RoleRoot, signers...); err != nil {
		return nil, fmt.Errorf("repo %s: new root against the previous root: %w", name, err)
	}
	if err := next.VerifyDelegate(RoleRoot, next); err != nil {
		return nil, fmt.Errorf("repo %s: new root against itself: signatures do not meet its threshold: %w", name, err)
	}
	return next, put(ctx, tx, name, RoleRoot, next)
}

// NextRoot returns the latest root of repository name and an unsigned copy
// of it with the version bumped by one, the expiry set to now plus the root
// lifetime, and change applied. Nothing is stored: the copy is what root
// key holders sign (see PutRoot).
func NextRoot(ctx context.Context, r store.Reader, name string, now time.Time, life Lifetimes,
	change func(*metadata.RootType) error) (prev, next *metadata.Metadata[metadata.RootType], err error) {
	prev, err = LoadRoot(ctx, r, name)
	if err != nil {
		return nil, nil, err
	}
	body, _ := prev.ToBytes(false)
	next, err = metadata.Root().FromBytes(body)
	if err != nil {
		return nil, nil, err
	}
	next.ClearSignatures()
	next.Signed.Version++
	next.Signed.Expires = expiry(now, life.Root)
	if change != nil {
		if err := change(&next.Signed); err != nil {
			return nil, nil, err
		}
	}
	return prev, next, nil
}

// PutRoot stores next, a root whose signatures were collected elsewhere, as
// the next root of repository name. It must follow the latest root by
// exactly one version and carry, as verified by go-tuf, the threshold of
// signatures of the previous root's root keys and of its own: what a TUF
// client checks when it follows the rotation.
func PutRoot(ctx context.Context, tx store.Tx, name string, next *metadata.Metadata[metadata.RootType]) error {
	prev, err := LoadRoot(ctx, tx, name)
	if err != nil {
		return err
	}
	if next.Signed.Version != prev.Signed.Version+1 {
		return fmt.Errorf("repo %s: new root has version %d, want %d (the latest is %d)", name, next.Signed.Version, prev.Signed.Version+1, prev.Signed.Version)
	}
	if err := prev.VerifyDelegate(RoleRoot, next); err != nil {
		return fmt.Errorf("repo %s: new root against the previous root: signatures do not meet its threshold: %w", name, err)
	}
	if err := next.VerifyDelegate(RoleRoot, next); err != nil {
		return fmt.Errorf("repo %s: new root against itself: signatures do not meet its threshold: %w", name, err)
	}
	return put(ctx, tx, name, RoleRoot, next)
}

// Due reports which online roles of a repository need re-signing at now: a
// role is due when less than half of its lifetime remains. A snapshot is
// also due when it lists a targets role without its length and SHA-256
// (one signed before snapshots carried them), so existing repositories
// gain them at the server's next re-signing.
type Due struct {
	Targets, Snapshot, Timestamp bool
}

// Any is true when anything is due.
func (d Due) Any() bool { return d.Targets || d.Snapshot || d.Timestamp }

// CheckDue inspects the stored metadata of a repository. Fleet targets are
// online and included; release targets are offline and never due here.
func CheckDue(ctx context.Context, r store.Reader, name string, now time.Time, life Lifetimes) (Due, error) {
	var d Due
	if _, err := r.LatestMetadata(ctx, name, RoleSnapshot); errors.Is(err, store.ErrNotFound) {
		// Nothing published yet (a seeded server before its first push).
		return d, nil
	}
	due := func(role string, lifetime time.Duration) (bool, error) {
		m, err := r.LatestMetadata(ctx, name, role)
		if err != nil {
			return false, fmt.Errorf("repo %s: %s: %w", name, role, err)
		}
		return m.Expires.Sub(now) < lifetime/2, nil
	}
	var err error
	if name == deviceapi.RepoFleet {
		if d.Targets, err = due(RoleTargets, life.FleetTargets); err != nil {
			return d, err
		}
	}
	if d.Snapshot, err = due(RoleSnapshot, life.Snapshot); err != nil {
		return d, err
	}
	if !d.Snapshot {
		snap, err := loadSnapshot(ctx, r, name)
		if err != nil {
			return d, err
		}
		d.Snapshot = !listsLengthsAndHashes(snap.Signed)
	}
	if d.Timestamp, err = due(RoleTimestamp, life.Timestamp); err != nil {
		return d, err
	}
	return d, nil
}

// listsLengthsAndHashes says whether every entry of snap has a length and
// a SHA-256.
func listsLengthsAndHashes(snap metadata.SnapshotType) bool {
	for _, mf := range snap.Meta {
		if mf.Length <= 0 || len(mf.Hashes["sha256"]) != sha256.Size {
			return false
		}
	}
	return true
}

// OnlineKeys are the keys a server holds for one repository. Targets is set
// only for the fleet repository.
type OnlineKeys struct {
	Targets, Snapshot, Timestamp Signer
}

// ResignDue re-signs whatever CheckDue reports and returns whether anything
// changed.
func ResignDue(ctx context.Context, tx store.Tx, name string, now time.Time, life Lifetimes, k OnlineKeys) (bool, error) {
	d, err := CheckDue(ctx, tx, name, now, life)
	if err != nil || !d.Any() {
		return false, err
	}
	if d.Targets {
		if _, err := UpdateTargets(ctx, tx, name, RoleTargets, now, life, func(*metadata.TargetsType) error { return nil }, k.Targets); err != nil {
			return false, err
		}
	}
	if d.Targets || d.Snapshot {
		return true, RefreshSnapshot(ctx, tx, name, now, life, k.Snapshot, k.Timestamp)
	}
	return true, RefreshTimestamp(ctx, tx, name, now, life, k.Timestamp)
}

// TargetInfo is a target as signed: its path, length, SHA-256 and custom
// metadata.
type TargetInfo struct {
	Path   string
	Length int64
	SHA256 []byte
	Custom json.RawMessage
}

// NewTarget builds the TUF description of a target. Only SHA-256 is listed,
// so that every client downloads the same hash-prefixed file name.
func NewTarget(t TargetInfo) *metadata.TargetFiles {
	tf := metadata.TargetFile()
	tf.Path = t.Path
	tf.Length = t.Length
	tf.Hashes = metadata.Hashes{"sha256": append([]byte(nil), t.SHA256...)}
	if len(t.Custom) > 0 {
		raw := json.RawMessage(append([]byte(nil), t.Custom...))
		tf.Custom = &raw
	}
	return tf
}
