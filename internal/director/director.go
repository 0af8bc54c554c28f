package director

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// Assigner decides what one managed device should run now. Package
// project's AssignDevice (rollouts in waves) implements it, through
// AssignerFunc.
type Assigner interface {
	Assign(ctx context.Context, dev store.Device) (rollout.Assignment, bool, error)
}

// Expiry is when each document of a view expires.
type Expiry struct {
	Targets, Snapshot, Timestamp time.Time
}

// Input is everything a device's view is computed from.
type Input struct {
	// Keys are the fleet repository's online signers (targets, snapshot,
	// timestamp), the keys its root lists for those roles.
	Keys repo.OnlineKeys
	// Device is the device's ID and Product its product; they appear in
	// errors only, never in the view.
	Device, Product string
	// Version is the version of all three documents (see Version).
	Version int64
	Expires Expiry
	// Shared is the shared fleet targets role (what anonymous devices
	// read); its targets outside any product are listed in every view.
	Shared *metadata.TargetsType
	// Release is the release repository's targets role of the device's
	// product (repo.ProductRole), signed by the product's offline key:
	// an assignment's targets are taken from it. Nil when the product has
	// none; then an assignment is ErrNotOffered.
	Release *metadata.TargetsType
	// Assignment is the device's assignment; nil when it has none.
	Assignment *rollout.Assignment
}

// View is one device's fleet view: the documents exactly as served.
type View struct {
	Version                      int64
	Targets, Snapshot, Timestamp []byte
	// TimestampExpires is when the timestamp (the whole view) expires.
	TimestampExpires time.Time
}

// ErrNotOffered is returned (wrapped) by Build when the assigned release
// is not among the release repository's targets of the device's product,
// so no offline key signed it.
var ErrNotOffered = errors.New("director: the assigned release is not in the release repository")

// Build computes and signs a device's view. It is a pure function of in
// (Ed25519 signatures are deterministic): the same input gives the same
// bytes on every replica.
func Build(in Input) (View, error) {
	if in.Keys.Targets == nil || in.Keys.Snapshot == nil || in.Keys.Timestamp == nil {
		return View{}, errors.New("director: the fleet's online targets, snapshot and timestamp keys are all needed")
	}
	if in.Shared == nil {
		return View{}, errors.New("director: no shared fleet targets")
	}
	if in.Version < 1 {
		return View{}, fmt.Errorf("director: version %d of device %s is not positive", in.Version, in.Device)
	}
	if in.Product == "" {
		return View{}, fmt.Errorf("director: device %s has no product", in.Device)
	}
	if in.Expires.Targets.IsZero() || in.Expires.Snapshot.IsZero() || in.Expires.Timestamp.IsZero() {
		return View{}, fmt.Errorf("director: device %s: every document needs an expiry", in.Device)
	}
	var rel map[string]*metadata.TargetFiles
	if in.Release != nil {
		rel = in.Release.Targets
	}
	sel, err := Select(in.Shared.Targets, rel, in.Product, in.Assignment)
	if err != nil {
		return View{}, fmt.Errorf("director: device %s: %w", in.Device, err)
	}
	targets := metadata.Targets(in.Expires.Targets.UTC())
	targets.Signed.Version = in.Version
	targets.Signed.Targets = sel
	tb, err := sign(targets, in.Keys.Targets)
	if err != nil {
		return View{}, err
	}
	snap := metadata.Snapshot(in.Expires.Snapshot.UTC())
	snap.Signed.Version = in.Version
	snap.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(in.Version, tb)}
	sb, err := sign(snap, in.Keys.Snapshot)
	if err != nil {
		return View{}, err
	}
	ts := metadata.Timestamp(in.Expires.Timestamp.UTC())
	ts.Signed.Version = in.Version
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(in.Version, sb)}
	tsb, err := sign(ts, in.Keys.Timestamp)
	if err != nil {
		return View{}, err
	}
	return View{Version: in.Version, Targets: tb, Snapshot: sb, Timestamp: tsb, TimestampExpires: ts.Signed.Expires}, nil
}

func sign[T metadata.Roles](md *metadata.Metadata[T], s repo.Signer) ([]byte, error) {
	md.ClearSignatures()
	if _, err := md.Sign(s); err != nil {
		return nil, fmt.Errorf("director: signing: %w", err)
	}
	b, err := md.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("director: encoding: %w", err)
	}
	return b, nil
}

func metaFile(version int64, body []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(body)
	mf := metadata.MetaFile(version)
	mf.Length = int64(len(body))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	return mf
}

