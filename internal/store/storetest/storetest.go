// Package storetest is the behaviour suite every store.Store implementation
// passes. An implementation's test calls Run with a function that opens a
// new, empty store.
//
// Beyond the invariants in package store's doc, the suite requires:
//   - times round-trip to the same instant (time.Equal), including the zero
//     time; bytes and string slices round-trip unchanged;
//   - referential integrity: AddRelease of an unknown product and PutRollout
//     of an unknown release fail with store.ErrNotFound;
//   - Store reads during an Update do not block and see the state before it;
//   - Updates are serialisable: concurrent read-modify-write Updates lose
//     nothing (package repo reads the latest version and writes the next);
//   - a failed Update leaves the generation unchanged;
//   - Update with a cancelled context fails with the context's error;
//   - audit entries commit and roll back with their Update and come back
//     in sequence order; they form a hash chain (store.AuditHash) with
//     gapless sequence numbers, even under concurrent Updates, and
//     store.VerifyAudit finds it intact after appends and purges;
//   - audit times are kept to the microsecond;
//   - tokens: names unique among tokens not revoked, revocation once,
//     last use kept as a day that only moves forward;
//   - Purge deletes exactly the rows older than its bound (for the audit
//     log, the chain's prefix up to the last such entry, moving the anchor) (a report counter
//     once its day began before it), leaves the generation alone and
//     refuses tables without age-based retention;
//   - a lease is held by one holder at a time, renewed by it, taken over
//     once expired, freed by a release, and never changes the generation;
//   - Describe lists every table with a purpose, and every column with a
//     type and a purpose;
//   - a rollout completion is written once per release (the first wins),
//     attestations are withdrawn, never deleted, and a market declaration
//     is replaced whole; each refuses an unknown product or release.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// Run runs the suite. open is called once per subtest and must return a new,
// empty store; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Empty", testEmpty},
		{"Product", testProduct},
		{"Release", testRelease},
		{"ReleaseConflict", testReleaseConflict},
		{"ReleaseOrder", testReleaseOrder},
		{"Rollout", testRollout},
		{"Metadata", testMetadata},
		{"MetadataConflict", testMetadataConflict},
		{"ReferentialIntegrity", testReferentialIntegrity},
		{"TxSeesOwnWrites", testTxSeesOwnWrites},
		{"RollbackOnError", testRollbackOnError},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"CancelledContext", testCancelledContext},
		{"Generation", testGeneration},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Reports", testReports},
		{"ConcurrentReports", testConcurrentReports},
		{"Audit", testAudit},
		{"PurgeReportCounts", testPurgeReportCounts},
		{"PurgeAudit", testPurgeAudit},
		{"AuditChain", testAuditChain},
		{"AuditChainRollback", testAuditChainRollback},
		{"ConcurrentAudit", testConcurrentAudit},
		{"AuditQuery", testAuditQuery},
		{"Tokens", testTokens},
		{"TouchToken", testTouchToken},
		{"PurgeTokens", testPurgeTokens},
		{"PurgeOtherTables", testPurgeOtherTables},
		{"Lease", testLease},
		{"ConcurrentLease", testConcurrentLease},
		{"Describe", testDescribe},
		{"RolloutCompletions", testRolloutCompletions},
		{"Attestations", testAttestations},
		{"Market", testMarket},
		{"Settings", testSettings},
		{"DevicePolicy", testDevicePolicy},
		{"Devices", testDevices},
		{"EnrollmentTokens", testEnrollmentTokens},
		{"PreauthorizedKeys", testPreauthorizedKeys},
		{"DeviceEventsAndDelete", testDeviceEventsAndDelete},
		{"UpdateFleet", testUpdateFleet},
		{"DeviceNonces", testDeviceNonces},
		{"ManagedRollouts", testManagedRollouts},
		{"DeviceLabelsAndOutcomes", testDeviceLabelsAndOutcomes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// zone is a non-UTC location, so round-trips must keep the instant, not the
// wall clock.
var zone = time.FixedZone("UTC+05:30", 5*3600+1800)

// at returns a time with nanoseconds in zone, d after a fixed base.
func at(d time.Duration) time.Time {
	return time.Date(2025, 3, 4, 5, 6, 7, 123456789, zone).Add(d)
}

func product(name string) store.Product {
	return store.Product{Name: name, Model: "model-" + name, Hardware: []string{"rev-a", "rev-b"}, Created: at(0)}
}

func release(p, v string, created time.Time) store.Release {
	return store.Release{
		Product:         p,
		Version:         v,
		SecurityVersion: 1 << 40,
		Kind:            "full",
		Target:          p + "/" + v,
		Length:          1 << 33,
		SHA256:          "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Manifest:        []byte(`{"product":"` + p + `","version":"` + v + "\"}\x00\xff"),
		Created:         created,
	}
}

func metadata(repo, role string, version int64) store.Metadata {
	return store.Metadata{
		Repo:    repo,
		Role:    role,
		Version: version,
		Body:    []byte(fmt.Sprintf("{\"signed\":{\"_type\":%q,\"version\":%d}}\x00\xfe", role, version)),
		Expires: at(time.Duration(version) * time.Hour),
	}
}

// update runs fn in s.Update and fails the test on error.
func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// seed stores product p with releases of the given versions, one hour apart.
func seed(t *testing.T, s store.Store, p string, versions ...string) {
	t.Helper()
	ctx := context.Background()
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutProduct(ctx, product(p)); err != nil {
			return err
		}
		for i, v := range versions {
			if err := tx.AddRelease(ctx, release(p, v, at(time.Duration(i)*time.Hour))); err != nil {
				return err
			}
		}
		return nil
	})
}

func generation(t *testing.T, s store.Store) int64 {
	t.Helper()
	g, err := s.Generation(context.Background())
	if err != nil {
		t.Fatalf("Generation: %v", err)
	}
	return g
}

func equalProduct(a, b store.Product) bool {
	return a.Name == b.Name && a.Model == b.Model && slices.Equal(a.Hardware, b.Hardware) && a.Created.Equal(b.Created)
}

func equalRelease(a, b store.Release) bool {
	return a.Product == b.Product && a.Version == b.Version && a.SecurityVersion == b.SecurityVersion &&
		a.Kind == b.Kind && a.Target == b.Target && a.Length == b.Length && a.SHA256 == b.SHA256 &&
		bytes.Equal(a.Manifest, b.Manifest) && a.Created.Equal(b.Created)
}

func equalRollout(a, b store.Rollout) bool {
	return a.Product == b.Product && a.Version == b.Version && a.Percent == b.Percent &&
		a.Halted == b.Halted && a.Start.Equal(b.Start) && a.Updated.Equal(b.Updated)
}

func equalMetadata(a, b store.Metadata) bool {
	return a.Repo == b.Repo && a.Role == b.Role && a.Version == b.Version &&
		bytes.Equal(a.Body, b.Body) && a.Expires.Equal(b.Expires)
}

// wantNotFound fails unless err wraps store.ErrNotFound.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: got %v, want an error wrapping store.ErrNotFound", what, err)
	}
}

func testEmpty(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.Product(ctx, "p")
	wantNotFound(t, "Product", err)
	_, err = s.Release(ctx, "p", "1.0")
	wantNotFound(t, "Release", err)
	_, err = s.Rollout(ctx, "p")
	wantNotFound(t, "Rollout", err)
	_, err = s.LatestMetadata(ctx, "release", "root")
	wantNotFound(t, "LatestMetadata", err)

	lists := map[string]func() (int, error){
		"Products": func() (int, error) { v, err := s.Products(ctx); return len(v), err },
		"Releases": func() (int, error) { v, err := s.Releases(ctx, ""); return len(v), err },
		"Rollouts": func() (int, error) { v, err := s.Rollouts(ctx); return len(v), err },
		"AllMetadata": func() (int, error) {
			v, err := s.AllMetadata(ctx, "release")
			return len(v), err
		},
		"ReportCounts": func() (int, error) { v, err := s.ReportCounts(ctx); return len(v), err },
		"Audit":        func() (int, error) { v, err := s.Audit(ctx); return len(v), err },
	}
	for name, list := range lists {
		if n, err := list(); err != nil || n != 0 {
			t.Errorf("%s on empty store: %d items, err %v; want 0, nil", name, n, err)
		}
	}
	if _, err := s.Generation(ctx); err != nil {
		t.Errorf("Generation on empty store: %v", err)
	}
}

func testProduct(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := product("a"), product("b")
	b.Hardware = nil
	b.Created = time.Time{}
	update(t, s, func(tx store.Tx) error {
		return errors.Join(tx.PutProduct(ctx, b), tx.PutProduct(ctx, a))
	})
	got, err := s.Product(ctx, "a")
	if err != nil || !equalProduct(got, a) {
		t.Fatalf("Product(a) = %+v, %v; want %+v", got, err, a)
	}
	got, err = s.Product(ctx, "b")
	if err != nil || !equalProduct(got, b) || !got.Created.IsZero() {
		t.Fatalf("Product(b) = %+v, %v; want %+v with zero Created", got, err, b)
	}

	// Put replaces every field of an existing product.
	a.Model = "model-a2"
	a.Hardware = []string{"rev-c"}
	a.Created = at(time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.PutProduct(ctx, a) })
	all, err := s.Products(ctx)
	if err != nil {
		t.Fatalf("Products: %v", err)
	}
	if len(all) != 2 || !equalProduct(all[0], a) || !equalProduct(all[1], b) {
		t.Fatalf("Products = %+v; want [%+v %+v]", all, a, b)
	}
}

func testRelease(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p")
	r := release("p", "1.2.3", at(0))
	update(t, s, func(tx store.Tx) error { return tx.AddRelease(ctx, r) })
	got, err := s.Release(ctx, "p", "1.2.3")
	if err != nil || !equalRelease(got, r) {
		t.Fatalf("Release = %+v, %v; want %+v", got, err, r)
	}
	_, err = s.Release(ctx, "p", "9.9.9")
	wantNotFound(t, "Release of missing version", err)
	_, err = s.Release(ctx, "q", "1.2.3")
	wantNotFound(t, "Release of missing product", err)
}

func testReleaseConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p", "1.0")
	gen := generation(t, s)
	dup := release("p", "1.0", at(time.Hour))
	dup.SHA256 = "00"
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutProduct(ctx, product("other")); err != nil {
			return err
		}
		return tx.AddRelease(ctx, dup)
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AddRelease of existing version: got %v, want store.ErrConflict", err)
	}
	got, err := s.Release(ctx, "p", "1.0")
	if err != nil || !equalRelease(got, release("p", "1.0", at(0))) {
		t.Errorf("after conflict, Release = %+v, %v; want the original", got, err)
	}
	_, err = s.Product(ctx, "other")
	wantNotFound(t, "product put in the failed Update", err)
	if g := generation(t, s); g != gen {
		t.Errorf("generation after failed Update = %d, want %d", g, gen)
	}
}

func testReleaseOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "b")
	seed(t, s, "a")
	// Inserted out of order; "10" and "9" share a creation time, so version
	// (as text) breaks the tie. b/1 is created on a whole second and b/10
	// later in that second, to catch stored time formats that trim trailing
	// zeros and so do not sort as text in time order.
	whole := at(-123456789 * time.Nanosecond)
	rs := []store.Release{
		release("b", "3", at(2*time.Millisecond)),
		release("a", "2", at(time.Second)),
		release("b", "1", whole),
		release("b", "9", at(time.Millisecond)),
		release("b", "10", at(time.Millisecond)),
		release("a", "1", at(500*time.Millisecond)),
	}
	update(t, s, func(tx store.Tx) error {
		for _, r := range rs {
			if err := tx.AddRelease(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	want := []string{"a/1", "a/2", "b/1", "b/10", "b/9", "b/3"}
	check := func(product string, want []string) {
		t.Helper()
		got, err := s.Releases(ctx, product)
		if err != nil {
			t.Fatalf("Releases(%q): %v", product, err)
		}
		var names []string
		for _, r := range got {
			names = append(names, r.Product+"/"+r.Version)
		}
		if !slices.Equal(names, want) {
			t.Errorf("Releases(%q) = %v, want %v", product, names, want)
		}
	}
	check("", want)
	check("b", want[2:])
	check("missing", nil)
}

func testRollout(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "b", "1.0", "2.0")
	seed(t, s, "a", "1.0")
	ra := store.Rollout{Product: "a", Version: "1.0", Percent: 0, Start: at(0), Updated: at(time.Nanosecond)}
	rb := store.Rollout{Product: "b", Version: "1.0", Percent: 100, Halted: true, Start: at(time.Hour), Updated: at(2 * time.Hour)}
	update(t, s, func(tx store.Tx) error { return errors.Join(tx.PutRollout(ctx, rb), tx.PutRollout(ctx, ra)) })
	got, err := s.Rollout(ctx, "b")
	if err != nil || !equalRollout(got, rb) {
		t.Fatalf("Rollout(b) = %+v, %v; want %+v", got, err, rb)
	}

	// At most one rollout per product: putting again replaces it.
	rb = store.Rollout{Product: "b", Version: "2.0", Percent: 37, Start: at(3 * time.Hour), Updated: at(4 * time.Hour)}
	update(t, s, func(tx store.Tx) error { return tx.PutRollout(ctx, rb) })
	all, err := s.Rollouts(ctx)
	if err != nil {
		t.Fatalf("Rollouts: %v", err)
	}
	if len(all) != 2 || !equalRollout(all[0], ra) || !equalRollout(all[1], rb) {
		t.Fatalf("Rollouts = %+v; want [%+v %+v]", all, ra, rb)
	}
	_, err = s.Rollout(ctx, "c")
	wantNotFound(t, "Rollout of product without one", err)

	for _, pct := range []int{-1, 101} {
		bad := rb
		bad.Percent = pct
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutRollout(ctx, bad) }); err == nil {
			t.Errorf("PutRollout with percent %d: no error", pct)
		}
	}
	if got, err := s.Rollout(ctx, "b"); err != nil || !equalRollout(got, rb) {
		t.Errorf("after refused puts, Rollout(b) = %+v, %v; want %+v", got, err, rb)
	}
}

func testMetadata(t *testing.T, s store.Store) {
	ctx := context.Background()
	big := metadata("release", "targets", 4)
	big.Body = bytes.Repeat([]byte{0, 1, 2, 0xff}, 256<<10) // 1 MiB
	docs := []store.Metadata{
		metadata("release", "targets", 2),
		metadata("release", "root", 1),
		big,
		metadata("release", "targets", 10),
		metadata("release", "products/a", 1),
		metadata("fleet", "targets", 99),
		metadata("release", "targets", 3),
		metadata("release", "products/a", 20),
	}
	update(t, s, func(tx store.Tx) error {
		for _, m := range docs {
			if err := tx.PutMetadata(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})

	latest, err := s.LatestMetadata(ctx, "release", "targets")
	if err != nil || !equalMetadata(latest, docs[3]) {
		t.Errorf("LatestMetadata(release, targets) = v%d, %v; want v10", latest.Version, err)
	}
	latest, err = s.LatestMetadata(ctx, "fleet", "targets")
	if err != nil || !equalMetadata(latest, docs[5]) {
		t.Errorf("LatestMetadata(fleet, targets) = v%d, %v; want v99", latest.Version, err)
	}
	_, err = s.LatestMetadata(ctx, "fleet", "root")
	wantNotFound(t, "LatestMetadata of missing role", err)

	all, err := s.AllMetadata(ctx, "release")
	if err != nil {
		t.Fatalf("AllMetadata: %v", err)
	}
	want := []store.Metadata{docs[4], docs[7], docs[1], docs[0], docs[6], big, docs[3]}
	if len(all) != len(want) {
		t.Fatalf("AllMetadata returned %d documents, want %d", len(all), len(want))
	}
	for i := range want {
		if !equalMetadata(all[i], want[i]) {
			t.Errorf("AllMetadata[%d] = %s v%d (%d bytes), want %s v%d (%d bytes)",
				i, all[i].Role, all[i].Version, len(all[i].Body), want[i].Role, want[i].Version, len(want[i].Body))
		}
	}
}

func testMetadataConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := metadata("release", "timestamp", 5)
	update(t, s, func(tx store.Tx) error { return tx.PutMetadata(ctx, m) })

	// The same document again is accepted and changes nothing.
	same := m
	same.Body = bytes.Clone(m.Body)
	update(t, s, func(tx store.Tx) error { return tx.PutMetadata(ctx, same) })

	other := m
	other.Body = append(bytes.Clone(m.Body), ' ')
	err := s.Update(ctx, func(tx store.Tx) error { return tx.PutMetadata(ctx, other) })
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutMetadata with a different body: got %v, want store.ErrConflict", err)
	}
	all, err := s.AllMetadata(ctx, "release")
	if err != nil || len(all) != 1 || !equalMetadata(all[0], m) {
		t.Errorf("after conflict, AllMetadata = %d documents, %v; want the original only", len(all), err)
	}
}

func testReferentialIntegrity(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error { return tx.AddRelease(ctx, release("ghost", "1.0", at(0))) })
	wantNotFound(t, "AddRelease of unknown product", err)

	seed(t, s, "p", "1.0")
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutRollout(ctx, store.Rollout{Product: "p", Version: "2.0", Percent: 10, Start: at(0), Updated: at(0)})
	})
	wantNotFound(t, "PutRollout of unknown version", err)
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutRollout(ctx, store.Rollout{Product: "ghost", Version: "1.0", Percent: 10, Start: at(0), Updated: at(0)})
	})
	wantNotFound(t, "PutRollout of unknown product", err)
	if rs, err := s.Rollouts(ctx); err != nil || len(rs) != 0 {
		t.Errorf("Rollouts after refused puts = %+v, %v; want none", rs, err)
	}
}

func testTxSeesOwnWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p", "1.0")
	update(t, s, func(tx store.Tx) error {
		ro := store.Rollout{Product: "p", Version: "2.0", Percent: 5, Start: at(0), Updated: at(0)}
		m := metadata("fleet", "products/p", 1)
		if err := errors.Join(
			tx.PutProduct(ctx, product("q")),
			tx.AddRelease(ctx, release("p", "2.0", at(time.Hour))),
			tx.PutRollout(ctx, ro),
			tx.PutMetadata(ctx, m),
		); err != nil {
			return err
		}
		if _, err := tx.Product(ctx, "q"); err != nil {
			t.Errorf("tx.Product of own write: %v", err)
		}
		if ps, err := tx.Products(ctx); err != nil || len(ps) != 2 {
			t.Errorf("tx.Products = %d, %v; want 2", len(ps), err)
		}
		if _, err := tx.Release(ctx, "p", "2.0"); err != nil {
			t.Errorf("tx.Release of own write: %v", err)
		}
		if rs, err := tx.Releases(ctx, "p"); err != nil || len(rs) != 2 {
			t.Errorf("tx.Releases = %d, %v; want 2", len(rs), err)
		}
		if got, err := tx.Rollout(ctx, "p"); err != nil || !equalRollout(got, ro) {
			t.Errorf("tx.Rollout = %+v, %v; want %+v", got, err, ro)
		}
		if rs, err := tx.Rollouts(ctx); err != nil || len(rs) != 1 {
			t.Errorf("tx.Rollouts = %d, %v; want 1", len(rs), err)
		}
		if got, err := tx.LatestMetadata(ctx, "fleet", "products/p"); err != nil || !equalMetadata(got, m) {
			t.Errorf("tx.LatestMetadata = %+v, %v; want own write", got, err)
		}
		if ms, err := tx.AllMetadata(ctx, "fleet"); err != nil || len(ms) != 1 {
			t.Errorf("tx.AllMetadata = %d, %v; want 1", len(ms), err)
		}
		if _, err := tx.ReportCounts(ctx); err != nil {
			t.Errorf("tx.ReportCounts: %v", err)
		}

		// Readers outside the transaction neither wait for it nor see it
		// before commit. The timeout turns a reader that waits into a
		// failure instead of a hung test.
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := s.Product(rctx, "q"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Store.Product during Update: got %v, want store.ErrNotFound", err)
		}
		if rs, err := s.Releases(rctx, "p"); err != nil || len(rs) != 1 {
			t.Errorf("Store.Releases during Update = %d, %v; want 1", len(rs), err)
		}
		return nil
	})
	if _, err := s.Product(ctx, "q"); err != nil {
		t.Errorf("Product after commit: %v", err)
	}
}
