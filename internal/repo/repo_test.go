package repo_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlite"
)

// t0 has a sub-second part on purpose: expiries are truncated to seconds.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)

type fixture struct {
	st        *sqlite.Store
	life      repo.Lifetimes
	root      []repo.Signer // 2-of-3
	targets   repo.Signer
	snapshot  repo.Signer
	timestamp repo.Signer
}

func genKey(t *testing.T) repo.Signer {
	t.Helper()
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "uptrust.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newFixture initialises repository name with a 2-of-3 root at t0.
func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	f := &fixture{
		st:   openStore(t),
		life: repo.DefaultLifetimes(),
		root: []repo.Signer{genKey(t), genKey(t), genKey(t)},
	}
	f.targets, f.snapshot, f.timestamp = genKey(t), genKey(t), genKey(t)
	if err := f.update(t, func(tx store.Tx) error {
		return repo.Init(t.Context(), tx, name, t0, f.life, f.roleKeys())
	}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return f
}

func (f *fixture) roleKeys() repo.RoleKeys {
	return repo.RoleKeys{Root: f.root, RootThreshold: 2, Targets: f.targets, Snapshot: f.snapshot, Timestamp: f.timestamp}
}

func (f *fixture) update(t *testing.T, fn func(tx store.Tx) error) error {
	t.Helper()
	return f.st.Update(t.Context(), fn)
}

func (f *fixture) latest(t *testing.T, name, role string) store.Metadata {
	t.Helper()
	m, err := f.st.LatestMetadata(t.Context(), name, role)
	if err != nil {
		t.Fatalf("LatestMetadata(%s, %s): %v", name, role, err)
	}
	return m
}

func (f *fixture) version(t *testing.T, name, role string) int64 {
	t.Helper()
	return f.latest(t, name, role).Version
}

// addProduct delegates products/<product> to key from the top-level targets
// role and signs a first version of the delegated role, then refreshes
// snapshot and timestamp.
func (f *fixture) addProduct(t *testing.T, name, product string, key repo.Signer) {
	t.Helper()
	role := repo.ProductRole(product)
	err := f.update(t, func(tx store.Tx) error {
		ctx := t.Context()
		_, err := repo.UpdateTargets(ctx, tx, name, repo.RoleTargets, t0, f.life, func(tt *metadata.TargetsType) error {
			if tt.Delegations == nil {
				tt.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
			}
			tt.Delegations.Roles = append(tt.Delegations.Roles, metadata.DelegatedRole{
				Name: role, Threshold: 1, Terminating: true, Paths: []string{product + "/*"}, KeyIDs: []string{},
			})
			return tt.AddKey(key.TUFKey(), role)
		}, f.targets)
		if err != nil {
			return err
		}
		if _, err := repo.UpdateTargets(ctx, tx, name, role, t0, f.life, func(*metadata.TargetsType) error { return nil }, key); err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, name, t0, f.life, f.snapshot, f.timestamp)
	})
	if err != nil {
		t.Fatalf("adding product %s: %v", product, err)
	}
}

func addTarget(path string, payload []byte) func(*metadata.TargetsType) error {
	return func(tt *metadata.TargetsType) error {
		sum := sha256.Sum256(payload)
		tt.Targets[path] = repo.NewTarget(repo.TargetInfo{Path: path, Length: int64(len(payload)), SHA256: sum[:]})
		return nil
	}
}

// clientVerify runs go-tuf's client-side checks over the latest stored
// documents of a repository, trusting its version 1 root, at reference time
// at: root chain, timestamp, snapshot (against the timestamp's hashes),
// targets and the given delegated roles.
func clientVerify(t *testing.T, r store.Reader, name string, at time.Time, delegated ...string) *trustedmetadata.TrustedMetadata {
	t.Helper()
	ctx := t.Context()
	all, err := r.AllMetadata(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var roots []store.Metadata
	for _, m := range all {
		if m.Role == repo.RoleRoot {
			roots = append(roots, m)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].Version < roots[j].Version })
	if len(roots) == 0 || roots[0].Version != 1 {
		t.Fatalf("%s: no root version 1", name)
	}
	tm, err := trustedmetadata.New(roots[0].Body)
	if err != nil {
		t.Fatalf("%s: trusting root v1: %v", name, err)
	}
	tm.RefTime = at
	for _, m := range roots[1:] {
		if _, err := tm.UpdateRoot(m.Body); err != nil {
			t.Fatalf("%s: client refuses root v%d: %v", name, m.Version, err)
		}
	}
	ts := latestBody(t, r, name, repo.RoleTimestamp)
	if _, err := tm.UpdateTimestamp(ts); err != nil {
		t.Fatalf("%s: client refuses timestamp: %v", name, err)
	}
	if _, err := tm.UpdateSnapshot(latestBody(t, r, name, repo.RoleSnapshot), false); err != nil {
		t.Fatalf("%s: client refuses snapshot: %v", name, err)
	}
	if _, err := tm.UpdateTargets(latestBody(t, r, name, repo.RoleTargets)); err != nil {
		t.Fatalf("%s: client refuses targets: %v", name, err)
	}
	for _, role := range delegated {
		if _, err := tm.UpdateDelegatedTargets(latestBody(t, r, name, role), role, repo.RoleTargets); err != nil {
			t.Fatalf("%s: client refuses %s: %v", name, role, err)
		}
	}
	return tm
}