// Select returns the targets a device of product should see:
//   - targets outside any product ("name" without a "/") of the shared
//     fleet targets are kept; no product's shared targets are listed;
//   - no assignment: nothing else;
//   - an assignment of version V: from release, the release repository's
//     targets of product, "<product>/V", the security-only builds
//     published for V (release.Manifest.SecurityOnlyOf) and the deltas
//     of those releases (release.Manifest.Deltas), each with the release
//     repository's path, length and hashes, so both repositories agree
//     as the agent requires; the offered releases get ManagedCustom
//     (rule at percent 100, rollout, wave, window), the deltas none.
//
// The view thus never depends on what the shared view offers (managed
// rollouts publish nothing there) and can only list what the offline
// release keys signed. An assignment of a version release does not list
// is ErrNotOffered.
func Select(shared, release map[string]*metadata.TargetFiles, product string, a *rollout.Assignment) (map[string]*metadata.TargetFiles, error) {
	out := map[string]*metadata.TargetFiles{}
	for path, tf := range shared {
		if !strings.Contains(path, "/") {
			out[path] = tf
		}
	}
	if a == nil {
		return out, nil
	}
	prefix := product + "/"
	main, ok := release[prefix+a.Version]
	if !ok {
		return nil, fmt.Errorf("%w (%s%s)", ErrNotOffered, prefix, a.Version)
	}
	custom, err := managedCustom(*a)
	if err != nil {
		return nil, err
	}
	offered := map[string]*metadata.TargetFiles{prefix + a.Version: main}
	for path, tf := range release {
		if m := manifestOf(tf); strings.HasPrefix(path, prefix) && m != nil && m.SecurityOnlyOf == a.Version {
			offered[path] = tf
		}
	}
	for path, tf := range offered {
		raw := json.RawMessage(append([]byte(nil), custom...))
		c := copyTarget(tf)
		c.Custom = &raw
		out[path] = c
		m := manifestOf(tf)
		if m == nil {
			return nil, fmt.Errorf("director: release target %s carries no release manifest", path)
		}
		for _, d := range m.Deltas {
			dt, ok := release[d.Target]
			if !ok || !strings.HasPrefix(d.Target, prefix) {
				return nil, fmt.Errorf("%w (delta %s of %s)", ErrNotOffered, d.Target, path)
			}
			dc := copyTarget(dt)
			dc.Custom = nil
			out[d.Target] = dc
		}
	}
	return out, nil
}

// copyTarget copies tf's path, length and hashes (not its custom
// metadata).
func copyTarget(tf *metadata.TargetFiles) *metadata.TargetFiles {
	c := *tf
	c.Custom = nil
	c.Hashes = metadata.Hashes{}
	for k, v := range tf.Hashes {
		c.Hashes[k] = append([]byte(nil), v...)
	}
	return &c
}

// manifestOf is the release manifest in a release target's custom
// metadata, or nil (a delta, or no manifest).
func manifestOf(tf *metadata.TargetFiles) *release.Manifest {
	if tf.Custom == nil {
		return nil
	}
	m, err := release.ManifestFromCustom(tf.Custom)
	if err != nil {
		return nil
	}
	return m
}

// managedCustom is the custom metadata of an offered release in a
// device's view: admitted (percent 100), with the rollout's wave and
// window (rollout.ManagedCustom).
func managedCustom(a rollout.Assignment) ([]byte, error) {
	if a.Version == "" || a.RolloutID == "" || a.Wave < 1 {
		return nil, fmt.Errorf("director: assignment %+v needs a rollout, a version and a wave from 1", a)
	}
	var c rollout.Custom
	c.Uptrust.Rollout = &rollout.Rule{Percent: 100, Start: a.Start.UTC()}
	c.Uptrust.Managed = &rollout.ManagedCustom{Rollout: a.RolloutID, Wave: a.Wave, Window: a.Window}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("director: custom metadata: %w", err)
	}
	return b, nil
}

// Version is the version of all three documents of a device's view:
//
//	generation + shared + device
//
// where generation is the store's generation (it increases with every
// committed Update: every publication, rollout change and re-signing),
// shared is the highest version among the shared fleet timestamp,
// snapshot and targets at that generation, and device is the time of the
// device record's last change (store.Device.Updated) in milliseconds since
// 1970.
//
// Invariants:
//   - Monotone per device: each term only grows (the generation and the
//     shared versions by construction, Updated because the project stamps
//     every device change with the time), so a view computed later never
//     has a lower version, on any replica and after any restart — every
//     term comes from the database, none from the process. A change of
//     any input (the generation: rollouts, releases, re-signing; the
//     device record: state, inventory) makes it strictly larger, so the
//     device's TUF client accepts the new view instead of keeping the old
//     one as "equal version". (Writers whose clocks go back by more than
//     the time between two changes of one device break this; the
//     generation term still grows with every Update.)
//   - Above the shared view: a device that trusted the shared fleet
//     metadata (an anonymous device turned managed) accepts its own view,
//     whose version is higher than every shared one.
//   - A re-enrolled device (erased, enrolled again) has a later Updated
//     and a generation at least as high, so its version is higher too.
func Version(generation, shared int64, deviceUpdated time.Time) int64 {
	return generation + shared + deviceUpdated.UnixMilli()
}

// AssignerFunc adapts a function, such as a method value of package
// project's AssignDevice, to Assigner.
type AssignerFunc func(ctx context.Context, dev store.Device) (rollout.Assignment, bool, error)

// Assign implements Assigner.
func (f AssignerFunc) Assign(ctx context.Context, dev store.Device) (rollout.Assignment, bool, error) {
	return f(ctx, dev)
}
