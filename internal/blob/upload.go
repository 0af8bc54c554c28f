package blob

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Uploader takes uploads of content whose SHA-256 and size are known
// beforehand, in pieces that may arrive over several requests, even at
// different server replicas sharing the storage (uptrust push).
//
// Invariants of every implementation:
//   - The content is hashed while it streams through, never held whole in
//     memory and never read a second time.
//   - The blob appears under its content address only when all size bytes
//     arrived and hash to sha; otherwise Upload fails with
//     ErrHashMismatch and the unfinished upload is discarded.
//   - When the reader ends early or fails, what arrived up to the last
//     checkpoint is kept: a later Upload (from any handle on the same
//     storage) continues at UploadOffset. The checkpoint (offset and the
//     SHA-256 state) lives in the storage itself, never in the process.
//   - An offset that is not the current one is refused (an *OffsetError,
//     matching ErrOffset) without reading anything.
//   - A blob that is stored already is returned at once (deduplication),
//     without reading r.
//   - Unfinished uploads stay until they are completed or RemoveUploads
//     removes them; an operator (or a periodic job) calls RemoveUploads
//     with an age, such as a day, that no live push reaches.
type Uploader interface {
	// UploadOffset returns how many bytes of the unfinished upload of sha
	// the storage holds: 0 when there is none. It does not look for a
	// stored blob (Stat does).
	UploadOffset(ctx context.Context, sha string) (int64, error)
	// Upload continues the upload of sha, size bytes in all, at offset
	// with the bytes r yields (offset..size-1). limit bounds size (0: no
	// limit; ErrTooLarge before reading). It returns the blob's Info when
	// the blob is complete; ErrIncomplete (with the upload kept) when r
	// ended before size bytes.
	Upload(ctx context.Context, sha string, size, offset, limit int64, r io.Reader) (Info, error)
	// RemoveUploads discards unfinished uploads last continued before
	// cutoff and returns how many it removed.
	RemoveUploads(ctx context.Context, cutoff time.Time) (int, error)
}

// ErrOffset matches an *OffsetError.
var ErrOffset = errors.New("blob: upload offset is not the current one")

// ErrIncomplete is returned by Upload when the content ended (or failed)
// before the declared size; the upload is kept at its last checkpoint.
var ErrIncomplete = errors.New("blob: upload incomplete")

// ErrTooLong is returned by Upload when the content goes on past its
// declared size; the upload is kept at its last checkpoint.
var ErrTooLong = errors.New("blob: content longer than its declared size")

// ErrBusy is returned when another Upload of the same blob is running.
var ErrBusy = errors.New("blob: another upload of this blob is in progress")

// OffsetError says at which offset the upload continues.
type OffsetError struct {
	SHA256   string
	Got      int64
	Expected int64
}

func (e *OffsetError) Error() string {
	return fmt.Sprintf("blob: upload of %s continues at offset %d, not %d", e.SHA256, e.Expected, e.Got)
}

// Is makes errors.Is(err, ErrOffset) true.
func (e *OffsetError) Is(target error) bool { return target == ErrOffset }

// checkUpload validates Upload's arguments before anything is read.
func checkUpload(sha string, size, offset, limit int64) error {
	if !hexRE.MatchString(sha) {
		return fmt.Errorf("blob: invalid sha256 %q", sha)
	}
	if size < 0 {
		return fmt.Errorf("blob: negative upload size %d", size)
	}
	if limit > 0 && size > limit {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, size, limit)
	}
	if offset < 0 || offset > size {
		return fmt.Errorf("blob: upload offset %d outside 0..%d", offset, size)
	}
	return nil
}

// uploadState is the checkpoint of an unfinished upload, stored as JSON
// beside its data. Hash is the SHA-256 state after Offset bytes
// (crypto/sha256's encoding.BinaryMarshaler form).
type uploadState struct {
	Size   int64  `json:"size"`
	Offset int64  `json:"offset"`
	Hash   []byte `json:"hash"`
	// S3 only: the part size, the multipart upload and its parts so far,
	// in order.
	PartSize int64    `json:"part_size,omitempty"`
	UploadID string   `json:"upload_id,omitempty"`
	Parts    []s3Part `json:"parts,omitempty"`
}

type s3Part struct {
	N    int    `json:"n"`
	ETag string `json:"etag"`
}

