package transfer

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/delta"
)

// Source is the image a delta applies to: the first Length bytes of the
// active slot, which the caller found to hash to SHA256 (delta.Apply
// refuses a delta made for any other source).
type Source struct {
	Slot Slot
	// Version is the release the slot runs, for messages.
	Version string
	Length  int64
	SHA256  [32]byte
}

// Delta writes img into j.Slot from j.Target, a delta from src: it
// downloads the delta (verified against its signed length and hashes)
// into DeltaFile, checks that the delta's declared target is img, and
// applies it with src as the source. delta.Apply checks the bytes it hands
// to the slot against that target hash, so the slot is not read back (as
// after Plain).
//
// The download records its progress (RouteDelta, see fileFetch), every
// DeltaCheckpointBytes, each save done before the download goes on, so a
// dropped connection is resumed with a Range request within this call, and
// a power loss or a stopped agent leaves the progress and the file for the
// next call, which resumes it. The same holds after a power loss during
// the apply: the progress then says the delta is complete, and the next
// call reads the file back, verifies it and applies it again into the slot
// from byte 0. A link that drops the download MaxAttempts times in a row
// gives ErrDeltaInterrupted. Delta leaves the progress and the file in
// place whatever the outcome: dropping them is the caller's (DropDelta).
func (d *Downloader) Delta(ctx context.Context, j Job, src Source, img Image) error {
	f, err := d.fetchDelta(ctx, j)
	if err != nil {
		return err
	}
	defer f.Close()
	// The delta must produce exactly the manifest's image: then Apply's
	// check of the written bytes against the header's target hash is the
	// image check, and the slot need not be read back.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading the delta: %w", err)
	}
	h, err := delta.ReadHeader(f)
	if err != nil {
		return fmt.Errorf("reading the delta: %w", err)
	}
	if h.TargetSize != img.Length || hex.EncodeToString(h.TargetSHA256[:]) != img.SHA256 {
		return fmt.Errorf("%w: the delta makes a %d-byte image with SHA-256 %x, the manifest's image has %d bytes and SHA-256 %s",
			ErrDeltaTarget, h.TargetSize, h.TargetSHA256, img.Length, img.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading the delta: %w", err)
	}
	rd, err := src.Slot.OpenReader(ctx)
	if err != nil {
		return fmt.Errorf("opening slot %s for reading: %w", src.Slot, err)
	}
	defer rd.Close()
	ra, ok := rd.(io.ReaderAt)
	if !ok {
		return ErrDeltaNoReaderAt
	}
	w, err := j.Slot.OpenWriter(ctx, 0)
	if err != nil {
		return fmt.Errorf("opening slot %s at offset 0: %w", j.Slot, err)
	}
	bw := bufio.NewWriterSize(powerWriter{payload.WritebackAt(w, 0), d, "mid-write"}, 1<<20)
	_, err = delta.Apply(ctx, bw, delta.Source{R: ra, Size: src.Length, SHA256: src.SHA256}, bufio.NewReaderSize(io.LimitReader(f, j.Target.Length), 1<<16))
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("applying the delta from %s: %w", src.Version, err)
	}
	return nil
}

// fetchDelta downloads j's delta into DeltaFile, verified against its
// signed length and hashes, and returns the file (open for reading and
// writing).
func (d *Downloader) fetchDelta(ctx context.Context, j Job) (*os.File, error) {
	t, err := d.start(j, RouteDelta, "delta")
	if err != nil {
		return nil, fmt.Errorf("downloading the delta: %w", err)
	}
	ff := &fileFetch{run: t, path: d.DeltaFile(), point: "delta-write", every: DeltaCheckpointBytes, interrupted: ErrDeltaInterrupted}
	f, err := ff.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("downloading the delta: %w", err)
	}
	return f, nil
}
