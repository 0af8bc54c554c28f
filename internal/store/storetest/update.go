package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

var errBoom = errors.New("storetest: boom")

// writeEverything writes one of each kind of object, as a failed Update
// would before failing.
func writeEverything(ctx context.Context, tx store.Tx) error {
	return errors.Join(
		tx.PutProduct(ctx, product("q")),
		tx.AddRelease(ctx, release("p", "2.0", at(time.Hour))),
		tx.PutRollout(ctx, store.Rollout{Product: "p", Version: "1.0", Percent: 50, Start: at(0), Updated: at(0)}),
		tx.PutMetadata(ctx, metadata("release", "root", 1)),
		tx.AddAudit(ctx, store.AuditEntry{Time: at(0), Action: "test.write", Object: "q"}),
	)
}

// wantNothingWritten fails if anything writeEverything writes is visible.
func wantNothingWritten(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Product(ctx, "q")
	wantNotFound(t, "product of a failed Update", err)
	_, err = s.Release(ctx, "p", "2.0")
	wantNotFound(t, "release of a failed Update", err)
	_, err = s.Rollout(ctx, "p")
	wantNotFound(t, "rollout of a failed Update", err)
	if ms, err := s.AllMetadata(ctx, "release"); err != nil || len(ms) != 0 {
		t.Errorf("metadata after a failed Update: %d documents, %v; want none", len(ms), err)
	}
	if es, err := s.Audit(ctx); err != nil || len(es) != 0 {
		t.Errorf("audit after a failed Update: %+v, %v; want none", es, err)
	}
}

