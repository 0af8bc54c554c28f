package repo_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// assertSnapshotCoversTargets checks that the latest snapshot of name lists
// every stored targets role at its latest version with the length and
// SHA-256 of the exact bytes stored (and served), and that go-tuf accepts
// those bytes against the entry.
func assertSnapshotCoversTargets(t *testing.T, f *fixture, name string) {
	t.Helper()
	snap, err := metadata.Snapshot().FromBytes(f.latest(t, name, repo.RoleSnapshot).Body)
	if err != nil {
		t.Fatal(err)
	}
	all, err := f.st.AllMetadata(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	roles := 0
	for _, m := range all {
		switch m.Role {
		case repo.RoleRoot, repo.RoleSnapshot, repo.RoleTimestamp:
			continue
		}
		latest := f.latest(t, name, m.Role)
		if latest.Version != m.Version {
			continue
		}
		roles++
		mf := snap.Signed.Meta[m.Role+".json"]
		if mf == nil {
			t.Errorf("%s snapshot does not list %s", name, m.Role)
			continue
		}
		sum := sha256.Sum256(m.Body)
		if mf.Version != m.Version || mf.Length != int64(len(m.Body)) || !bytes.Equal(mf.Hashes["sha256"], sum[:]) {
			t.Errorf("%s snapshot lists %s v%d length %d sha256 %x; stored v%d has length %d sha256 %x",
				name, m.Role, mf.Version, mf.Length, []byte(mf.Hashes["sha256"]), m.Version, len(m.Body), sum)
		}
		if err := mf.VerifyLengthHashes(m.Body); err != nil {
			t.Errorf("go-tuf refuses %s against the snapshot: %v", m.Role, err)
		}
		if err := mf.VerifyLengthHashes(append(bytes.Clone(m.Body), ' ')); err == nil {
			t.Errorf("go-tuf accepts %s with a byte appended: the snapshot entry checks nothing", m.Role)
		}
	}
	if roles != len(snap.Signed.Meta) {
		t.Errorf("%s snapshot lists %d roles, %d are stored", name, len(snap.Signed.Meta), roles)
	}
}

// TestSnapshotListsLengthAndHashOfEveryTargetsRole: the top-level targets
// role and every delegated product role are listed with their length and
// SHA-256, after initialisation, after a change, and after the server's
// re-signing.
func TestSnapshotListsLengthAndHashOfEveryTargetsRole(t *testing.T) {
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name)
			assertSnapshotCoversTargets(t, f, name)
			if name == deviceapi.RepoRelease {
				productKey := genKey(t)
				f.addProduct(t, name, "thermostat", productKey)
				f.addProduct(t, name, "doorbell", genKey(t))
				assertSnapshotCoversTargets(t, f, name)
				if _, err := updateTargets(t, f, repo.ProductRole("thermostat"), addTarget("thermostat/1.1.0", []byte("image")), productKey); err != nil {
					t.Fatal(err)
				}
				if err := f.update(t, func(tx store.Tx) error {
					return repo.RefreshSnapshot(t.Context(), tx, name, t0, f.life, f.snapshot, f.timestamp)
				}); err != nil {
					t.Fatal(err)
				}
				assertSnapshotCoversTargets(t, f, name)
				clientVerify(t, f.st, name, t0, repo.ProductRole("thermostat"), repo.ProductRole("doorbell"))
			}
			online := repo.OnlineKeys{Snapshot: f.snapshot, Timestamp: f.timestamp}
			if name == deviceapi.RepoFleet {
				online.Targets = f.targets
			}
			at := t0.Add(f.life.Snapshot/2 + time.Hour)
			if err := f.update(t, func(tx store.Tx) error {
				changed, err := repo.ResignDue(t.Context(), tx, name, at, f.life, online)
				if err == nil && !changed {
					err = fmt.Errorf("nothing re-signed past half the snapshot lifetime")
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			assertSnapshotCoversTargets(t, f, name)
		})
	}
}

