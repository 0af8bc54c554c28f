package mirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrust/uptrust/internal/atomicfile"
)

// ErrVersionedChanged: a versioned metadata file in the mirror holds other
// content than the project publishes under the same name.
var ErrVersionedChanged = errors.New("mirror: versioned metadata differs from the published document of the same name")

// How a payload was placed.
const (
	madeNothing = iota
	madeLink
	madeCopy
)

// copyBuffer is the buffer size for payload copies and hashes: payloads
// stream through it and are never held whole.
const copyBuffer = 1 << 20

// applier carries out steps in a mirror directory. Not safe for concurrent
// use; the caller holds the directory's lock.
type applier struct {
	dir    string
	copy   bool
	verify bool
}

// local is the file name of URL path p (already checked by checkPath).
func (a *applier) local(p string) string {
	return filepath.Join(a.dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
}

// apply carries out s and says whether it changed the mirror, and for a
// payload whether it was linked or copied.
func (a *applier) apply(ctx context.Context, s Step) (changed bool, how int, err error) {
	if err := ctx.Err(); err != nil {
		return false, 0, fmt.Errorf("mirror: %s: %w", s, err)
	}
	switch s.Op {
	case OpPutMetadata:
		changed, err = a.putMetadata(s.Path, s.Data)
	case OpPutPayload:
		changed, how, err = a.putPayload(ctx, s)
	case OpRemove:
		changed, err = a.remove(s.Path)
	default:
		err = fmt.Errorf("mirror: unknown step %q", s.Op)
	}
	return changed, how, err
}

// putMetadata writes a document unless the file already holds it.
func (a *applier) putMetadata(p string, data []byte) (bool, error) {
	name := a.local(p)
	if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
		if fi.Size() == int64(len(data)) {
			have, err := os.ReadFile(name)
			if err != nil {
				return false, fmt.Errorf("mirror: reading %s: %w", name, err)
			}
			if bytes.Equal(have, data) {
				return false, nil
			}
		}
		if isVersioned(p) {
			return false, fmt.Errorf("%w: %s (does this directory mirror another project?)", ErrVersionedChanged, name)
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("mirror: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return false, fmt.Errorf("mirror: %w", err)
	}
	if err := a.writeTemp(name, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	}); err != nil {
		return false, fmt.Errorf("mirror: writing %s: %w", name, err)
	}
	return true, nil
}

// putPayload places a payload unless the file already holds it: a file of
// the right size under a content-addressed name is taken as right, unless
// verify asks for its hash.
func (a *applier) putPayload(ctx context.Context, s Step) (bool, int, error) {
	name := a.local(s.Path)
	fi, err := os.Stat(name)
	switch {
	case err == nil && fi.Mode().IsRegular() && fi.Size() == s.Payload.Size:
		if !a.verify {
			return false, madeNothing, nil
		}
		sum, err := hashFile(ctx, name)
		if err != nil {
			return false, madeNothing, err
		}
		if sum == s.Payload.SHA256 {
			return false, madeNothing, nil
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, madeNothing, fmt.Errorf("mirror: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return false, madeNothing, fmt.Errorf("mirror: %w", err)
	}
	if !a.copy {
		if ok, err := a.link(ctx, s.Payload.Path, name, s.Payload.Size, s.Payload.SHA256); err != nil {
			return false, madeNothing, err
		} else if ok {
			return true, madeLink, nil
		}
	}
	if err := a.copyPayload(ctx, s.Payload.Path, name, s.Payload.Size, s.Payload.SHA256); err != nil {
		return false, madeNothing, err
	}
	return true, madeCopy, nil
}

// link hard-links src to name through a temporary name, checking the size
// (and with verify the SHA-256) before the rename. It returns false without
// error when the filesystem does not allow the link (another device, no
// hard links), so that the caller copies instead.
func (a *applier) link(ctx context.Context, src, name string, size int64, sha string) (bool, error) {
	tmp, err := tempName(name)
	if err != nil {
		return false, err
	}
	if err := os.Link(src, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("mirror: payload source %s: %w", src, err)
		}
		return false, nil
	}
	fi, err := os.Stat(tmp)
	if err == nil && fi.Size() != size {
		err = fmt.Errorf("payload source %s has %d bytes, the metadata says %d", src, fi.Size(), size)
	}
	if err == nil && a.verify {
		var sum string
		if sum, err = hashFile(ctx, tmp); err == nil && sum != sha {
			err = fmt.Errorf("payload source %s does not have the SHA-256 the metadata names", src)
		}
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(name))
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("mirror: linking %s: %w", name, err)
	}
	return true, nil
}

// copyPayload streams src into name through a temporary file, checking the
// length and SHA-256 on the way.
func (a *applier) copyPayload(ctx context.Context, src, name string, size int64, sha string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("mirror: payload source: %w", err)
	}
	defer in.Close()
	err = a.writeTemp(name, func(f *os.File) error {
		h := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(f, h), ctxReader{ctx, io.LimitReader(in, size+1)}, make([]byte, copyBuffer))
		switch {
		case err != nil:
			return err
		case n != size:
			return fmt.Errorf("payload source %s has %d bytes or more, the metadata says %d", src, n, size)
		case hex.EncodeToString(h.Sum(nil)) != sha:
			return fmt.Errorf("payload source %s does not have the SHA-256 the metadata names", src)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mirror: copying %s: %w", name, err)
	}
	return nil
}

// writeTemp creates a temporary file next to name, fills it, fsyncs it,
// renames it to name and fsyncs the directory. The file is 0644: the mirror
// is public.
func (a *applier) writeTemp(name string, fill func(*os.File) error) (err error) {
	tmp, err := tempName(name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o644); err != nil { // whatever the umask
		return err
	}
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, name); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(name))
}

// remove deletes an unpublished file and the directories it leaves empty
// under DIR/repo. A file already gone is not an error.
func (a *applier) remove(p string) (bool, error) {
	name := a.local(p)
	if err := os.Remove(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("mirror: removing %s: %w", name, err)
	}
	top := filepath.Join(a.dir, "repo")
	for d := filepath.Dir(name); d != top && strings.HasPrefix(d, top+string(filepath.Separator)); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break // not empty, or not ours to judge
		}
	}
	return true, nil
}

// tempName is a fresh temporary name in name's directory.
func tempName(name string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mirror: %w", err)
	}
	return filepath.Join(filepath.Dir(name), tmpPrefix+hex.EncodeToString(b[:])), nil
}

func hashFile(ctx context.Context, name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("mirror: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ctxReader{ctx, f}, make([]byte, copyBuffer)); err != nil {
		return "", fmt.Errorf("mirror: hashing %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader ends a copy when ctx ends.
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
