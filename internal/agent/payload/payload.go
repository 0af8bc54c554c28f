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
	"bytes"
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
func Install(ctx context.Context, src io.Reader, dst Writer, length int64, hashes map[string][]byte) (Result, error) {
	res, err := copyVerified(ctx, src, dst, length, hashes, true)
	if err != nil {
		return res, err
	}
	if err := dst.Sync(); err != nil {
		return res, fmt.Errorf("payload: sync: %w", err)
	}
	return res, nil
}

// Verify reads exactly length bytes from r and checks them against hashes,
// with the same rules as Install. Bytes after length are not read: a slot
// is usually larger than the image in it.
func Verify(ctx context.Context, r io.Reader, length int64, hashes map[string][]byte) (Result, error) {
	return copyVerified(ctx, r, nil, length, hashes, false)
}

type check struct {
	name string
	want []byte
	h    hash.Hash
}

func copyVerified(ctx context.Context, src io.Reader, dst io.Writer, length int64, hashes map[string][]byte, checkEnd bool) (Result, error) {
	if length < 0 {
		return Result{}, fmt.Errorf("payload: negative length %d", length)
	}
	checks, err := prepare(hashes)
	if err != nil {
		return Result{}, err
	}
	s256 := sha256.New()
	hashers := []io.Writer{s256}
	for _, c := range checks {
		if c.name != "sha256" {
			hashers = append(hashers, c.h)
		}
	}

	slab := slabPool.Get().(*[]byte)
	defer slabPool.Put(slab)

	// Pipeline: this goroutine reads each chunk and writes it to dst while a
	// second one hashes it. A buffer returns to free only after it has been
	// hashed, and this goroutine takes a buffer from free only after its own
	// write of the previous one returned, so no buffer is overwritten while
	// in use.
	free := make(chan []byte, nbuf)
	for i := range nbuf {
		size := BufferSize / nbuf
		free <- (*slab)[i*size : (i+1)*size : (i+1)*size]
	}
	work := make(chan []byte, nbuf)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range work {
			for _, h := range hashers {
				h.Write(b)
			}
			free <- b[:cap(b)]
		}
	}()
	stopHashing := sync.OnceFunc(func() { close(work); <-hashed })
	defer stopHashing()

	var res Result
	for res.Bytes < length {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("payload: after %d of %d bytes: %w", res.Bytes, length, err)
		}
		buf := <-free
		chunk := buf[:min(int64(len(buf)), length-res.Bytes)]
		n, err := io.ReadFull(src, chunk)
		if n > 0 {
			work <- chunk[:n]
			if dst != nil {
				if w, werr := dst.Write(chunk[:n]); werr != nil || w != n {
					if werr == nil {
						werr = io.ErrShortWrite
					}
					return res, fmt.Errorf("payload: write at offset %d: %w", res.Bytes, werr)
				}
			}
			res.Bytes += int64(n)
		} else {
			free <- buf
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return res, fmt.Errorf("%w: got %d of %d bytes", ErrTruncated, res.Bytes, length)
		}
		if err != nil {
			return res, fmt.Errorf("payload: read at offset %d: %w", res.Bytes, err)
		}
	}
	if checkEnd {
		// One more byte, never more: enough to tell "exactly length" from
		// "longer", without reading an endless source.
		var one [1]byte
		n, err := io.ReadFull(src, one[:])
		if n > 0 {
			return res, fmt.Errorf("%w: more than %d bytes", ErrTooLong, length)
		}
		if err != io.EOF {
			return res, fmt.Errorf("payload: checking for data beyond %d bytes: %w", length, err)
		}
	}
	stopHashing()
	res.SHA256 = s256.Sum(nil)
	for _, c := range checks {
		got := res.SHA256
		if c.name != "sha256" {
			got = c.h.Sum(nil)
		}
		if !bytes.Equal(got, c.want) {
			return res, fmt.Errorf("%w: %s expected %s…, got %s…", ErrHashMismatch, c.name, prefix(c.want), prefix(got))
		}
	}
	return res, nil
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
		h := newHash()
		if len(want) != h.Size() {
			return nil, fmt.Errorf("payload: expected %s digest has %d bytes, want %d", name, len(want), h.Size())
		}
		checks = append(checks, check{name: name, want: want, h: h})
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