// TestResignDueAddsLengthsToAnOldSnapshot: a snapshot signed before
// snapshots listed lengths and hashes (versions only) makes the snapshot
// due at once, and the re-signed one lists them.
func TestResignDueAddsLengthsToAnOldSnapshot(t *testing.T) {
	name := deviceapi.RepoRelease
	f := newFixture(t, name)
	f.addProduct(t, name, "thermostat", genKey(t))
	ctx := t.Context()
	// Today's snapshot, stripped to versions and signed as a new version,
	// as the server signed them before.
	if err := f.update(t, func(tx store.Tx) error {
		old := f.latest(t, name, repo.RoleSnapshot)
		snap, err := metadata.Snapshot().FromBytes(old.Body)
		if err != nil {
			return err
		}
		snap.Signed.Version++
		for path, mf := range snap.Signed.Meta {
			snap.Signed.Meta[path] = metadata.MetaFile(mf.Version)
		}
		snap.ClearSignatures()
		if _, err := snap.Sign(f.snapshot); err != nil {
			return err
		}
		body, err := snap.ToBytes(false)
		if err != nil {
			return err
		}
		if err := tx.PutMetadata(ctx, store.Metadata{Repo: name, Role: repo.RoleSnapshot, Version: snap.Signed.Version, Body: body, Expires: snap.Signed.Expires}); err != nil {
			return err
		}
		return repo.RefreshTimestamp(ctx, tx, name, t0, f.life, f.timestamp)
	}); err != nil {
		t.Fatal(err)
	}
	stripped := f.version(t, name, repo.RoleSnapshot)
	d, err := repo.CheckDue(ctx, f.st, name, t0, f.life)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Snapshot {
		t.Fatalf("a snapshot without lengths and hashes is not due: %+v", d)
	}
	if err := f.update(t, func(tx store.Tx) error {
		_, err := repo.ResignDue(ctx, tx, name, t0, f.life, repo.OnlineKeys{Snapshot: f.snapshot, Timestamp: f.timestamp})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if v := f.version(t, name, repo.RoleSnapshot); v != stripped+1 {
		t.Errorf("snapshot v%d after ResignDue, want v%d", v, stripped+1)
	}
	assertSnapshotCoversTargets(t, f, name)
	if d, err := repo.CheckDue(ctx, f.st, name, t0, f.life); err != nil || d.Any() {
		t.Errorf("after re-signing: %+v due, %v; want nothing", d, err)
	}
	clientVerify(t, f.st, name, t0, repo.ProductRole("thermostat"))
}

// TestMetadataSizesOfALargeProject measures the documents of a large
// project, 50 products of 100 releases each, every release with three
// deltas, and every product rolling out one release, against the limits
// devices accept by default (deviceapi.DefaultMax*Bytes): each must
// stay below half its limit.
func TestMetadataSizesOfALargeProject(t *testing.T) {
	const products, releases, deltas = 50, 100, 3
	rel := newFixture(t, deviceapi.RepoRelease)
	fleet := newFixture(t, deviceapi.RepoFleet)
	ctx := t.Context()
	hexOf := func(s string) string { sum := sha256.Sum256([]byte(s)); return fmt.Sprintf("%x", sum) }
	rule, _ := json.Marshal(map[string]any{"uptrust": map[string]any{"rollout": rollout.Rule{Percent: 37, Start: t0}}})
	var offered []repo.TargetInfo
	var productRoles []string
	productKeys := map[string]repo.Signer{}
	for p := range products {
		role := repo.ProductRole(fmt.Sprintf("product-%02d", p))
		productRoles = append(productRoles, role)
		productKeys[role] = genKey(t)
	}
	// releaseTargets adds the releases of product, and their deltas, to tt.
	releaseTargets := func(product string, tt *metadata.TargetsType) error {
		for r := range releases {
			version := fmt.Sprintf("1.%d.0", r)
			m := release.Manifest{
				Product: product, Version: version, Hardware: []string{"rev-a", "rev-b"},
				SecurityVersion: uint64(r), Kind: release.KindSecurity,
				Impact:     release.Impact{DataCollection: release.ChangeNone, Functionality: release.ChangeNone},
				Notes:      strings.Repeat("Fixes a buffer overflow in the MQTT client. ", 6),
				Advisories: []release.Advisory{{ID: fmt.Sprintf("CVE-2026-%05d", r), Summary: "Remote code execution over MQTT"}},
				Payload:    release.Payload{Type: "rootfs", Compression: release.CompressionZstd, ImageLength: 64 << 20, ImageSHA256: hexOf(version + "image")},
				Published:  t0,
			}
			for d := 1; d <= deltas && d <= r; d++ {
				from := fmt.Sprintf("1.%d.0", r-d)
				dt := release.DeltaTargetName(product, version, from)
				m.Deltas = append(m.Deltas, release.Delta{From: from, Target: dt, Length: 3 << 20, SHA256: hexOf(dt),
					SourceLength: 64 << 20, SourceSHA256: hexOf(from + "image")})
				sum := sha256.Sum256([]byte(dt))
				tt.Targets[dt] = repo.NewTarget(repo.TargetInfo{Path: dt, Length: 3 << 20, SHA256: sum[:]})
			}
			custom, err := json.Marshal(release.Custom{Uptrust: &m})
			if err != nil {
				return err
			}
			path := product + "/" + version
			sum := sha256.Sum256([]byte(path))
			tt.Targets[path] = repo.NewTarget(repo.TargetInfo{Path: path, Length: 40 << 20, SHA256: sum[:], Custom: custom})
			if r == releases-1 {
				offered = append(offered, repo.TargetInfo{Path: path, Length: 40 << 20, SHA256: sum[:], Custom: rule})
				for _, d := range m.Deltas {
					dsum := sha256.Sum256([]byte(d.Target))
					offered = append(offered, repo.TargetInfo{Path: d.Target, Length: d.Length, SHA256: dsum[:]})
				}
			}
		}
		return nil
	}
	if err := rel.update(t, func(tx store.Tx) error {
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.RoleTargets, t0, rel.life, func(tt *metadata.TargetsType) error {
			tt.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
			for _, role := range productRoles {
				product := strings.TrimPrefix(role, "products/")
				tt.Delegations.Roles = append(tt.Delegations.Roles, metadata.DelegatedRole{
					Name: role, Threshold: 1, Terminating: true, Paths: []string{product + "/*"}, KeyIDs: []string{},
				})
				if err := tt.AddKey(productKeys[role].TUFKey(), role); err != nil {
					return err
				}
			}
			return nil
		}, rel.targets)
		if err != nil {
			return err
		}
		for _, role := range productRoles {
			product := strings.TrimPrefix(role, "products/")
			if _, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, role, t0, rel.life, func(tt *metadata.TargetsType) error {
				return releaseTargets(product, tt)
			}, productKeys[role]); err != nil {
				return err
			}
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, t0, rel.life, rel.snapshot, rel.timestamp)
	}); err != nil {
		t.Fatal(err)
	}
	if err := fleet.update(t, func(tx store.Tx) error {
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoFleet, repo.RoleTargets, t0, fleet.life, func(tt *metadata.TargetsType) error {
			for _, o := range offered {
				tt.Targets[o.Path] = repo.NewTarget(o)
			}
			return nil
		}, fleet.targets)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoFleet, t0, fleet.life, fleet.snapshot, fleet.timestamp)
	}); err != nil {
		t.Fatal(err)
	}
	clientVerify(t, rel.st, deviceapi.RepoRelease, t0, productRoles[0])

	check := func(f *fixture, name, role string, limit int64) {
		n := int64(len(f.latest(t, name, role).Body))
		t.Logf("%s %s: %d bytes (default limit %d)", name, role, n, limit)
		if n > limit/2 {
			t.Errorf("%s %s has %d bytes, more than half the devices' default limit of %d", name, role, n, limit)
		}
	}
	for _, c := range []struct {
		f    *fixture
		name string
	}{{rel, deviceapi.RepoRelease}, {fleet, deviceapi.RepoFleet}} {
		check(c.f, c.name, repo.RoleRoot, deviceapi.DefaultMaxRootBytes)
		check(c.f, c.name, repo.RoleTimestamp, deviceapi.DefaultMaxTimestampBytes)
		check(c.f, c.name, repo.RoleSnapshot, deviceapi.DefaultMaxSnapshotBytes)
		check(c.f, c.name, repo.RoleTargets, deviceapi.DefaultMaxTargetsBytes)
	}
	check(rel, deviceapi.RepoRelease, productRoles[0], deviceapi.DefaultMaxTargetsBytes)
}
