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

// DefaultNonceCapacity is MemoryNonces' default bound: 20 million
// nonces, enough for about 33,000 signed requests/s with the default
// 5-minute skew (a nonce lives at most 2×Skew: created may be Skew ahead
// of the server's clock), at about 23 bytes a nonce measured over a full
// window (TestMemoryNoncesBytes: Go map slots of 8 bytes, growth
// doubling), so about 460 MB when full; memory is taken as nonces arrive,
// not up front, and handed back as buckets are dropped.
const DefaultNonceCapacity = 20_000_000

const (
	nonceShards = 16
	// bucketWidth is the span of Until times one bucket holds: a bucket is
	// dropped whole once its end is past, so a nonce may be remembered
	// (and its reuse refused) up to bucketWidth after its Until.
	bucketWidth = int64(30 * time.Second)
)

// MemoryNonces is a NonceStore in this process's memory, bounded to a
// capacity: when a shard is full of live nonces it refuses (ErrNoncesFull)
// rather than forgetting one. It keeps a 64-bit keyed hash of (keyid,
// nonce) in a set per 30-second span of Until (bucketWidth), per shard;
// sets are dropped whole once their span is past, so nothing is ever
// scanned. The hash's key is random per process, so no one can aim a
// collision, and an accidental one (a genuine request refused as a replay)
// has a chance of about live/2^64 per request. Safe for concurrent use.
type MemoryNonces struct {
	seed     maphash.Seed
	perShard int
	shards   [nonceShards]nonceShard
}

type nonceShard struct {
	mu sync.Mutex
	// buckets are ordered by end; n counts their nonces.
	buckets []nonceBucket
	n       int
	_       [40]byte // keeps shards on separate cache lines
}

// nonceBucket holds the nonces whose Until is in (end-bucketWidth, end].
type nonceBucket struct {
	end int64
	set map[uint64]struct{}
}

// NewMemoryNonces returns a MemoryNonces holding at most capacity live
// nonces (DefaultNonceCapacity when capacity <= 0).
func NewMemoryNonces(capacity int) *MemoryNonces {
	if capacity <= 0 {
		capacity = DefaultNonceCapacity
	}
	return &MemoryNonces{seed: maphash.MakeSeed(), perShard: (capacity + nonceShards - 1) / nonceShards}
}

// Use implements NonceStore. A nonce is refused as replayed while the
// bucket holding it lives: until its Until, and at most bucketWidth more.
func (m *MemoryNonces) Use(_ context.Context, n Nonce, now time.Time) error {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(n.KeyID)
	h.WriteByte(0)
	h.WriteString(n.Value)
	k := h.Sum64()
	s := &m.shards[k>>60] // nonceShards == 16: the top 4 bits
	t := now.UnixNano()
	u := n.Until.UnixNano()
	end := u - u%bucketWidth
	if end < u {
		end += bucketWidth
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Drop the buckets whose every nonce is past its Until.
	drop := 0
	for drop < len(s.buckets) && s.buckets[drop].end < t {
		s.n -= len(s.buckets[drop].set)
		drop++
	}
	if drop > 0 {
		s.buckets = append(s.buckets[:0], s.buckets[drop:]...)
	}
	for i := range s.buckets {
		if _, ok := s.buckets[i].set[k]; ok {
			return refuse(ErrReplayed, fmt.Sprintf("nonce %q of key %q already used", n.Value, n.KeyID))
		}
	}
	if s.n >= m.perShard {
		return refuse(ErrNoncesFull, fmt.Sprintf("%d live nonces in a shard", s.n))
	}
	i := len(s.buckets)
	for i > 0 && s.buckets[i-1].end >= end {
		i--
	}
	if i == len(s.buckets) || s.buckets[i].end != end {
		s.buckets = append(s.buckets, nonceBucket{})
		copy(s.buckets[i+1:], s.buckets[i:])
		s.buckets[i] = nonceBucket{end: end, set: make(map[uint64]struct{})}
	}
	s.buckets[i].set[k] = struct{}{}
	s.n++
	return nil
}

// Len returns the number of nonces held, those of buckets not yet dropped
// included.
func (m *MemoryNonces) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}