func latestBody(t *testing.T, r store.Reader, name, role string) []byte {
	t.Helper()
	m, err := r.LatestMetadata(t.Context(), name, role)
	if err != nil {
		t.Fatalf("LatestMetadata(%s, %s): %v", name, role, err)
	}
	return m.Body
}

func TestInitCreatesVersionOneOfEveryRole(t *testing.T) {
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name)
			for _, role := range []string{repo.RoleRoot, repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp} {
				if v := f.version(t, name, role); v != 1 {
					t.Errorf("%s version %d, want 1", role, v)
				}
			}
			root, err := metadata.Root().FromBytes(f.latest(t, name, repo.RoleRoot).Body)
			if err != nil {
				t.Fatal(err)
			}
			rr := root.Signed.Roles[repo.RoleRoot]
			if rr.Threshold != 2 || len(rr.KeyIDs) != 3 {
				t.Errorf("root role: threshold %d with %d keys, want 2 of 3", rr.Threshold, len(rr.KeyIDs))
			}
			if len(root.Signatures) != 3 {
				t.Errorf("root v1 has %d signatures, want one per root key (3)", len(root.Signatures))
			}
			if !root.Signed.ConsistentSnapshot {
				t.Error("root does not declare consistent snapshots")
			}
			for role, k := range map[string]repo.Signer{repo.RoleTargets: f.targets, repo.RoleSnapshot: f.snapshot, repo.RoleTimestamp: f.timestamp} {
				if ids := root.Signed.Roles[role].KeyIDs; len(ids) != 1 || ids[0] != k.KeyID() {
					t.Errorf("root lists keys %v for %s, want [%s]", ids, role, k.KeyID())
				}
			}
			if want := t0.Add(f.life.Root).Truncate(time.Second); !root.Signed.Expires.Equal(want) {
				t.Errorf("root expires %v, want %v", root.Signed.Expires, want)
			}
			ts := f.latest(t, name, repo.RoleTimestamp)
			if want := t0.Add(f.life.Timestamp).Truncate(time.Second); !ts.Expires.Equal(want) {
				t.Errorf("stored timestamp expiry %v, want %v", ts.Expires, want)
			}
			clientVerify(t, f.st, name, t0)
		})
	}
}

func TestInitRefusesSecondInit(t *testing.T) {
	f := newFixture(t, deviceapi.RepoRelease)
	err := f.update(t, func(tx store.Tx) error {
		return repo.Init(t.Context(), tx, deviceapi.RepoRelease, t0.Add(time.Hour), f.life, f.roleKeys())
	})
	if err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Fatalf("second Init: %v, want an already initialised error", err)
	}
	if v := f.version(t, deviceapi.RepoRelease, repo.RoleTimestamp); v != 1 {
		t.Errorf("timestamp version %d after refused Init, want 1", v)
	}
	// The other repository in the same store is independent.
	if err := f.update(t, func(tx store.Tx) error {
		return repo.Init(t.Context(), tx, deviceapi.RepoFleet, t0, f.life, f.roleKeys())
	}); err != nil {
		t.Errorf("Init of fleet next to release: %v", err)
	}
}

func TestInitRejectsBadKeys(t *testing.T) {
	st := openStore(t)
	life := repo.DefaultLifetimes()
	k := genKey(t)
	for _, tc := range []struct {
		name string
		keys repo.RoleKeys
	}{
		{"threshold above key count", repo.RoleKeys{Root: []repo.Signer{k}, RootThreshold: 2, Targets: k, Snapshot: k, Timestamp: k}},
		{"zero threshold", repo.RoleKeys{Root: []repo.Signer{k}, RootThreshold: 0, Targets: k, Snapshot: k, Timestamp: k}},
		{"no root keys", repo.RoleKeys{RootThreshold: 1, Targets: k, Snapshot: k, Timestamp: k}},
		{"no timestamp key", repo.RoleKeys{Root: []repo.Signer{k}, RootThreshold: 1, Targets: k, Snapshot: k}},
	} {
		err := st.Update(t.Context(), func(tx store.Tx) error {
			return repo.Init(t.Context(), tx, deviceapi.RepoRelease, t0, life, tc.keys)
		})
		if err == nil {
			t.Errorf("%s: Init succeeded", tc.name)
		}
	}
	if _, err := st.LatestMetadata(t.Context(), deviceapi.RepoRelease, repo.RoleRoot); err == nil {
		t.Error("a refused Init left a root behind")
	}
}

