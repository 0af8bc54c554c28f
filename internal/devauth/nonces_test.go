package devauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func nonceAt(key, value string, created time.Time) Nonce {
	return Nonce{KeyID: key, Value: value, Method: http.MethodGet, Created: created, Until: created.Add(DefaultSkew)}
}

func TestMemoryNoncesExpiry(t *testing.T) {
	m := NewMemoryNonces(0)
	ctx := t.Context()
	n := nonceAt("k", "nonce-0123456789abc", t0)
	if err := m.Use(ctx, n, t0); err != nil {
		t.Fatal(err)
	}
	if err := m.Use(ctx, n, t0.Add(DefaultSkew)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("second use at Until = %v, want ErrReplayed", err)
	}
	if err := m.Use(ctx, nonceAt("k2", n.Value, t0), t0); err != nil {
		t.Errorf("same nonce, other key: %v", err)
	}
	// Past Until the nonce may be forgotten (Verify refuses such a request
	// as too old before asking); its bucket is dropped at most bucketWidth
	// later.
	if err := m.Use(ctx, n, t0.Add(DefaultSkew+time.Duration(bucketWidth)+time.Nanosecond)); err != nil {
		t.Errorf("use past Until and its bucket: %v", err)
	}
	// Buckets past their end are dropped: 10,000 nonces living 1 s each,
	// one every 100 ms, leave at most (1 s + bucketWidth) / 100 ms held.
	m = NewMemoryNonces(0)
	for i := range 10000 {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		n := Nonce{KeyID: "k", Value: fmt.Sprintf("sweep-%016d", i), Created: at, Until: at.Add(time.Second)}
		if err := m.Use(ctx, n, at); err != nil {
			t.Fatal(err)
		}
	}
	if got, most := m.Len(), int((time.Second+time.Duration(bucketWidth))/(100*time.Millisecond))+1; got == 0 || got > most {
		t.Errorf("%d nonces held after 10,000 short-lived ones, want 1 to %d", got, most)
	}
}

// A full store refuses rather than forgetting a live nonce, and takes
// nonces again once the old ones expire.
func TestMemoryNoncesFull(t *testing.T) {
	m := NewMemoryNonces(nonceShards) // one a shard
	ctx := t.Context()
	full := 0
	for i := range 200 {
		err := m.Use(ctx, nonceAt("k", fmt.Sprintf("nonce-%016d", i), t0), t0)
		switch {
		case errors.Is(err, ErrNoncesFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	if full == 0 || m.Len() > nonceShards {
		t.Fatalf("%d refusals, %d held; want refusals and at most %d held", full, m.Len(), nonceShards)
	}
	later := t0.Add(DefaultSkew + time.Second)
	for i := range 200 {
		if err := m.Use(ctx, nonceAt("k", fmt.Sprintf("later-%016d", i), later), later); err != nil && !errors.Is(err, ErrNoncesFull) {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got == 0 || got > nonceShards {
		t.Errorf("after expiry %d held", got)
	}
	// The replays of what is held are still refused.
	refusedAll := true
	for i := range 200 {
		err := m.Use(ctx, nonceAt("k", fmt.Sprintf("later-%016d", i), later), later)
		if err == nil {
			refusedAll = false
		}
	}
	if !refusedAll {
		t.Error("a full store accepted a nonce again")
	}
}

// A replay with another Until (another created) is refused too: every
// live bucket is looked at.
func TestMemoryNoncesOtherUntil(t *testing.T) {
	m := NewMemoryNonces(0)
	n := nonceAt("k", "nonce-0123456789abc", t0)
	if err := m.Use(t.Context(), n, t0); err != nil {
		t.Fatal(err)
	}
	n2 := nonceAt("k", n.Value, t0.Add(2*time.Minute))
	if err := m.Use(t.Context(), n2, t0.Add(time.Minute)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("same nonce, later created: %v, want ErrReplayed", err)
	}
}

// TestMemoryNoncesBytes measures the memory a held nonce costs (reported,
// and bounded so that DefaultNonceCapacity's statement holds).
func TestMemoryNoncesBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the memory measurement (1M nonces)")
	}
	const count = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMemoryNonces(count + count/8) // room for the shards' imbalance
	// 10 minutes of requests at count/600 s: every bucket of a full window.
	for i := range count {
		at := t0.Add(time.Duration(i) * (600 * time.Second / count))
		n := Nonce{KeyID: "k", Value: strconv.Itoa(i), Created: at, Until: at.Add(2 * DefaultSkew)}
		if err := m.Use(t.Context(), n, at); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if m.Len() != count {
		t.Fatalf("%d held, want %d", m.Len(), count)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / count
	t.Logf("%.1f bytes a nonce (%d nonces, %d buckets a shard)", per, count, len(m.shards[0].buckets))
	if per > 32 {
		t.Errorf("%.1f bytes a nonce, want at most 32 (DefaultNonceCapacity's doc says about 23)", per)
	}
	runtime.KeepAlive(m)
}

// Of concurrent uses of one nonce, exactly one succeeds.
func TestMemoryNoncesConcurrent(t *testing.T) {
	m := NewMemoryNonces(0)
	for round := range 50 {
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if m.Use(context.Background(), nonceAt("k", fmt.Sprintf("race-%016d", round), t0), t0) == nil {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("round %d: %d of 8 concurrent uses succeeded", round, ok.Load())
		}
	}
}

type recordingStore struct{ got []string }

func (r *recordingStore) Use(_ context.Context, n Nonce, _ time.Time) error {
	r.got = append(r.got, n.Method)
	return nil
}

func TestByMethod(t *testing.T) {
	safe, unsafe := &recordingStore{}, &recordingStore{}
	b := ByMethod{Safe: safe, Unsafe: unsafe}
	for _, m := range []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"} {
		n := nonceAt("k", "n-0123456789abcdef", t0)
		n.Method = m
		b.Use(t.Context(), n, t0)
	}
	if fmt.Sprint(safe.got) != "[GET HEAD OPTIONS]" || fmt.Sprint(unsafe.got) != "[POST PUT PATCH DELETE]" {
		t.Errorf("safe %v, unsafe %v", safe.got, unsafe.got)
	}

	// Wired into a Verifier, a shared store's own replay error is a refusal.
	f := newFixture()
	f.v.Nonces = ByMethod{Safe: f.nonces, Unsafe: storeFunc(func(Nonce) error {
		return fmt.Errorf("shared nonce table: duplicate key: %w", ErrReplayed)
	})}
	if _, err := f.v.Verify(t.Context(), f.signed(t, f.dev, http.MethodGet, checkURL, nil)); err != nil {
		t.Fatalf("GET: %v", err)
	}
	_, err := f.v.Verify(t.Context(), f.signed(t, f.dev, http.MethodPost, checkURL, []byte("{}")))
	wantKind(t, err, ErrReplayed)
}

type storeFunc func(Nonce) error

func (fn storeFunc) Use(_ context.Context, n Nonce, _ time.Time) error { return fn(n) }