// resumeHash returns a SHA-256 continuing from st (a fresh one at 0).
func (st *uploadState) resumeHash() (hash.Hash, error) {
	h := sha256.New()
	if st.Offset == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return nil, fmt.Errorf("blob: upload checkpoint: hash state: %w", err)
	}
	return h, nil
}

func marshalHash(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("blob: sha256 state: " + err.Error()) // crypto/sha256 never fails
	}
	return b
}

// fsCheckpoint is how much the filesystem upload writes between two
// checkpoints (fsync of the data, then of the state).
const fsCheckpoint = 16 << 20

func (s *Store) uploadPaths(sha string) (part, state string) {
	dir := filepath.Join(s.root, "uploads")
	return filepath.Join(dir, sha+".part"), filepath.Join(dir, sha+".json")
}

// readState returns the checkpoint of sha's upload; a zero state when
// there is none.
func (s *Store) readState(sha string) (uploadState, error) {
	_, sp := s.uploadPaths(sha)
	b, err := os.ReadFile(sp)
	if errors.Is(err, os.ErrNotExist) {
		return uploadState{}, nil
	}
	if err != nil {
		return uploadState{}, fmt.Errorf("blob: upload checkpoint: %w", err)
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil {
		return uploadState{}, fmt.Errorf("blob: upload checkpoint %s: %w", sp, err)
	}
	return st, nil
}

// UploadOffset implements Uploader. Filesystem layout of an unfinished
// upload: <root>/uploads/<sha>.part (the data, fsync'd up to the
// checkpoint; bytes past it are cut when the upload continues) and
// <root>/uploads/<sha>.json (the checkpoint, replaced atomically).
func (s *Store) UploadOffset(_ context.Context, sha string) (int64, error) {
	if !hexRE.MatchString(sha) {
		return 0, fmt.Errorf("blob: invalid sha256 %q", sha)
	}
	st, err := s.readState(sha)
	return st.Offset, err
}

// Upload implements Uploader. Two uploads of one blob exclude each other
// with flock(2) on the partial file (ErrBusy), which holds across
// processes on one host.
func (s *Store) Upload(ctx context.Context, sha string, size, offset, limit int64, r io.Reader) (Info, error) {
	if err := checkUpload(sha, size, offset, limit); err != nil {
		return Info{}, err
	}
	if info, err := s.Stat(ctx, sha); err == nil {
		return info, nil
	}
	pp, sp := s.uploadPaths(sha)
	if err := os.MkdirAll(filepath.Dir(pp), 0o755); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	f, err := os.OpenFile(pp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return Info{}, fmt.Errorf("%w: %s", ErrBusy, sha)
	}
	// Another upload may have completed the blob between Stat and the
	// lock: then pp is a fresh empty file of ours.
	if info, err := s.Stat(ctx, sha); err == nil {
		_ = os.Remove(pp)
		return info, nil
	}
	st, err := s.readState(sha)
	if err != nil {
		return Info{}, err
	}
	if st.Offset > 0 && st.Size != size {
		// The same content address with another size: the old upload
		// cannot be right; start afresh.
		st = uploadState{}
		_ = os.Remove(sp)
	}
	if offset != st.Offset {
		return Info{}, &OffsetError{SHA256: sha, Got: offset, Expected: st.Offset}
	}
	h, err := st.resumeHash()
	if err != nil {
		return Info{}, err
	}
	// Bytes past the checkpoint were not fsync'd with a state: cut them.
	if err := f.Truncate(st.Offset); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	if _, err := f.Seek(st.Offset, io.SeekStart); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	checkpoint := func(off int64, hs []byte) error {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("blob: fsync %s: %w", pp, err)
		}
		return writeFileAtomic(sp, uploadState{Size: size, Offset: off, Hash: hs})
	}
	off, werr, rerr := s.pipe(ctx, f, h, io.LimitReader(r, size-st.Offset), st.Offset, size, checkpoint)
	if werr != nil {
		return Info{}, fmt.Errorf("blob: writing %s: %w", pp, werr)
	}
	if off < size {
		if err := checkpoint(off, marshalHash(h)); err != nil {
			return Info{}, err
		}
		if rerr == nil || rerr == io.EOF {
			rerr = io.ErrUnexpectedEOF
		}
		return Info{}, fmt.Errorf("%w: %s has %d of %d bytes: %w", ErrIncomplete, sha, off, size, rerr)
	}
	if extra(r) {
		if err := checkpoint(off, marshalHash(h)); err != nil {
			return Info{}, err
		}
		return Info{}, fmt.Errorf("%w: %s is %d bytes", ErrTooLong, sha, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		_ = os.Remove(sp)
		_ = os.Remove(pp)
		return Info{}, fmt.Errorf("blob: uploaded content of %s hashes to %s: %w", sha, got, ErrHashMismatch)
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: fsync %s: %w", pp, err)
	}
	dst, _ := s.Path(sha)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(pp, dst); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return Info{}, err
	}
	_ = os.Remove(sp)
	return Info{SHA256: sha, Size: size, Path: dst}, nil
}

