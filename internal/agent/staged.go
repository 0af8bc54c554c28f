package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/atomicfile"
)

// stagedFetch is the download of one signed target into a file in the
// data directory (a delta, or a compressed payload staged before it is
// decompressed into the slot), over one or more requests and across
// checks: its progress lives in the pending install (saved and record),
// and the file keeps the bytes that progress claims.
//
// It continues from the saved progress when the file still holds the bytes
// that progress claims: the file is cut back to the saved offset and the
// rest is asked for with a Range request. A file shorter than that, or
// progress that does not restore, starts over from byte 0. The progress is
// saved as the download goes (every bytes; each save syncs the file and
// writes the state into the checkpoint journal before the download goes on,
// so a power loss costs at most every bytes and the buffer being filled),
// and once more when it is complete. A dropped connection is resumed from
// the exact offset reached, with the retry policy of the full payload (see
// retryDrops); a server that cannot continue (Range ignored, ETag changed,
// 416) makes it start over (see requestRest).
// A file whose first bytes came from saved progress is read back and
// verified; if that, or the hash of the resumed stream, does not match, the
// target is downloaded once more from byte 0.
type stagedFetch struct {
	a       *Agent
	s       *State
	what    string // "delta", "compressed payload": for messages
	version string // of the release
	url     string
	path    string
	point   string // power point of the file's writes
	every   int64  // checkpoint every this many bytes
	// budget, if not 0, lets checkpoints run in the background while the
	// download goes on, with fewer than budget bytes written and not
	// covered by a saved one before each buffer (payload.Checkpoints.MaxLag);
	// 0: every checkpoint is saved before the download goes on.
	budget int64
	length int64
	hashes map[string][]byte
	// saved returns the saved progress (nil: none); record replaces it in
	// s (nil: drops it), count returns the download's counter.
	saved  func() *Download
	record func(*Download)
	count  func() *DownloadCount
	// interrupted, if set, wraps the error of a link that dropped the
	// download Config.MaxAttempts times in a row.
	interrupted error

	r    *payload.Resumable
	f    *os.File
	etag string // of the latest answer
}

// fetch downloads the target into sf.path, verified against its signed
// length and hashes, and returns the file (open for reading and writing).
func (sf *stagedFetch) fetch(ctx context.Context) (*os.File, error) {
	a, s := sf.a, sf.s
	r, err := payload.NewResumable(sf.length, sf.hashes)
	if err != nil {
		return nil, err
	}
	sf.r = r
	if err := sf.open(); err != nil {
		return nil, err
	}
	err = sf.requests(ctx)
	if err == nil && r.Restored() {
		err = sf.verify(ctx)
	}
	if err != nil && r.Restored() && errors.Is(err, payload.ErrHashMismatch) {
		// A prefix taken from saved progress makes a mismatch ambiguous:
		// the file or the saved hash states may be what is wrong. Only a
		// download from byte 0 tells.
		a.log.Warn("the resumed "+sf.what+" does not verify; downloading it again", "version", sf.version, "err", err)
		err = sf.startOver()
		if err == nil {
			err = sf.requests(ctx)
		}
	}
	if err == nil {
		// Complete and synced (Install syncs on success): save that, so
		// that a power loss after this does not download it again.
		var pr payload.Progress
		if pr, err = r.Progress(); err == nil {
			sf.record(&Download{Progress: pr, ETag: sf.etag})
			sf.count().Complete = true
			err = saveState(a.cfg.DataDir, s)
		}
	}
	if err != nil {
		sf.f.Close()
		return nil, err
	}
	return sf.f, nil
}

