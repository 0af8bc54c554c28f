package transfer

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// Compressed writes into j.Slot the image that j.Target, a zstd payload,
// decompresses to: the bytes on the wire stream through the same
// verification as Plain's (exactly the signed length, every signed hash)
// while a decoder writes the image into the slot; then the image is read
// back from the slot and checked against img before Compressed returns.
//
// Memory: the decoder runs with a window limit of release.MaxZstdWindow,
// low-memory buffers and no concurrency; a frame that asks for a larger
// window is refused (ErrWindowTooLarge) as soon as its header arrives.
//
// Resume: a decoder's state cannot be checkpointed. So when staging is
// allowed and the data directory has room for it (see canStage), the
// payload is first downloaded into StagedFile, resumably like any payload
// (RouteStaged: a dropped connection, a stopped agent or a power loss costs
// only what the last checkpoint did not cover), then decompressed from
// there into the slot; a power loss while decompressing decompresses again
// from the staged file. Without, it is streamed into the slot
// (RouteZstdStream): a dropped connection is then resumed with a Range
// request from the exact offset reached, feeding the same decoder, which is
// still waiting in memory for the rest of its stream (see retry), and a
// server that cannot continue (Range ignored, 416) makes it
// start over with a new decoder. A payload made of independent zstd frames
// (`release add --zstd-frame`) is decoded frame by frame (zstdframe), and
// at frame boundaries at least CheckpointBytes of image apart the slot is
// synced and the boundary saved (Progress.Image): after a power loss or a
// stopped agent the next check resumes there, with a Range request and a
// new decoder. A payload of one frame has no boundary before its end, and
// starts over from byte 0.
func (d *Downloader) Compressed(ctx context.Context, j Job, img Image, staging bool) error {
	want, err := hex.DecodeString(img.SHA256)
	if err != nil || len(want) == 0 || img.Length <= 0 {
		return fmt.Errorf("%w: no usable image length and sha256", ErrImageMismatch)
	}
	if staging && d.canStage(j) {
		return d.staged(ctx, j, img, want)
	}
	return d.stream(ctx, j, img, want)
}

// stageMargin is the free space canStage leaves in the data directory.
const stageMargin = 16 << 20

// canStage reports whether j's compressed payload fits into the data
// directory, with stageMargin to spare, next to what is staged already.
func (d *Downloader) canStage(j Job) bool {
	free, err := freeBytes(d.Dir)
	if err != nil {
		d.Log.Warn("free space of the data directory unknown; streaming the compressed payload", "err", err)
		return false
	}
	length := j.Target.Length
	var have int64
	if fi, err := os.Stat(d.StagedFile()); err == nil && j.Saved != nil && j.Saved.Route == RouteStaged {
		have = min(fi.Size(), length)
	}
	if free < length-have+stageMargin {
		d.Log.Info("no room to stage the compressed payload; streaming it into the slot (a power loss restarts it from byte 0)",
			"version", j.Version, "bytes", length, "free", free)
		return false
	}
	return true
}

// staged downloads j's compressed payload into StagedFile (see fileFetch),
// decompresses it into the slot and checks the image against img.
func (d *Downloader) staged(ctx context.Context, j Job, img Image, want []byte) error {
	t, err := d.start(j, RouteStaged, "compressed payload")
	if err != nil {
		return err
	}
	ff := &fileFetch{run: t, path: d.StagedFile(), point: "stage-write", every: CheckpointBytes, budget: d.LossBudget, window: d.LossWindow}
	f, err := ff.fetch(ctx)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	w, err := t.openSlot(ctx, 0)
	if err != nil {
		return err
	}
	sink := newZstdSink(powerWriter{payload.WritebackAt(w, 0), d, "mid-write"}, img.Length, nil, 0)
	_, err = io.Copy(sink, bufio.NewReaderSize(f, 1<<16))
	if err == nil {
		err = sink.Sync()
	}
	sink.close()
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing slot %s: %w", j.Slot, cerr)
	}
	if err != nil {
		return err
	}
	if err := t.verifyImage(ctx, img.Length, want); err != nil {
		return err
	}
	// The image is in the slot: the staged payload has served.
	d.DropStaged()
	t.record(nil)
	return nil
}

// stream is the download of j's compressed payload into the slot over one
// or more requests, into one decoder (sink) writing the slot (w) from
// byte 0, or from a saved frame boundary (resume).
type stream struct {
	*run
	img  Image
	w    Writer
	sink *zstdSink
	// resume is the saved frame boundary the next sink starts at (nil:
	// byte 0); savedImage and savedAt the image offset and time of the
	// last boundary saved.
	resume     *Progress
	savedImage int64
	savedAt    time.Time
}

