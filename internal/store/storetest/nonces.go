package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// testDeviceNonces: a nonce is taken once per key while it lives, by
// exactly one of concurrent callers, again once expired; other keys and
// nonces are independent; Purge removes the expired ones only; erasing a
// device removes its key's nonces; the generation never moves.
func testDeviceNonces(t *testing.T, s store.Store) {
	ctx := context.Background()
	gen := generation(t, s)
	now := at(time.Hour)
	n := store.DeviceNonce{KeyID: "key-1", Nonce: "n-1", Expires: now.Add(5 * time.Minute)}
	if err := s.UseDeviceNonce(ctx, n, now); err != nil {
		t.Fatalf("first use: %v", err)
	}
	for _, later := range []time.Duration{0, time.Minute, 5 * time.Minute} {
		if err := s.UseDeviceNonce(ctx, n, now.Add(later)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("replay %s later: %v, want store.ErrConflict", later, err)
		}
	}
	for _, other := range []store.DeviceNonce{
		{KeyID: "key-2", Nonce: "n-1", Expires: n.Expires},
		{KeyID: "key-1", Nonce: "n-2", Expires: n.Expires},
	} {
		if err := s.UseDeviceNonce(ctx, other, now); err != nil {
			t.Errorf("use %+v: %v", other, err)
		}
	}
	// Past its expiry the row is replaced, and lives again.
	late := n.Expires.Add(time.Second)
	renewed := store.DeviceNonce{KeyID: n.KeyID, Nonce: n.Nonce, Expires: late.Add(5 * time.Minute)}
	if err := s.UseDeviceNonce(ctx, renewed, late); err != nil {
		t.Errorf("use after expiry: %v", err)
	}
	if err := s.UseDeviceNonce(ctx, renewed, late); !errors.Is(err, store.ErrConflict) {
		t.Errorf("replay of the renewed nonce: %v, want store.ErrConflict", err)
	}
	for _, bad := range []store.DeviceNonce{{Nonce: "x", Expires: now}, {KeyID: "k", Expires: now}} {
		if err := s.UseDeviceNonce(ctx, bad, now); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("use %+v: %v, want an error that is not a conflict", bad, err)
		}
	}

	// key-2/n-1 and key-1/n-2 expire at n.Expires; the renewed one later.
	if got, err := s.Purge(ctx, store.TableDeviceNonces, n.Expires); err != nil || got != 0 {
		t.Errorf("purge before the bound = %d, %v; want 0 (expires is not before it)", got, err)
	}
	if got, err := s.Purge(ctx, store.TableDeviceNonces, late); err != nil || got != 2 {
		t.Errorf("purge = %d, %v; want 2", got, err)
	}
	if err := s.UseDeviceNonce(ctx, renewed, late); !errors.Is(err, store.ErrConflict) {
		t.Errorf("the live nonce after the purge: %v, want store.ErrConflict", err)
	}

	// Concurrent uses of one nonce: exactly one wins.
	const callers = 8
	race := store.DeviceNonce{KeyID: "key-3", Nonce: "n-race", Expires: now.Add(time.Minute)}
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.UseDeviceNonce(ctx, race, now)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("concurrent use: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent uses succeeded, want 1", ok, callers)
	}

	if g := generation(t, s); g != gen {
		t.Errorf("generation %d after nonce uses and purges, want %d", g, gen)
	}

	// Erasing a device removes its key's nonces (keyid: base64url SHA-256
	// of the raw key; the devices table holds the key in standard base64).
	seed(t, s, "p")
	raw := []byte("0123456789abcdef0123456789abcdef")
	pub := base64.StdEncoding.EncodeToString(raw)
	sum := sha256.Sum256(raw)
	kid := base64.RawURLEncoding.EncodeToString(sum[:])
	update(t, s, func(tx store.Tx) error { return tx.AddDevice(ctx, device("d-n", "p", pub, store.DeviceAccepted)) })
	gen = generation(t, s)
	dn := store.DeviceNonce{KeyID: kid, Nonce: "n-d", Expires: now.Add(time.Minute)}
	if err := s.UseDeviceNonce(ctx, dn, now); err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteDevice(ctx, "d-n") })
	gen++ // the delete's Update
	if err := s.UseDeviceNonce(ctx, dn, now); err != nil {
		t.Errorf("the erased device's nonce is still recorded: %v", err)
	}
	if g := generation(t, s); g != gen {
		t.Errorf("generation %d, want %d (the delete's only)", g, gen)
	}
}
