// Package blob stores payloads on the filesystem, addressed by their SHA-256.
//
// Layout: <root>/sha256/<first two hex digits>/<64 hex digits>. A blob file
// appears only complete and fsync'd (written to a temporary file in the same
// directory, then renamed), so a reader never sees a partial payload, and a
// blob never changes once it exists.
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
	Path   string
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
func (s *Store) Stat(sha string) (Info, error) {
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
