// Package blob stores payloads addressed by their SHA-256, behind the
// Storage interface: on the filesystem (Store, the default) or in an
// S3-compatible bucket (S3).
//
// Filesystem layout: <root>/sha256/<first two hex digits>/<64 hex digits>. A blob file
// appears only complete and fsync'd (written to a temporary file in the same
// directory, then renamed), so a reader never sees a partial payload, and a
// blob never changes once it exists.
//
// Both stores also take resumable uploads of content whose SHA-256 and
// size are known beforehand (Uploader, for uptrust push), checkpointed in
// the storage itself: <root>/uploads/ on the filesystem, a multipart
// upload and <prefix>uploads/<sha>.json in S3.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
)

// Storage is a content-addressed payload store. Every implementation
// keeps these invariants: a blob becomes visible under its SHA-256 only
// complete and with its hash verified, so a reader never sees a partial or
// wrong payload; a blob never changes once it exists; Put never holds the
// payload whole in memory.
type Storage interface {
	// Put streams r into the store, hashing while copying. limit bounds the
	// size (0: no limit; larger payloads fail with ErrTooLarge and leave
	// nothing visible). Putting content that exists already returns the
	// existing blob.
	Put(ctx context.Context, r io.Reader, limit int64) (Info, error)
	// Stat returns the blob's info, or an error wrapping os.ErrNotExist.
	Stat(ctx context.Context, sha string) (Info, error)
	// Open opens the blob for reading, or fails with an error wrapping
	// os.ErrNotExist when it is absent.
	Open(ctx context.Context, sha string) (Object, error)
	// Check says whether the store is reachable and usable.
	Check(ctx context.Context) error
	// String names the store for messages (never with credentials).
	String() string
}

// Object is an open blob: seekable, so that HTTP Range requests can be
// answered from it, and of a known size.
type Object interface {
	io.ReadSeekCloser
	Size() int64
}

// Store is a content-addressed blob directory.
type Store struct {
	root string
}

// New returns the store rooted at dir; it creates the directory if needed.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Store{root: dir}, nil
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Path returns the file name of the blob with the given lower-case hex
// SHA-256. It does not check that the blob exists.
func (s *Store) Path(sha string) (string, error) {
	if !hexRE.MatchString(sha) {
		return "", fmt.Errorf("blob: invalid sha256 %q", sha)
	}
	return filepath.Join(s.root, "sha256", sha[:2], sha), nil
}

// Info is a stored blob's identity.
type Info struct {
	SHA256 string
	Size   int64
	// Path is the file of a filesystem blob; empty for other stores.
	Path string
}

// ErrTooLarge is returned when a payload exceeds the limit given to Put.
var ErrTooLarge = errors.New("blob: payload larger than allowed")

// Put streams r into the store, hashing while copying; the payload is never
// held in memory. limit bounds the size (0 means no limit). Putting content
// that already exists is cheap and returns the existing blob.
func (s *Store) Put(ctx context.Context, r io.Reader, limit int64) (Info, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.root, "sha256"), ".put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	defer tmp.Close()

	h := sha256.New()
	src := r
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), ctxReader{ctx, src}, make([]byte, 1<<20))
	if err != nil {
		return Info{}, fmt.Errorf("blob: writing payload: %w", err)
	}
	if limit > 0 && n > limit {
		return Info{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	sha := hex.EncodeToString(h.Sum(nil))
	dst, _ := s.Path(sha)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return Info{}, err
	}
	return Info{SHA256: sha, Size: n, Path: dst}, nil
}

// Stat returns the blob's info, or an error wrapping os.ErrNotExist.
func (s *Store) Stat(_ context.Context, sha string) (Info, error) {
	p, err := s.Path(sha)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	return Info{SHA256: sha, Size: fi.Size(), Path: p}, nil
}

// Open opens the blob's file.
func (s *Store) Open(_ context.Context, sha string) (Object, error) {
	p, err := s.Path(sha)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: %w", err)
	}
	return fileObject{f, fi.Size()}, nil
}

type fileObject struct {
	*os.File
	size int64
}

func (f fileObject) Size() int64 { return f.size }

// Check reports whether the blob directory is there.
func (s *Store) Check(context.Context) error {
	if _, err := os.Stat(filepath.Join(s.root, "sha256")); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// String returns the directory.
func (s *Store) String() string { return s.root }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob: fsync %s: %w", dir, err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Walk calls fn with the SHA-256 of every blob in the directory, in no
// particular order; it stops at fn's first error.
func (s *Store) Walk(fn func(sha string) error) error {
	top := filepath.Join(s.root, "sha256")
	dirs, err := os.ReadDir(top)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(top, d.Name()))
		if err != nil {
			return fmt.Errorf("blob: %w", err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && hexRE.MatchString(e.Name()) && e.Name()[:2] == d.Name() {
				if err := fn(e.Name()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// VerifiedPutter is a Storage that can store content whose SHA-256 is known
// beforehand more cheaply than Put: straight under its address, refusing it
// (ErrHashMismatch, nothing stored) when the content hashes differently.
type VerifiedPutter interface {
	PutVerified(ctx context.Context, r io.Reader, sha string, limit int64) (Info, error)
}

// Copy puts every blob of src into dst that dst lacks, streaming each, and
// checks that each arrives under the same SHA-256. It returns how many it
// copied and how many dst had already.
func Copy(ctx context.Context, dst Storage, src *Store) (copied, skipped int, err error) {
	err = src.Walk(func(sha string) error {
		if _, err := dst.Stat(ctx, sha); err == nil {
			skipped++
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		f, err := src.Open(ctx, sha)
		if err != nil {
			return err
		}
		defer f.Close()
		var info Info
		if v, ok := dst.(VerifiedPutter); ok {
			info, err = v.PutVerified(ctx, f, sha, 0)
			if errors.Is(err, ErrHashMismatch) {
				return fmt.Errorf("blob: %s/sha256/%s/%s is corrupt: %w", src.root, sha[:2], sha, err)
			}
		} else {
			info, err = dst.Put(ctx, f, 0)
		}
		if err != nil {
			return err
		}
		if info.SHA256 != sha {
			return fmt.Errorf("blob: %s/sha256/%s/%s is corrupt: its content hashes to %s", src.root, sha[:2], sha, info.SHA256)
		}
		copied++
		return nil
	})
	return copied, skipped, err
}