func TestUpdateTargetsBumpsVersionAndChecksThreshold(t *testing.T) {
	f := newFixture(t, deviceapi.RepoRelease)
	ctx := t.Context()
	md, err := updateTargets(t, f, repo.RoleTargets, addTarget("thermostat/notes.txt", []byte("hi")), f.targets)
	if err != nil {
		t.Fatalf("UpdateTargets with the targets key: %v", err)
	}
	if md.Signed.Version != 2 || f.version(t, deviceapi.RepoRelease, repo.RoleTargets) != 2 {
		t.Fatalf("targets version %d (stored %d), want 2", md.Signed.Version, f.version(t, deviceapi.RepoRelease, repo.RoleTargets))
	}
	later := t0.Add(48 * time.Hour)
	if err := f.update(t, func(tx store.Tx) error {
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.RoleTargets, later, f.life, func(*metadata.TargetsType) error { return nil }, f.targets)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := repo.LoadTargets(ctx, f.st, deviceapi.RepoRelease, repo.RoleTargets)
	if want := later.Add(f.life.Targets).Truncate(time.Second); !got.Signed.Expires.Equal(want) {
		t.Errorf("targets v3 expires %v, want %v", got.Signed.Expires, want)
	}
	if _, ok := got.Signed.Targets["thermostat/notes.txt"]; !ok {
		t.Error("targets v3 lost the target added in v2")
	}

	// The snapshot key is not a targets key.
	_, err = updateTargets(t, f, repo.RoleTargets, addTarget("x/y", []byte("y")), f.snapshot)
	if err == nil || !strings.Contains(err.Error(), "threshold") {
		t.Fatalf("UpdateTargets signed with the snapshot key: %v, want a threshold error", err)
	}
	if v := f.version(t, deviceapi.RepoRelease, repo.RoleTargets); v != 3 {
		t.Errorf("targets version %d after a refused update, want 3", v)
	}

	// A delegated role is checked against the delegating targets role.
	productKey, otherKey := genKey(t), genKey(t)
	f.addProduct(t, deviceapi.RepoRelease, "thermostat", productKey)
	role := repo.ProductRole("thermostat")
	if v := f.version(t, deviceapi.RepoRelease, role); v != 1 {
		t.Fatalf("%s version %d, want 1", role, v)
	}
	if _, err := updateTargets(t, f, role, addTarget("thermostat/1.1.0", []byte("payload")), otherKey); err == nil || !strings.Contains(err.Error(), "threshold") {
		t.Fatalf("delegated role signed with a key it does not list: %v, want a threshold error", err)
	}
	if _, err := updateTargets(t, f, role, addTarget("thermostat/1.1.0", []byte("payload")), f.targets); err == nil {
		t.Fatal("delegated role signed with the top-level targets key was accepted")
	}
	if _, err := updateTargets(t, f, role, addTarget("thermostat/1.1.0", []byte("payload")), productKey); err != nil {
		t.Fatalf("delegated role signed with its key: %v", err)
	}
	if v := f.version(t, deviceapi.RepoRelease, role); v != 2 {
		t.Errorf("%s version %d, want 2", role, v)
	}
	// A role nobody delegated cannot be created.
	if _, err := updateTargets(t, f, repo.ProductRole("toaster"), addTarget("toaster/1.0.0", []byte("t")), productKey); err == nil {
		t.Error("an undelegated role was stored")
	}
	if _, err := f.st.LatestMetadata(ctx, deviceapi.RepoRelease, repo.ProductRole("toaster")); err == nil {
		t.Error("a refused undelegated role is in the store")
	}
	if err := f.update(t, func(tx store.Tx) error {
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, t0, f.life, f.snapshot, f.timestamp)
	}); err != nil {
		t.Fatal(err)
	}
	tm := clientVerify(t, f.st, deviceapi.RepoRelease, t0, role)
	if _, ok := tm.Targets[role].Signed.Targets["thermostat/1.1.0"]; !ok {
		t.Error("client-verified product role does not list thermostat/1.1.0")
	}
}

func updateTargets(t *testing.T, f *fixture, role string, change func(*metadata.TargetsType) error, signers ...repo.Signer) (*metadata.Metadata[metadata.TargetsType], error) {
	t.Helper()
	var md *metadata.Metadata[metadata.TargetsType]
	err := f.update(t, func(tx store.Tx) error {
		var err error
		md, err = repo.UpdateTargets(t.Context(), tx, deviceapi.RepoRelease, role, t0, f.life, change, signers...)
		return err
	})
	return md, err
}