// open opens the file: at the saved progress when it can continue from
// there, else empty, with the progress dropped and that saved first.
func (sf *stagedFetch) open() error {
	a := sf.a
	if d := sf.saved(); d != nil {
		f, err := resumeStagedFile(sf.path, sf.r, d.Progress)
		if err == nil {
			sf.f = f
			a.log.Info("resuming the "+sf.what+" download", "version", sf.version, "offset", d.Offset, "length", sf.length)
			return nil
		}
		a.log.Warn("the saved "+sf.what+" download cannot continue; starting over", "version", sf.version, "err", err)
		sf.r.Reset()
		sf.record(nil)
		sf.count().Restarts++
		if err := saveState(a.cfg.DataDir, sf.s); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(sf.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", sf.path, err)
	}
	// The file's name must survive a power loss as its synced bytes do.
	if err := atomicfile.SyncDir(filepath.Dir(sf.path)); err != nil {
		f.Close()
		return fmt.Errorf("creating %s: %w", sf.path, err)
	}
	sf.f = f
	return nil
}

// resumeStagedFile restores r from pr and opens path cut back to
// pr.Offset; it fails, with r unchanged, when pr does not restore or the
// file is missing or shorter than pr.Offset.
func resumeStagedFile(path string, r *payload.Resumable, pr payload.Progress) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < pr.Offset {
		err = fmt.Errorf("%s has %d bytes, the saved progress claims %d", path, fi.Size(), pr.Offset)
	}
	if err == nil {
		err = f.Truncate(pr.Offset)
	}
	if err == nil {
		err = r.Restore(pr)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// startOver throws the progress away and saves that before anything is
// written again (see Agent.startOver).
func (sf *stagedFetch) startOver() error {
	sf.r.Reset()
	if err := sf.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying %s: %w", sf.f.Name(), err)
	}
	sf.count().Restarts++
	sf.record(nil)
	return saveState(sf.a.cfg.DataDir, sf.s)
}

// verify reads the file back and checks it against the signed hashes.
func (sf *stagedFetch) verify(ctx context.Context) error {
	if _, err := sf.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading back %s: %w", sf.f.Name(), err)
	}
	if _, err := payload.Verify(ctx, bufio.NewReaderSize(sf.f, 1<<16), sf.r.Length(), sf.hashes); err != nil {
		return fmt.Errorf("reading back %s after a resumed download: %w", sf.f.Name(), err)
	}
	return nil
}

// requests runs requests until the file has the whole target or a failure
// is final for this check, with the policy of fetchInto.
func (sf *stagedFetch) requests(ctx context.Context) error {
	a, r := sf.a, sf.r
	err := a.retryDrops(ctx, r, func() error { return sf.transfer(ctx) }, func(err error) {
		a.log.Warn(sf.what+" download interrupted; resuming", "version", sf.version, "offset", r.Offset(), "length", r.Length(), "err", err)
	})
	var de *dropsError
	if errors.As(err, &de) {
		if sf.interrupted == nil {
			return fmt.Errorf("%s download %w", sf.what, err)
		}
		return fmt.Errorf("%w: %w", sf.interrupted, err)
	}
	return err
}

// transfer makes one request for the rest of the target, from r's offset,
// and streams the answer into the file (see Agent.transfer).
func (sf *stagedFetch) transfer(ctx context.Context) error {
	a, r := sf.a, sf.r
	length := r.Length()
	etag := ""
	if d := sf.saved(); d != nil {
		etag = d.ETag
	}
	sf.etag = etag
	var src io.Reader = eof{}
	// A download saved at its very end needs no request.
	if off := r.Offset(); off < length || length == 0 {
		res, err := a.requestRest(ctx, restRequest{what: sf.what, version: sf.version, url: sf.url, length: length, off: off, etag: etag,
			count: sf.count, startOver: sf.startOver})
		if err != nil {
			return err
		}
		defer res.Close()
		etag, sf.etag = res.ETag, res.ETag
		src = &counter{r: res, add: func(n int) { sf.count().Bytes += int64(n) }}
	}
	// The file holds exactly the bytes r covers: a failed write may have
	// left more.
	if err := sf.f.Truncate(r.Offset()); err != nil {
		return fmt.Errorf("cutting %s back to %d bytes: %w", sf.f.Name(), r.Offset(), err)
	}
	if _, err := sf.f.Seek(r.Offset(), io.SeekStart); err != nil {
		return fmt.Errorf("seeking %s to %d: %w", sf.f.Name(), r.Offset(), err)
	}
	jr, err := transfer.OpenJournal(a.cfg.DataDir)
	if err != nil {
		return err
	}
	defer jr.Close()
	cp := payload.Checkpoints{Bytes: sf.every, Interval: CheckpointInterval, Now: a.clock.Now, Background: sf.budget > 0, MaxLag: sf.budget,
		Save: func(pr payload.Progress) (func() error, error) {
			sf.record(&Download{Progress: pr, ETag: etag})
			b, err := encodeState(sf.s)
			if err != nil {
				return nil, err
			}
			return a.checkpointPersist(jr, sf.s.Seq, b), nil
		}}
	_, err = r.Install(ctx, src, powerWriter{sf.f, a.power, sf.point}, cp)
	return err
}