func testRollbackOnError(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p", "1.0")
	gen := generation(t, s)
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := writeEverything(ctx, tx); err != nil {
			t.Fatalf("writes before the failure: %v", err)
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	wantNothingWritten(t, s)
	if g := generation(t, s); g != gen {
		t.Errorf("generation after failed Update = %d, want %d", g, gen)
	}
}

func testRollbackOnPanic(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s, "p", "1.0")
	gen := generation(t, s)
	func() {
		defer func() {
			if v := recover(); v != errBoom {
				t.Errorf("recovered %v, want the panic of fn to continue", v)
			}
		}()
		_ = s.Update(ctx, func(tx store.Tx) error {
			if err := writeEverything(ctx, tx); err != nil {
				t.Errorf("writes before the panic: %v", err)
			}
			panic(errBoom)
		})
	}()
	wantNothingWritten(t, s)
	if g := generation(t, s); g != gen {
		t.Errorf("generation after panicking Update = %d, want %d", g, gen)
	}

	// The store is still writable: the panic released the transaction.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutProduct(ctx, product("after")) }); err != nil {
		t.Fatalf("Update after a panic: %v", err)
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	seed(t, s, "p", "1.0")
	gen := generation(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx store.Tx) error { return writeEverything(ctx, tx) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a cancelled context: got %v, want context.Canceled", err)
	}
	wantNothingWritten(t, s)

	// Cancelled after the writes, before commit.
	ctx, cancel = context.WithCancel(context.Background())
	err = s.Update(ctx, func(tx store.Tx) error {
		err := writeEverything(ctx, tx)
		cancel()
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update cancelled before commit: got %v, want context.Canceled", err)
	}
	wantNothingWritten(t, s)
	if g := generation(t, s); g != gen {
		t.Errorf("generation after cancelled Updates = %d, want %d", g, gen)
	}
}

func testGeneration(t *testing.T, s store.Store) {
	ctx := context.Background()
	prev := generation(t, s)
	steps := []func(tx store.Tx) error{
		func(tx store.Tx) error { return nil }, // even an Update that writes nothing
		func(tx store.Tx) error { return tx.PutProduct(ctx, product("p")) },
		func(tx store.Tx) error { return tx.PutMetadata(ctx, metadata("fleet", "root", 1)) },
	}
	for i, fn := range steps {
		update(t, s, fn)
		g := generation(t, s)
		if g <= prev {
			t.Errorf("after committed Update %d, generation %d did not increase from %d", i, g, prev)
		}
		prev = g
	}
	if err := s.AddReport(ctx, store.ReportCount{Product: "p", Version: "1", Outcome: "ok", Count: 1, Day: at(0)}); err != nil {
		t.Fatalf("AddReport: %v", err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Fatalf("failing Update returned %v", err)
	}
	if g := generation(t, s); g < prev {
		t.Errorf("generation went back from %d to %d", prev, g)
	}
}

// testConcurrentUpdates runs read-modify-write Updates from several
// goroutines: every one must land and none may lose another's write, as
// the repo package's "read latest version, write the next" relies on.
func testConcurrentUpdates(t *testing.T, s store.Store) {
	const workers, each = 8, 10
	ctx := context.Background()
	seed(t, s, "c", "1.0")
	update(t, s, func(tx store.Tx) error {
		return tx.PutRollout(ctx, store.Rollout{Product: "c", Version: "1.0", Start: at(0), Updated: at(0)})
	})
	gen := generation(t, s)

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(ctx, func(tx store.Tx) error {
					r, err := tx.Rollout(ctx, "c")
					if err != nil {
						return err
					}
					r.Percent++
					if err := tx.PutRollout(ctx, r); err != nil {
						return err
					}
					return tx.PutProduct(ctx, product(fmt.Sprintf("w%d-%d", w, i)))
				})
				if err != nil {
					t.Errorf("worker %d update %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	ps, err := s.Products(ctx)
	if err != nil || len(ps) != 1+workers*each {
		t.Errorf("Products after concurrent Updates: %d, %v; want %d", len(ps), err, 1+workers*each)
	}
	r, err := s.Rollout(ctx, "c")
	if err != nil || r.Percent != workers*each {
		t.Errorf("counter after concurrent read-modify-write Updates = %d, %v; want %d (lost updates)", r.Percent, err, workers*each)
	}
	if g := generation(t, s); g <= gen {
		t.Errorf("generation %d did not increase from %d", g, gen)
	}
}

func testReports(t *testing.T, s store.Store) {
	ctx := context.Background()
	day1 := time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	ok := store.ReportCount{Product: "p", Version: "1.0", Outcome: "success"}
	fail := store.ReportCount{Product: "p", Version: "1.0", Outcome: "failure", ErrorClass: "hash"}
	adds := []struct {
		c     store.ReportCount
		n     int64
		when  time.Time
		label string
	}{
		{ok, 1, day1.Add(time.Hour), "start of day"},
		{ok, 2, day2.Add(-time.Nanosecond), "last nanosecond of day"},
		// 03:00 on day 2 in UTC+05:30 is 21:30 on day 1 in UTC.
		{ok, 3, time.Date(2025, 3, 5, 3, 0, 0, 0, zone), "non-UTC zone"},
		{ok, 4, day2, "next day"},
		{fail, 5, day1.Add(2 * time.Hour), "other outcome"},
	}
	for _, a := range adds {
		c := a.c
		c.Count, c.Day = a.n, a.when
		if err := s.AddReport(ctx, c); err != nil {
			t.Fatalf("AddReport (%s): %v", a.label, err)
		}
	}
	got, err := s.ReportCounts(ctx)
	if err != nil {
		t.Fatalf("ReportCounts: %v", err)
	}
	want := []store.ReportCount{
		{Product: "p", Version: "1.0", Outcome: "success", Count: 6, Day: day1},
		{Product: "p", Version: "1.0", Outcome: "success", Count: 4, Day: day2},
		{Product: "p", Version: "1.0", Outcome: "failure", ErrorClass: "hash", Count: 5, Day: day1},
	}
	sortCounts(got)
	sortCounts(want)
	if len(got) != len(want) {
		t.Fatalf("ReportCounts = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Product != w.Product || g.Version != w.Version || g.Outcome != w.Outcome ||
			g.ErrorClass != w.ErrorClass || g.Count != w.Count || !g.Day.Equal(w.Day) {
			t.Errorf("ReportCounts[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func sortCounts(cs []store.ReportCount) {
	slices.SortFunc(cs, func(a, b store.ReportCount) int {
		return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.Product, b.Product), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.ErrorClass, b.ErrorClass))
	})
}

func testConcurrentReports(t *testing.T, s store.Store) {
	const workers, each = 8, 25
	ctx := context.Background()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				c := store.ReportCount{Product: "p", Version: "1.0", Outcome: "success", Count: 1, Day: at(0)}
				if err := s.AddReport(ctx, c); err != nil {
					t.Errorf("AddReport: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := s.ReportCounts(ctx)
	if err != nil || len(got) != 1 || got[0].Count != workers*each {
		t.Errorf("ReportCounts after concurrent adds = %+v, %v; want one counter of %d", got, err, workers*each)
	}
}