func TestRefreshSnapshotListsLatestTargetsVersions(t *testing.T) {
	f := newFixture(t, deviceapi.RepoRelease)
	ctx := t.Context()
	productKey := genKey(t)
	f.addProduct(t, deviceapi.RepoRelease, "thermostat", productKey) // targets v2, product v1, snapshot v2
	for i := range 2 {
		if _, err := updateTargets(t, f, repo.ProductRole("thermostat"), addTarget(fmt.Sprintf("thermostat/1.%d.0", i), []byte{byte(i)}), productKey); err != nil {
			t.Fatal(err)
		}
	}
	prevSnap, prevTS := f.version(t, deviceapi.RepoRelease, repo.RoleSnapshot), f.version(t, deviceapi.RepoRelease, repo.RoleTimestamp)
	if err := f.update(t, func(tx store.Tx) error {
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, t0, f.life, f.snapshot, f.timestamp)
	}); err != nil {
		t.Fatal(err)
	}
	snapDoc := f.latest(t, deviceapi.RepoRelease, repo.RoleSnapshot)
	if snapDoc.Version != prevSnap+1 {
		t.Errorf("snapshot version %d, want %d", snapDoc.Version, prevSnap+1)
	}
	snap, err := metadata.Snapshot().FromBytes(snapDoc.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"targets.json": 2, "products/thermostat.json": 3}
	if len(snap.Signed.Meta) != len(want) {
		t.Errorf("snapshot lists %d roles, want %d", len(snap.Signed.Meta), len(want))
	}
	for path, v := range want {
		if mf, ok := snap.Signed.Meta[path]; !ok || mf.Version != v {
			t.Errorf("snapshot meta %s = %+v, want version %d", path, mf, v)
		}
	}
	tsDoc := f.latest(t, deviceapi.RepoRelease, repo.RoleTimestamp)
	if tsDoc.Version != prevTS+1 {
		t.Errorf("timestamp version %d, want %d", tsDoc.Version, prevTS+1)
	}
	ts, err := metadata.Timestamp().FromBytes(tsDoc.Body)
	if err != nil {
		t.Fatal(err)
	}
	mf := ts.Signed.Meta["snapshot.json"]
	if mf == nil {
		t.Fatal("timestamp does not list snapshot.json")
	}
	sum := sha256.Sum256(snapDoc.Body)
	if mf.Version != snapDoc.Version || mf.Length != int64(len(snapDoc.Body)) || !bytes.Equal(mf.Hashes["sha256"], sum[:]) {
		t.Errorf("timestamp lists snapshot v%d len %d sha256 %x, want v%d len %d sha256 %x",
			mf.Version, mf.Length, []byte(mf.Hashes["sha256"]), snapDoc.Version, len(snapDoc.Body), sum)
	}
	if err := mf.VerifyLengthHashes(snapDoc.Body); err != nil {
		t.Errorf("go-tuf: %v", err)
	}

	// The keys-level checks a client makes, one by one.
	root, err := metadata.Root().FromBytes(f.latest(t, deviceapi.RepoRelease, repo.RoleRoot).Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(repo.RoleTimestamp, ts); err != nil {
		t.Errorf("root does not verify timestamp: %v", err)
	}
	if err := root.VerifyDelegate(repo.RoleSnapshot, snap); err != nil {
		t.Errorf("root does not verify snapshot: %v", err)
	}
	if err := root.VerifyDelegate(repo.RoleTimestamp, snap); err == nil {
		t.Error("snapshot verifies as timestamp: snapshot and timestamp share a key")
	}
	top, err := metadata.Targets().FromBytes(f.latest(t, deviceapi.RepoRelease, repo.RoleTargets).Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(repo.RoleTargets, top); err != nil {
		t.Errorf("root does not verify targets: %v", err)
	}
	prod, err := metadata.Targets().FromBytes(f.latest(t, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := top.VerifyDelegate(repo.ProductRole("thermostat"), prod); err != nil {
		t.Errorf("targets does not verify the product role: %v", err)
	}
	clientVerify(t, f.st, deviceapi.RepoRelease, t0, repo.ProductRole("thermostat"))
}

func TestUpdateRoot(t *testing.T) {
	f := newFixture(t, deviceapi.RepoRelease)
	ctx := t.Context()
	k1, k2, k3 := f.root[0], f.root[1], f.root[2]
	k4, k5 := genKey(t), genKey(t)
	updateRoot := func(change func(*metadata.RootType) error, signers ...repo.Signer) error {
		return f.update(t, func(tx store.Tx) error {
			_, err := repo.UpdateRoot(ctx, tx, deviceapi.RepoRelease, t0, f.life, change, signers...)
			return err
		})
	}
	noChange := func(*metadata.RootType) error { return nil }

	// 2-of-3: one key is not enough.
	err := updateRoot(noChange, k1)
	if err == nil || !strings.Contains(err.Error(), "threshold") {
		t.Fatalf("root signed by 1 of a 2-of-3 threshold: %v, want a threshold error", err)
	}
	if v := f.version(t, deviceapi.RepoRelease, repo.RoleRoot); v != 1 {
		t.Fatalf("root version %d after a refused update, want 1", v)
	}

	// Replace all three keys by k4, k5 with threshold 2.
	rotate := func(r *metadata.RootType) error {
		for _, k := range []repo.Signer{k1, k2, k3} {
			if err := r.RevokeKey(k.KeyID(), repo.RoleRoot); err != nil {
				return err
			}
		}
		for _, k := range []repo.Signer{k4, k5} {
			if err := r.AddKey(k.TUFKey(), repo.RoleRoot); err != nil {
				return err
			}
		}
		return nil
	}
	err = updateRoot(rotate, k4, k5)
	if err == nil || !strings.Contains(err.Error(), "previous root") {
		t.Fatalf("rotation signed only by the new keys: %v, want an error about the previous root", err)
	}
	err = updateRoot(rotate, k1, k2)
	if err == nil || !strings.Contains(err.Error(), "itself") {
		t.Fatalf("rotation signed only by the old keys: %v, want an error about the new root's own threshold", err)
	}
	err = updateRoot(rotate, k1, k4)
	if err == nil {
		t.Fatal("rotation signed by 1 old and 1 new key was accepted (each threshold is 2)")
	}
	if v := f.version(t, deviceapi.RepoRelease, repo.RoleRoot); v != 1 {
		t.Fatalf("root version %d after refused rotations, want 1", v)
	}
	later := t0.Add(100 * 24 * time.Hour)
	if err := f.update(t, func(tx store.Tx) error {
		_, err := repo.UpdateRoot(ctx, tx, deviceapi.RepoRelease, later, f.life, rotate, k2, k3, k4, k5)
		return err
	}); err != nil {
		t.Fatalf("rotation signed by 2 old and 2 new keys: %v", err)
	}
	if m := f.latest(t, deviceapi.RepoRelease, repo.RoleRoot); m.Version != 2 || !m.Expires.Equal(later.Add(f.life.Root).Truncate(time.Second)) {
		t.Fatalf("root v%d expiring %v, want v2 expiring a root lifetime after the rotation", m.Version, m.Expires)
	}
	v1, _ := metadata.Root().FromBytes(latestRootVersion(t, f.st, 1))
	v2, _ := metadata.Root().FromBytes(f.latest(t, deviceapi.RepoRelease, repo.RoleRoot).Body)
	if err := v1.VerifyDelegate(repo.RoleRoot, v2); err != nil {
		t.Errorf("v1 does not verify v2: %v", err)
	}
	if err := v2.VerifyDelegate(repo.RoleRoot, v2); err != nil {
		t.Errorf("v2 does not verify itself: %v", err)
	}
	// The next rotation needs the new keys; the old ones no longer count.
	if err := updateRoot(noChange, k1, k2, k3); err == nil {
		t.Error("root v3 signed by the revoked keys was accepted")
	}
	if err := f.update(t, func(tx store.Tx) error {
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, t0, f.life, f.snapshot, f.timestamp)
	}); err != nil {
		t.Fatal(err)
	}
	tm := clientVerify(t, f.st, deviceapi.RepoRelease, t0)
	if tm.Root.Signed.Version != 2 {
		t.Errorf("client ends on root v%d, want 2", tm.Root.Signed.Version)
	}
}

func latestRootVersion(t *testing.T, r store.Reader, v int64) []byte {
	t.Helper()
	all, err := r.AllMetadata(t.Context(), deviceapi.RepoRelease)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Role == repo.RoleRoot && m.Version == v {
			return m.Body
		}
	}
	t.Fatalf("no root v%d", v)
	return nil
}

func TestCheckDueAndResignDue(t *testing.T) {
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name)
			ctx := t.Context()
			online := repo.OnlineKeys{Snapshot: f.snapshot, Timestamp: f.timestamp}
			if name == deviceapi.RepoFleet {
				online.Targets = f.targets
			}
			checkDue := func(at time.Time) repo.Due {
				t.Helper()
				d, err := repo.CheckDue(ctx, f.st, name, at, f.life)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			resign := func(at time.Time) bool {
				t.Helper()
				var changed bool
				if err := f.update(t, func(tx store.Tx) error {
					var err error
					changed, err = repo.ResignDue(ctx, tx, name, at, f.life, online)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return changed
			}

			if d := checkDue(t0); d.Any() {
				t.Errorf("fresh repository: %+v due", d)
			}
			if d := checkDue(t0.Add(f.life.Timestamp/2 - time.Minute)); d.Any() {
				t.Errorf("before half the timestamp lifetime: %+v due", d)
			}
			at := t0.Add(f.life.Timestamp/2 + time.Minute)
			if d := checkDue(at); d != (repo.Due{Timestamp: true}) {
				t.Errorf("after half the timestamp lifetime: %+v due, want only the timestamp", d)
			}
			oldTS := f.latest(t, name, repo.RoleTimestamp)
			if !resign(at) {
				t.Fatal("ResignDue reported no change with the timestamp due")
			}
			newTS := f.latest(t, name, repo.RoleTimestamp)
			if newTS.Version != oldTS.Version+1 || !newTS.Expires.After(oldTS.Expires) {
				t.Errorf("timestamp v%d expiring %v after v%d expiring %v: want the next version, later", newTS.Version, newTS.Expires, oldTS.Version, oldTS.Expires)
			}
			if v := f.version(t, name, repo.RoleSnapshot); v != 1 {
				t.Errorf("snapshot re-signed (v%d) when only the timestamp was due", v)
			}
			if resign(at) {
				t.Error("ResignDue changed something right after re-signing")
			}
			// The client accepts the new timestamp even after the first one expired.
			clientVerify(t, f.st, name, t0.Add(f.life.Timestamp+time.Hour))

			// Past half the snapshot (and fleet targets) lifetime.
			at = t0.Add(f.life.Snapshot/2 + time.Hour)
			d := checkDue(at)
			if !d.Snapshot || !d.Timestamp || d.Targets != (name == deviceapi.RepoFleet) {
				t.Errorf("after half the snapshot lifetime: %+v due (targets due only for fleet)", d)
			}
			oldTargets := f.version(t, name, repo.RoleTargets)
			if !resign(at) {
				t.Fatal("ResignDue reported no change with the snapshot due")
			}
			wantTargets := oldTargets
			if name == deviceapi.RepoFleet {
				wantTargets++
			}
			if v := f.version(t, name, repo.RoleTargets); v != wantTargets {
				t.Errorf("targets version %d, want %d", v, wantTargets)
			}
			if v := f.version(t, name, repo.RoleSnapshot); v != 2 {
				t.Errorf("snapshot version %d, want 2", v)
			}
			if d := checkDue(at); d.Any() {
				t.Errorf("after ResignDue: %+v still due", d)
			}
			clientVerify(t, f.st, name, at)
		})
	}
}

