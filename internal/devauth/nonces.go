package devauth

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/http"
	"sync"
	"time"
)

// Nonce is one use of a nonce by a device key.
type Nonce struct {
	KeyID   string
	Value   string
	Method  string    // the request's method, for ByMethod
	Created time.Time // the signature's created parameter
	// Until is when the nonce may be forgotten: past it, the request it
	// came with is refused as too old without asking the store.
	Until time.Time
}

// NonceStore remembers nonces to refuse replays.
//
// Use records n at time now. It returns an error wrapping ErrReplayed when
// the same (KeyID, Value) was recorded and its Until is not before now, an
// error wrapping ErrNoncesFull when it cannot record n without forgetting a
// live nonce, and another error when it fails. It is atomic: of concurrent
// calls with one (KeyID, Value), exactly one succeeds. Implementations are
// safe for concurrent use; one shared by all replicas (a database table
// with a unique key on keyid and nonce, and a purge of rows past Until)
// protects a fleet behind a load balancer.
type NonceStore interface {
	Use(ctx context.Context, n Nonce, now time.Time) error
}

// ByMethod sends the nonces of safe requests (GET, HEAD, OPTIONS) to Safe
// and the others to Unsafe: the recommended set-up for several replicas is
// a MemoryNonces per process for the update-check hot path and a shared
// store for requests that change state (see the package doc).
type ByMethod struct {
	Safe, Unsafe NonceStore
}

// Use implements NonceStore.
func (b ByMethod) Use(ctx context.Context, n Nonce, now time.Time) error {
	switch n.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return b.Safe.Use(ctx, n, now)
	}
	return b.Unsafe.Use(ctx, n, now)
}

// DefaultNonceCapacity is MemoryNonces' default bound: enough for about
// 3,500 requests/s with the default 5-minute skew (a nonce lives at most
// 2×Skew: created may be Skew ahead of the server's clock).
const DefaultNonceCapacity = 1 << 21

const (
	nonceShards = 16
	// sweepEvery is how often a shard drops expired nonces when not full.
	sweepEvery = 10 * time.Second
	// fullSweepEvery bounds the sweeps of a full shard, so that a store
	// full of live nonces does not scan itself on every request.
	fullSweepEvery = time.Second
)

// MemoryNonces is a NonceStore in this process's memory, bounded to a
// capacity: when a shard is full of live nonces it refuses (ErrNoncesFull)
// rather than forgetting one. It keeps a 64-bit keyed hash of (keyid,
// nonce) and the Until time, about 20 bytes a nonce; the hash's key is
// random per process, so no one can aim a collision, and an accidental
// one (a genuine request refused as a replay) has a chance of about
// live/2^64 per request. Safe for concurrent use.
type MemoryNonces struct {
	seed     maphash.Seed
	perShard int
	shards   [nonceShards]nonceShard
}

type nonceShard struct {
	mu        sync.Mutex
	until     map[uint64]int64 // hash → Until in Unix nanoseconds
	nextSweep int64
}

// NewMemoryNonces returns a MemoryNonces holding at most capacity live
// nonces (DefaultNonceCapacity when capacity <= 0).
func NewMemoryNonces(capacity int) *MemoryNonces {
	if capacity <= 0 {
		capacity = DefaultNonceCapacity
	}
	m := &MemoryNonces{seed: maphash.MakeSeed(), perShard: (capacity + nonceShards - 1) / nonceShards}
	for i := range m.shards {
		m.shards[i].until = make(map[uint64]int64)
	}
	return m
}

// Use implements NonceStore.
func (m *MemoryNonces) Use(_ context.Context, n Nonce, now time.Time) error {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(n.KeyID)
	h.WriteByte(0)
	h.WriteString(n.Value)
	k := h.Sum64()
	s := &m.shards[k>>60] // nonceShards == 16: the top 4 bits
	t := now.UnixNano()

	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.until[k]; ok && u >= t {
		return refuse(ErrReplayed, fmt.Sprintf("nonce %q of key %q already used", n.Value, n.KeyID))
	}
	if t >= s.nextSweep {
		s.sweep(t)
		s.nextSweep = t + int64(sweepEvery)
	}
	if len(s.until) >= m.perShard {
		if t+int64(sweepEvery-fullSweepEvery) >= s.nextSweep {
			s.sweep(t)
			s.nextSweep = t + int64(sweepEvery)
		}
		if len(s.until) >= m.perShard {
			return refuse(ErrNoncesFull, fmt.Sprintf("%d live nonces in a shard", len(s.until)))
		}
	}
	s.until[k] = n.Until.UnixNano()
	return nil
}

// Len returns the number of nonces held, expired ones not yet swept
// included.
func (m *MemoryNonces) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.until)
		s.mu.Unlock()
	}
	return n
}

// sweep drops the nonces whose Until is before t. The caller holds s.mu.
func (s *nonceShard) sweep(t int64) {
	for k, u := range s.until {
		if u < t {
			delete(s.until, k)
		}
	}
}