// fsChunk is the unit the filesystem upload reads, writes and hashes;
// fsChunks of them are in flight at once.
const (
	fsChunk  = 1 << 20
	fsChunks = 4
)

// pipe copies r to f (positioned at off) and into h in three stages that
// overlap: this goroutine reads, one writes, one hashes, each chunk in that
// order. Every fsCheckpoint bytes hashed it starts a checkpoint (fsync,
// then the state with the hash so far) in the background, at most one at
// a time, so that the copy does not wait for the disk. It returns the
// offset written and hashed, the first write error and the reader's error,
// after every background checkpoint finished.
func (s *Store) pipe(ctx context.Context, f *os.File, h hash.Hash, r io.Reader, off, size int64, checkpoint func(int64, []byte) error) (int64, error, error) {
	type chunk struct {
		buf []byte
		n   int
		ok  bool
	}
	free := make(chan []byte, fsChunks)
	for range fsChunks {
		free <- make([]byte, fsChunk)
	}
	toWrite := make(chan chunk, fsChunks)
	toHash := make(chan chunk, fsChunks)
	var werr error
	var failed atomic.Bool
	go func() {
		for c := range toWrite {
			if werr == nil {
				if _, werr = f.Write(c.buf[:c.n]); werr != nil {
					failed.Store(true)
				}
			}
			c.ok = werr == nil
			toHash <- c
		}
		close(toHash)
	}()
	var (
		ckWG   sync.WaitGroup
		ckBusy atomic.Bool
	)
	hashed := off
	hashDone := make(chan struct{})
	go func() {
		defer close(hashDone)
		last := off
		for c := range toHash {
			if c.ok {
				h.Write(c.buf[:c.n])
				hashed += int64(c.n)
			}
			free <- c.buf
			if hashed-last >= fsCheckpoint && hashed < size && ckBusy.CompareAndSwap(false, true) {
				last = hashed
				ckWG.Add(1)
				go func(at int64, hs []byte) {
					defer ckWG.Done()
					defer ckBusy.Store(false)
					// A failed background checkpoint only leaves the
					// previous one in place.
					_ = checkpoint(at, hs)
				}(hashed, marshalHash(h))
			}
		}
	}()
	src := ctxReader{ctx, r}
	var rerr error
	for read := off; read < size && !failed.Load(); {
		buf := <-free
		n, err := io.ReadFull(src, buf[:min(int64(len(buf)), size-read)])
		if n > 0 {
			toWrite <- chunk{buf: buf, n: n}
			read += int64(n)
		} else {
			free <- buf
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(toWrite)
	<-hashDone
	ckWG.Wait()
	return hashed, werr, rerr
}

// extra reports whether r yields anything more.
func extra(r io.Reader) bool {
	var b [1]byte
	for range 3 {
		n, err := r.Read(b[:])
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// writeFileAtomic writes v as JSON to name through a temporary file and a
// rename, fsync'd, so a reader sees the old or the new state, whole.
func writeFileAtomic(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".state-*")
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("blob: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("blob: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// RemoveUploads implements Uploader: it removes the partial file and the
// checkpoint of every upload whose partial file was last written before
// cutoff (skipping one that is being written: its lock is held).
func (s *Store) RemoveUploads(_ context.Context, cutoff time.Time) (int, error) {
	dir := filepath.Join(s.root, "uploads")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("blob: %w", err)
	}
	n := 0
	for _, e := range ents {
		sha, ok := strings.CutSuffix(e.Name(), ".part")
		if !ok || !hexRE.MatchString(sha) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		pp, sp := s.uploadPaths(sha)
		f, err := os.OpenFile(pp, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		_ = os.Remove(sp)
		if os.Remove(pp) == nil {
			n++
		}
		f.Close()
	}
	return n, nil
}

var (
	_ Uploader = (*Store)(nil)
	_ Uploader = (*S3)(nil)
)