// Fleet targets can fall due before the snapshot does; the re-signed targets
// role must then still be listed by a new snapshot.
func TestResignDueFleetTargetsBeforeSnapshot(t *testing.T) {
	f := newFixture(t, deviceapi.RepoFleet)
	ctx := t.Context()
	f.life.FleetTargets = 2 * 24 * time.Hour
	at := t0.Add(f.life.FleetTargets/2 + time.Hour)
	d, err := repo.CheckDue(ctx, f.st, deviceapi.RepoFleet, at, f.life)
	if err != nil {
		t.Fatal(err)
	}
	// Init signed targets with the default week; with the shorter lifetime
	// configured now only the timestamp is due.
	if d != (repo.Due{Timestamp: true}) {
		t.Fatalf("due %+v, want only the timestamp", d)
	}
	var changed bool
	resign := func(at time.Time) {
		t.Helper()
		if err := f.update(t, func(tx store.Tx) error {
			var err error
			changed, err = repo.ResignDue(ctx, tx, deviceapi.RepoFleet, at, f.life, repo.OnlineKeys{Targets: f.targets, Snapshot: f.snapshot, Timestamp: f.timestamp})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Re-sign targets with the short lifetime, then let only it fall due.
	if err := f.update(t, func(tx store.Tx) error {
		if _, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoFleet, repo.RoleTargets, t0, f.life, func(*metadata.TargetsType) error { return nil }, f.targets); err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoFleet, t0.Add(f.life.FleetTargets/2), f.life, f.snapshot, f.timestamp)
	}); err != nil {
		t.Fatal(err)
	}
	if d, _ := repo.CheckDue(ctx, f.st, deviceapi.RepoFleet, at, f.life); d != (repo.Due{Targets: true}) {
		t.Fatalf("due %+v, want only the fleet targets", d)
	}
	resign(at)
	if !changed {
		t.Fatal("ResignDue did nothing with the fleet targets due")
	}
	if v := f.version(t, deviceapi.RepoFleet, repo.RoleTargets); v != 3 {
		t.Errorf("fleet targets version %d, want 3", v)
	}
	clientVerify(t, f.st, deviceapi.RepoFleet, at)
}

func TestPublished(t *testing.T) {
	f := newFixture(t, deviceapi.RepoRelease)
	ctx := t.Context()
	const base = "/repo/release"
	productKey := genKey(t)
	f.addProduct(t, deviceapi.RepoRelease, "thermostat", productKey) // targets v2, product v1, snapshot v2
	payload := []byte("firmware 1.1.0")
	sum := sha256.Sum256(payload)
	sha := hex.EncodeToString(sum[:])
	old := []byte("firmware 1.0.0")
	oldSum := sha256.Sum256(old)
	// Product role v2..v6; 1.0.0 is in v2..v5 and removed in v6.
	steps := []func(*metadata.TargetsType) error{
		addTarget("thermostat/1.0.0", old),
		func(*metadata.TargetsType) error { return nil },
		func(*metadata.TargetsType) error { return nil },
		addTarget("thermostat/1.1.0", payload),
		func(tt *metadata.TargetsType) error { delete(tt.Targets, "thermostat/1.0.0"); return nil },
	}
	for _, step := range steps {
		if err := f.update(t, func(tx store.Tx) error {
			if _, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.ProductRole("thermostat"), t0, f.life, step, productKey); err != nil {
				return err
			}
			return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, t0, f.life, f.snapshot, f.timestamp)
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Root v2, same keys.
	if err := f.update(t, func(tx store.Tx) error {
		_, err := repo.UpdateRoot(ctx, tx, deviceapi.RepoRelease, t0, f.life, func(*metadata.RootType) error { return nil }, f.root...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	snapV := f.version(t, deviceapi.RepoRelease, repo.RoleSnapshot) // 7
	if snapV != 7 {
		t.Fatalf("snapshot version %d, want 7", snapV)
	}

	files, err := repo.Published(ctx, f.st, deviceapi.RepoRelease, base)
	if err != nil {
		t.Fatal(err)
	}
	bodyOf := func(role string, v int64) []byte {
		all, _ := f.st.AllMetadata(ctx, deviceapi.RepoRelease)
		for _, m := range all {
			if m.Role == role && m.Version == v {
				return m.Body
			}
		}
		t.Fatalf("no %s v%d", role, v)
		return nil
	}
	want := map[string][]byte{
		base + "/metadata/1.root.json":                bodyOf(repo.RoleRoot, 1),
		base + "/metadata/2.root.json":                bodyOf(repo.RoleRoot, 2),
		base + "/metadata/root.json":                  bodyOf(repo.RoleRoot, 2),
		base + "/metadata/timestamp.json":             f.latest(t, deviceapi.RepoRelease, repo.RoleTimestamp).Body,
		base + "/metadata/1.targets.json":             bodyOf(repo.RoleTargets, 1),
		base + "/metadata/2.targets.json":             bodyOf(repo.RoleTargets, 2),
		base + "/metadata/4.products/thermostat.json": bodyOf(repo.ProductRole("thermostat"), 4),
		base + "/metadata/5.products/thermostat.json": bodyOf(repo.ProductRole("thermostat"), 5),
		base + "/metadata/6.products/thermostat.json": bodyOf(repo.ProductRole("thermostat"), 6),
		base + "/metadata/5.snapshot.json":            bodyOf(repo.RoleSnapshot, 5),
		base + "/metadata/6.snapshot.json":            bodyOf(repo.RoleSnapshot, 6),
		base + "/metadata/7.snapshot.json":            bodyOf(repo.RoleSnapshot, 7),
	}
	var got, wantPaths []string
	for p := range files.Metadata {
		got = append(got, p)
	}
	for p := range want {
		wantPaths = append(wantPaths, p)
	}
	sort.Strings(got)
	sort.Strings(wantPaths)
	if strings.Join(got, "\n") != strings.Join(wantPaths, "\n") {
		t.Errorf("published metadata paths:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantPaths, "\n"))
	}
	for p, b := range want {
		if g, ok := files.Metadata[p]; ok && !bytes.Equal(g, b) {
			t.Errorf("%s does not hold the expected document", p)
		}
	}

	wantTargets := map[string]repo.FileTarget{
		base + "/targets/thermostat/" + sha + ".1.1.0": {Target: "thermostat/1.1.0", SHA256: sha, Length: int64(len(payload))},
	}
	if len(files.Targets) != len(wantTargets) {
		t.Errorf("published targets %v, want %v (1.0.0 left the latest product role)", files.Targets, wantTargets)
	}
	for p, w := range wantTargets {
		if g, ok := files.Targets[p]; !ok || g != w {
			t.Errorf("target %s = %+v (present %v), want %+v", p, g, ok, w)
		}
	}
	if _, ok := files.Targets[base+"/targets/thermostat/"+hex.EncodeToString(oldSum[:])+".1.0.0"]; ok {
		t.Error("a target removed from the latest product role is still published")
	}

	// What is published is what a client needs: timestamp → snapshot →
	// targets → product role, all at the paths it derives.
	tsDoc, _ := metadata.Timestamp().FromBytes(files.Metadata[base+"/metadata/timestamp.json"])
	sv := tsDoc.Signed.Meta["snapshot.json"].Version
	snapBytes, ok := files.Metadata[deviceapi.MetadataPath(base, repo.RoleSnapshot, sv)]
	if !ok {
		t.Fatalf("snapshot v%d named by the timestamp is not published", sv)
	}
	snap, _ := metadata.Snapshot().FromBytes(snapBytes)
	for role, mf := range snap.Signed.Meta {
		role = strings.TrimSuffix(role, ".json")
		if _, ok := files.Metadata[deviceapi.MetadataPath(base, role, mf.Version)]; !ok {
			t.Errorf("%s v%d named by the snapshot is not published", role, mf.Version)
		}
	}
}

func TestPublishedEmptyRepository(t *testing.T) {
	st := openStore(t)
	files, err := repo.Published(t.Context(), st, deviceapi.RepoFleet, "/repo/fleet")
	if err != nil {
		t.Fatal(err)
	}
	if len(files.Metadata) != 0 || len(files.Targets) != 0 {
		t.Errorf("uninitialised repository publishes %v %v", files.Metadata, files.Targets)
	}
}

func TestLifetimesValidate(t *testing.T) {
	if err := repo.DefaultLifetimes().Validate(); err != nil {
		t.Errorf("default lifetimes: %v", err)
	}
	l := repo.DefaultLifetimes()
	l.Timestamp = 0
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "timestamp") {
		t.Errorf("zero timestamp lifetime: %v, want an error naming timestamp", err)
	}
	l = repo.DefaultLifetimes()
	l.FleetTargets = -time.Hour
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "fleet_targets") {
		t.Errorf("negative fleet targets lifetime: %v, want an error naming fleet_targets", err)
	}
}

// TestPutRoot: a root signed outside UpdateRoot is stored only with the
// threshold of the previous and of its own root keys, as the next version.
func TestPutRoot(t *testing.T) {
	f := newFixture(t, deviceapi.RepoRelease)
	ctx := t.Context()
	k1, k2, k3 := f.root[0], f.root[1], f.root[2]
	k4 := genKey(t)
	var prev, next *metadata.Metadata[metadata.RootType]
	if err := f.update(t, func(tx store.Tx) error {
		var err error
		prev, next, err = repo.NextRoot(ctx, tx, deviceapi.RepoRelease, t0, f.life, func(r *metadata.RootType) error {
			if err := r.RevokeKey(k1.KeyID(), repo.RoleRoot); err != nil {
				return err
			}
			return r.AddKey(k4.TUFKey(), repo.RoleRoot)
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if prev.Signed.Version != 1 || next.Signed.Version != 2 || len(next.Signatures) != 0 {
		t.Fatalf("NextRoot: v%d -> v%d with %d signatures, want v1 -> v2 unsigned", prev.Signed.Version, next.Signed.Version, len(next.Signatures))
	}
	put := func(signers ...repo.Signer) error {
		next.ClearSignatures()
		for _, s := range signers {
			if _, err := next.Sign(s); err != nil {
				t.Fatal(err)
			}
		}
		return f.update(t, func(tx store.Tx) error { return repo.PutRoot(ctx, tx, deviceapi.RepoRelease, next) })
	}
	if err := put(k2); err == nil || !strings.Contains(err.Error(), "previous root") {
		t.Errorf("PutRoot signed by 1 of 2: %v", err)
	}
	if err := put(k1, k4); err == nil || !strings.Contains(err.Error(), "previous root") {
		t.Errorf("PutRoot signed by 1 old key and the new one: %v", err)
	}
	if err := put(k1, k2); err == nil || !strings.Contains(err.Error(), "itself") {
		t.Errorf("PutRoot signed by the revoked key and one kept: %v", err)
	}
	if v := f.version(t, deviceapi.RepoRelease, repo.RoleRoot); v != 1 {
		t.Fatalf("root v%d after refused PutRoot", v)
	}
	if err := put(k2, k3); err != nil {
		t.Fatalf("PutRoot signed by the two kept keys: %v", err)
	}
	if err := put(k2, k3); err == nil || !strings.Contains(err.Error(), "want 3") {
		t.Errorf("the same root v2 stored twice: %v", err)
	}
}