// stream downloads j's compressed payload into the slot, decoding it as
// it arrives, and checks the image against img.
func (d *Downloader) stream(ctx context.Context, j Job, img Image, want []byte) error {
	d.DropStaged()
	t, err := d.start(j, RouteZstdStream, "compressed payload")
	if err != nil {
		return err
	}
	defer t.report()
	if t.saved != nil && t.saved.Route == RouteStaged {
		t.record(nil)
	}
	z := &stream{run: t, img: img}
	if s := t.saved; s != nil && s.Route == RouteZstdStream && s.Image > 0 && s.Image <= img.Length && t.r.Restore(s.Progress) == nil {
		// A frame boundary saved by an earlier check.
		z.resume, z.savedImage = s, s.Image
		d.Log.Info("resuming the compressed payload at a frame boundary", "version", j.Version, "offset", s.Offset, "image_offset", s.Image)
	} else if err := t.startOverSlot(); err != nil {
		// Progress saved for another route does not apply: start from
		// byte 0.
		return err
	}
	err = t.retry(ctx, func() error { return z.request(ctx) })
	if cerr := z.close(); err == nil {
		err = cerr
	}
	var de *dropsError
	if errors.As(err, &de) {
		return fmt.Errorf("compressed payload download %w", err)
	}
	if err != nil {
		return err
	}
	return t.verifyImage(ctx, img.Length, want)
}

// request makes one request for the rest of the compressed payload, from
// r's offset, and streams it through r (length and hashes) into the
// decoder.
func (z *stream) request(ctx context.Context) error {
	res, err := z.requestRest(ctx, z.startOver)
	if err != nil {
		return err
	}
	defer res.Close()
	defer z.report()
	if z.sink == nil {
		if err := z.open(ctx); err != nil {
			return err
		}
	}
	if _, err := z.r.Install(ctx, z.source(res), framedSink{z}, payload.Checkpoints{}); err != nil {
		return err
	}
	if err := z.close(); err != nil {
		return err
	}
	z.count.Complete = true
	return nil
}

// open opens the slot and starts a decoder at r's offset: byte 0, or the
// frame boundary z.resume, whose image bytes the slot holds.
func (z *stream) open(ctx context.Context) error {
	var image int64
	hr, err := payload.NewResumable(z.j.Target.Length, z.j.Target.Hashes)
	if err != nil {
		return err
	}
	if s := z.resume; s != nil {
		if err := hr.Restore(s.Progress); err != nil {
			return err
		}
		image = s.Image
	}
	w, err := z.openSlot(ctx, image)
	if err != nil {
		return err
	}
	z.w, z.sink = w, newZstdSink(powerWriter{payload.WritebackAt(w, image), z.d, "mid-write"}, z.img.Length, hr, image)
	z.savedAt = z.d.Now()
	return nil
}

// framedSink is the sink as Install sees it: before each write it saves
// the latest frame boundary the decoder reached, when one is due.
type framedSink struct{ z *stream }

func (f framedSink) Write(b []byte) (int, error) {
	if err := f.z.checkpoint(); err != nil {
		return 0, err
	}
	return f.z.sink.Write(b)
}

func (f framedSink) Sync() error { return f.z.sink.Sync() }

// checkpoint saves the latest frame boundary of the decoder, if it is
// CheckpointBytes of image or CheckpointInterval past the last one saved:
// it syncs the slot, which then holds the boundary's image bytes, and
// saves the state (replacing the state file).
func (z *stream) checkpoint() error {
	b := z.sink.boundary()
	if b == nil || b.image <= z.savedImage {
		return nil
	}
	if b.image-z.savedImage < CheckpointBytes && z.d.Now().Sub(z.savedAt) < CheckpointInterval {
		return nil
	}
	if err := z.sink.dst.Sync(); err != nil {
		return fmt.Errorf("%w at a frame boundary: %w", errSinkWrite, err)
	}
	z.record(&Progress{Route: RouteZstdStream, Progress: b.progress, Image: b.image})
	if err := z.save(); err != nil {
		return err
	}
	z.savedImage, z.savedAt = b.image, z.d.Now()
	return nil
}

// startOver drops the decoder and the progress, saved or not: the next
// bytes written are the payload's first.
func (z *stream) startOver() error {
	saved := z.saved != nil
	z.resume, z.savedImage = nil, 0
	if err := z.startOverSlot(); err != nil {
		return err
	}
	if !saved {
		z.count.Restarts++
	}
	return z.close()
}

// close stops the decoder, if any, and closes the slot.
func (z *stream) close() error {
	if z.sink == nil {
		return nil
	}
	z.sink.close()
	err := z.w.Close()
	z.sink, z.w = nil, nil
	if err != nil {
		return fmt.Errorf("closing slot %s: %w", z.j.Slot, err)
	}
	return nil
}

// verifyImage reads the image back from the slot and checks it against the
// manifest's image_length and image_sha256.
func (t *run) verifyImage(ctx context.Context, length int64, want []byte) error {
	rd, err := t.j.Slot.OpenReader(ctx)
	if err != nil {
		return fmt.Errorf("reading back slot %s: %w", t.j.Slot, err)
	}
	defer rd.Close()
	if _, err := payload.Verify(ctx, rd, length, map[string][]byte{"sha256": want}); err != nil {
		if errors.Is(err, payload.ErrHashMismatch) || errors.Is(err, payload.ErrTruncated) {
			return fmt.Errorf("%w: slot %s: %w", ErrImageMismatch, t.j.Slot, err)
		}
		return fmt.Errorf("reading back slot %s: %w", t.j.Slot, err)
	}
	return nil
}
