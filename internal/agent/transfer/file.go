package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/atomicfile"
)

// StagedFile is where a compressed payload waits to be decompressed.
func (d *Downloader) StagedFile() string { return filepath.Join(d.Dir, "payload.tmp") }

// DeltaFile is where a downloaded delta waits to be applied.
func (d *Downloader) DeltaFile() string { return filepath.Join(d.Dir, "delta.tmp") }

// DropStaged removes the staged payload, if any.
func (d *Downloader) DropStaged() { d.remove(d.StagedFile(), "removing a staged payload") }

// DropDelta removes the downloaded delta, if any.
func (d *Downloader) DropDelta() { d.remove(d.DeltaFile(), "removing a leftover delta") }

// fileFetch is the download of one signed target into a file in the data
// directory (a delta, or a compressed payload staged before it is
// decompressed into the slot), over one or more requests and across
// checks: its progress is the run's, and the file keeps the bytes that
// progress claims.
//
// It continues from the saved progress when the file still holds the bytes
// that progress claims: the file is cut back to the saved offset and the
// rest is asked for with a Range request. A file shorter than that, or
// progress that does not restore, starts over from byte 0. The progress is
// saved as the download goes (every bytes: each save syncs the file and
// writes the state into the checkpoint journal; with budget, in the
// background, see Downloader.LossBudget; without, before the download goes
// on, so a power loss costs at most every bytes and the buffer being
// filled), and once more when it is complete. A dropped connection is
// resumed from the exact offset reached (see retry); a server that cannot
// continue (Range ignored, 416) makes it start over (see
// requestRest). A file whose first bytes came from saved progress is read
// back and verified; if that, or the hash of the resumed stream, does not
// match, the target is downloaded once more from byte 0.
type fileFetch struct {
	*run
	path  string
	point string // power point of the file's writes
	every int64  // checkpoint every this many bytes
	// budget, if not 0, lets checkpoints run in the background with fewer
	// than budget bytes written and not covered by a saved one before each
	// buffer (payload.Checkpoints.MaxLag).
	budget int64
	// window raises budget to the bytes the link moves in it
	// (payload.Checkpoints.Window).
	window time.Duration
	// interrupted, if set, wraps the error of a link that dropped the
	// download MaxAttempts times in a row.
	interrupted error

	f *os.File
}

// fetch downloads the target into ff.path, verified against its signed
// length and hashes, and returns the file (open for reading and writing).
func (ff *fileFetch) fetch(ctx context.Context) (*os.File, error) {
	defer ff.report()
	if err := ff.dropOther(); err != nil {
		return nil, err
	}
	if err := ff.open(); err != nil {
		return nil, err
	}
	r := ff.r
	err := ff.requests(ctx)
	if err == nil && r.Restored() {
		err = ff.verify(ctx)
	}
	if err != nil && (r.Restored() || ff.pieced) && errors.Is(err, payload.ErrHashMismatch) {
		// A prefix taken from saved progress, or from an earlier answer
		// of this check, makes a mismatch ambiguous: the file, the saved
		// hash states or bytes changed on the server under the same name
		// between two answers may be what is wrong. Only a download from
		// byte 0 tells.
		ff.d.Log.Warn("the resumed "+ff.what+" does not verify; downloading it again", "version", ff.j.Version, "err", err)
		err = ff.startOver()
		if err == nil {
			err = ff.requests(ctx)
		}
	}
	if err == nil {
		// Complete and synced (Install syncs on success): save that, so
		// that a power loss after this does not download it again.
		var pr payload.Progress
		if pr, err = r.Progress(); err == nil {
			ff.record(&Progress{Route: ff.route, Progress: pr})
			ff.count.Complete = true
			err = ff.save()
		}
	}
	if err != nil {
		ff.f.Close()
		return nil, err
	}
	return ff.f, nil
}

// open opens the file: at the saved progress when it can continue from
// there, else empty, with the progress dropped and that saved first.
func (ff *fileFetch) open() error {
	if s := ff.saved; s != nil {
		f, err := resumeFile(ff.path, ff.r, s.Progress)
		if err == nil {
			ff.f = f
			ff.d.Log.Info("resuming the "+ff.what+" download", "version", ff.j.Version, "offset", s.Offset, "length", ff.r.Length())
			return nil
		}
		ff.d.Log.Warn("the saved "+ff.what+" download cannot continue; starting over", "version", ff.j.Version, "err", err)
		ff.r.Reset()
		ff.record(nil)
		ff.count.Restarts++
		if err := ff.save(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(ff.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", ff.path, err)
	}
	// The file's name must survive a power loss as its synced bytes do.
	if err := atomicfile.SyncDir(filepath.Dir(ff.path)); err != nil {
		f.Close()
		return fmt.Errorf("creating %s: %w", ff.path, err)
	}
	ff.f = f
	return nil
}

// resumeFile restores r from pr and opens path cut back to pr.Offset; it
// fails, with r unchanged, when pr does not restore or the file is missing
// or shorter than pr.Offset.
func resumeFile(path string, r *payload.Resumable, pr payload.Progress) (*os.File, error) {
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
// written again (see startOverSlot).
func (ff *fileFetch) startOver() error {
	ff.r.Reset()
	if err := ff.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying %s: %w", ff.f.Name(), err)
	}
	ff.count.Restarts++
	ff.record(nil)
	return ff.save()
}

// verify reads the file back and checks it against the signed hashes.
func (ff *fileFetch) verify(ctx context.Context) error {
	if _, err := ff.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading back %s: %w", ff.f.Name(), err)
	}
	if _, err := payload.Verify(ctx, bufio.NewReaderSize(ff.f, 1<<16), ff.r.Length(), ff.j.Target.Hashes); err != nil {
		return fmt.Errorf("reading back %s after a resumed download: %w", ff.f.Name(), err)
	}
	return nil
}

// requests runs requests until the file has the whole target or a failure
// is final for this check (see retry).
func (ff *fileFetch) requests(ctx context.Context) error {
	err := ff.retry(ctx, func() error { return ff.request(ctx) })
	var de *dropsError
	if errors.As(err, &de) {
		if ff.interrupted == nil {
			return fmt.Errorf("%s download %w", ff.what, err)
		}
		return fmt.Errorf("%w: %w", ff.interrupted, err)
	}
	return err
}

// request makes one request for the rest of the target, from r's offset,
// and streams the answer into the file.
func (ff *fileFetch) request(ctx context.Context) error {
	r := ff.r
	defer ff.report()
	src, done, err := ff.rest(ctx, ff.startOver)
	if err != nil {
		return err
	}
	defer done()
	// The file holds exactly the bytes r covers: a failed write may have
	// left more.
	if err := ff.f.Truncate(r.Offset()); err != nil {
		return fmt.Errorf("cutting %s back to %d bytes: %w", ff.f.Name(), r.Offset(), err)
	}
	if _, err := ff.f.Seek(r.Offset(), io.SeekStart); err != nil {
		return fmt.Errorf("seeking %s to %d: %w", ff.f.Name(), r.Offset(), err)
	}
	jr, err := OpenJournal(ff.d.Dir)
	if err != nil {
		return err
	}
	defer jr.Close()
	cp := payload.Checkpoints{Bytes: ff.every, Interval: CheckpointInterval, Now: ff.d.Now, Background: ff.budget > 0, MaxLag: ff.budget,
		Window: ff.window,
		Save: func(pr payload.Progress) (func() error, error) {
			return ff.checkpoint(jr, Progress{Route: ff.route, Progress: pr})
		}}
	_, err = r.Install(ctx, src, powerWriter{ff.f, ff.d, ff.point}, cp)
	return err
}
