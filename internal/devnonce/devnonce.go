// Package devnonce is devauth's NonceStore on the device_nonces table
// every server on one database shares (store.Store.UseDeviceNonce), so
// that a signed device request replayed to another replica behind a load
// balancer is refused as it is by the replica that first served it.
//
// The managed device API uses it for requests that change state
// (enrolment, events) and keeps devauth.MemoryNonces, per process, for
// GETs (devauth.ByMethod): a GET replayed to another replica within the
// signature window only returns what the device was already sent, and
// the update-check hot path then never writes to the database.
//
// Invariants:
//   - A nonce is accepted at most once per key while its signature window
//     is open, across every Store on one database (the table's primary
//     key; the upsert is one atomic statement).
//   - Rows are bounded in time: Use deletes the rows expired for longer
//     than Margin, at most once every PurgeEvery per process, and
//     project's purge (uptrust purge, hourly in uptrust serve) does the
//     same. While requests arrive a row lives at most 2×skew + Margin +
//     PurgeEvery (16 minutes with the defaults), so the table holds at
//     most that many minutes of state-changing device requests; when none
//     arrive it does not grow, and the hourly purge empties it of
//     expired rows.
//   - Rows hold a keyid, a nonce and a time: no client address.
package devnonce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/devauth"
	"github.com/uptrust/uptrust/internal/store"
)

// Margin is how long past its expiry a row is kept before it is deleted:
// replicas' clocks may differ by up to this much without a purge by a
// replica ahead of the others opening a replay window on one behind.
const Margin = devauth.DefaultSkew

// PurgeEvery is how often, at most, a Store deletes expired rows while
// recording nonces.
const PurgeEvery = time.Minute

// Store is a devauth.NonceStore on a store.Store. Safe for concurrent use.
type Store struct {
	st store.Store

	mu        sync.Mutex
	nextPurge time.Time
}

// New returns the nonce store on st.
func New(st store.Store) *Store { return &Store{st: st} }

// Use implements devauth.NonceStore: a nonce recorded and still live,
// by this process or any other on the database, is devauth.ErrReplayed.
// A failure of the opportunistic purge does not refuse the request (the
// next one retries it, and project's purge removes the rows too).
func (s *Store) Use(ctx context.Context, n devauth.Nonce, now time.Time) error {
	s.purge(ctx, now)
	err := s.st.UseDeviceNonce(ctx, store.DeviceNonce{KeyID: n.KeyID, Nonce: n.Value, Expires: n.Until}, now)
	switch {
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("devnonce: nonce %q of key %q already used: %w", n.Value, n.KeyID, devauth.ErrReplayed)
	case err != nil:
		return fmt.Errorf("devnonce: %w", err)
	}
	return nil
}

// purge deletes the rows expired before now-Margin, at most once every
// PurgeEvery.
func (s *Store) purge(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := !now.Before(s.nextPurge)
	if due {
		s.nextPurge = now.Add(PurgeEvery)
	}
	s.mu.Unlock()
	if due {
		_, _ = s.st.Purge(ctx, store.TableDeviceNonces, now.Add(-Margin))
	}
}
