package storetest

import (
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// testLease: a free lease is taken, its holder renews it, another holder
// is refused until it expires and then takes it over, a release frees it
// at once, and none of it changes the generation.
func testLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const ttl = 10 * time.Second
	acquire := func(holder string, now time.Time, want bool) {
		t.Helper()
		got, err := s.AcquireLease(ctx, "resign", holder, ttl, now)
		if err != nil {
			t.Fatalf("AcquireLease(%s, %v): %v", holder, now.Sub(t0), err)
		}
		if got != want {
			t.Fatalf("AcquireLease(%s, t0+%v) = %v, want %v", holder, now.Sub(t0), got, want)
		}
	}
	gen0, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acquire("a", t0, true)                      // free: taken
	acquire("b", t0.Add(time.Second), false)    // held by a
	acquire("a", t0.Add(8*time.Second), true)   // renewed until t0+18s
	acquire("b", t0.Add(12*time.Second), false) // would have expired without the renewal
	acquire("b", t0.Add(17*time.Second), false) // still a's
	acquire("b", t0.Add(18*time.Second), true)  // expired: taken over
	acquire("a", t0.Add(19*time.Second), false) // the old holder lost it
	if held, err := s.AcquireLease(ctx, "other", "c", ttl, t0); err != nil || !held {
		t.Fatalf("AcquireLease(other, c) = %v, %v; want another lease name free", held, err)
	}
	if err := s.ReleaseLease(ctx, "resign", "a"); err != nil { // not a's: nothing happens
		t.Fatal(err)
	}
	acquire("a", t0.Add(20*time.Second), false)
	if err := s.ReleaseLease(ctx, "resign", "b"); err != nil {
		t.Fatal(err)
	}
	acquire("a", t0.Add(20*time.Second), true) // released: free at once
	if gen, err := s.Generation(ctx); err != nil || gen != gen0 {
		t.Errorf("generation %d (%v) after leases, want %d unchanged", gen, err, gen0)
	}
	for _, bad := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", ttl}, {"resign", "", ttl}, {"resign", "a", 0}} {
		if _, err := s.AcquireLease(ctx, bad.name, bad.holder, bad.ttl, t0); err == nil {
			t.Errorf("AcquireLease(%q, %q, %v): no error", bad.name, bad.holder, bad.ttl)
		}
	}
}

// testConcurrentLease: of several holders racing for a free lease exactly
// one gets it.
func testConcurrentLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const n = 8
	got := make(chan bool, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			held, err := s.AcquireLease(ctx, "resign", string(rune('a'+i)), time.Minute, now)
			got <- held
			errs <- err
		}()
	}
	holders := 0
	for range n {
		if <-got {
			holders++
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if holders != 1 {
		t.Errorf("%d holders got the lease, want 1", holders)
	}
}
