// Package payload streams a full image into a slot and proves it arrived
// intact.
//
// Invariants: the image is never held in memory (BufferSize bytes of
// buffers per call, taken from a pool); exactly the declared length is copied and at most
// one byte beyond it is ever read, so a source that sends more costs nothing
// and fails with ErrTooLong; every hash algorithm given that this package
// knows (sha256, sha512) is checked, and a call with none of them is refused
// before a byte is read. A nil error from Install means the bytes written
// match every known hash and dst.Sync returned nil.
//
// Install writes before it has verified: dst must be a place that is not
// booted until the caller has seen Install succeed (the inactive slot).
//
// Throughput: reading and writing run in the calling goroutine while a
// second goroutine hashes, so a device whose CPU hashes about as fast as its
// flash writes is not slowed to half of either. Wrap a file-backed slot in
// Writeback so that the flash is written during the download rather than
// all at the end.
package payload

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"sync"
)

// Writer receives the image. Write calls are sequential; Sync makes them
// durable.
type Writer interface {
	io.Writer
	Sync() error
}

// Result describes what was written or read.
type Result struct {
	// Bytes is the number of image bytes copied (the declared length on
	// success).
	Bytes int64
	// SHA256 is the SHA-256 of those bytes, whether or not sha256 was among
	// the expected hashes.
	SHA256 []byte
}

// Errors callers may test with errors.Is.
var (
	// ErrTooLong means the source had more bytes than declared.
	ErrTooLong = errors.New("payload: source longer than declared length")
	// ErrTruncated means the source ended before the declared length.
	ErrTruncated = errors.New("payload: source shorter than declared length")
	// ErrHashMismatch means a digest differed from the expected one.
	ErrHashMismatch = errors.New("payload: hash mismatch")
	// ErrNoKnownHash means none of the expected hashes uses an algorithm
	// this package knows.
	ErrNoKnownHash = errors.New("payload: no known hash algorithm")
)

// BufferSize is the memory one call uses for data: four buffers of
// BufferSize/4, so that reading and writing overlap with hashing.
const BufferSize = 1 << 20

const nbuf = 4

var slabPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// known maps the TUF hash names this package verifies to constructors.
var known = map[string]func() hash.Hash{
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// Install copies exactly length bytes from src into dst, reads once more to
// make sure src has nothing beyond them, checks the bytes against hashes
// (algorithm name → expected digest, as in TUF target metadata) and syncs
// dst. Unknown algorithms in hashes are ignored, but at least one must be
// known.
//
// Install is safe for concurrent use with distinct src and dst. ctx is
// checked between buffers; a Read blocked inside src is not
// interrupted by it, so src should be bound to ctx too (fetch bodies are).
// Errors start with "payload:" and wrap ErrTooLong, ErrTruncated,
// ErrHashMismatch, ErrNoKnownHash, ctx's error, or the error of src or dst.
// Install is NewResumable and Resumable.Install without checkpoints.
func Install(ctx context.Context, src io.Reader, dst Writer, length int64, hashes map[string][]byte) (Result, error) {
	r, err := NewResumable(length, hashes)
	if err != nil {
		return Result{}, err
	}
	return r.Install(ctx, src, dst, Checkpoints{})
}

// Verify reads exactly length bytes from r and checks them against hashes,
// with the same rules as Install. Bytes after length are not read: a slot
// is usually larger than the image in it.
func Verify(ctx context.Context, r io.Reader, length int64, hashes map[string][]byte) (Result, error) {
	v, err := NewResumable(length, hashes)
	if err != nil {
		return Result{}, err
	}
	if err := v.copy(ctx, r, nil, Checkpoints{}, length); err != nil {
		return Result{Bytes: v.off}, err
	}
	return v.compare()
}

type check struct {
	name string
	want []byte
}

// prepare returns the known checks in a stable order, refusing a set with
// no known algorithm or a digest of the wrong size.
func prepare(hashes map[string][]byte) ([]check, error) {
	var checks []check
	for name, want := range hashes {
		newHash, ok := known[name]
		if !ok {
			continue
		}
		if size := newHash().Size(); len(want) != size {
			return nil, fmt.Errorf("payload: expected %s digest has %d bytes, want %d", name, len(want), size)
		}
		checks = append(checks, check{name: name, want: want})
	}
	if len(checks) == 0 {
		names := make([]string, 0, len(hashes))
		for name := range hashes {
			names = append(names, name)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w among %q (know sha256, sha512)", ErrNoKnownHash, names)
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].name < checks[j].name })
	return checks, nil
}

func prefix(d []byte) string {
	return hex.EncodeToString(d[:min(len(d), 8)])
}
