package agent

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/zstdframe"
)

// Errors of a compressed payload; classify maps them to their classes.
var (
	// errWindowTooLarge: a zstd frame asks for a window larger than
	// release.MaxZstdWindow, more memory than the agent gives a decoder.
	errWindowTooLarge = errors.New("agent: the zstd payload asks for a window larger than the agent allows")
	// errDecode: the payload, verified against the signed hashes, is not a
	// valid zstd stream.
	errDecode = errors.New("agent: the zstd payload does not decode")
	// errImageMismatch: the decompressed image is not the one the signed
	// manifest describes (image_length, image_sha256).
	errImageMismatch = errors.New("agent: the decompressed image does not match the manifest")
)

// downloadZstd is download for a zstd-compressed payload: the bytes on the
// wire stream through the same verification as an uncompressed payload
// (exactly the signed length, every signed hash) while a decoder writes
// the image they decompress to into the slot; then the image is read back
// from the slot and checked against the manifest's image_length and
// image_sha256 before download returns.
//
// Memory: the decoder runs with a window limit of release.MaxZstdWindow,
// low-memory buffers and no concurrency; a frame that asks for a larger
// window is refused (errWindowTooLarge) as soon as its header arrives.
//
// Resume: a decoder's state cannot be checkpointed. So when the data
// directory has room for it and Config.StageCompressed allows (see
// canStage), the compressed payload is first downloaded into stagedFile,
// resumably like any payload (progress in s.Pending.Staged: a dropped
// connection, a stopped agent or a power loss costs only what the last
// checkpoint did not cover), then decompressed from there into the slot; a
// power loss while decompressing decompresses again from the staged file.
// Without room, it is streamed into the slot:
// a dropped connection is then resumed with a Range request from the exact
// offset reached, feeding the same decoder, which is still waiting in
// memory for the rest of its stream (the retry policy of the full payload,
// see retryDrops), and a server that cannot continue (Range ignored, ETag
// changed, 416) makes it start over with a new decoder. A payload made of
// independent zstd frames (`release add --zstd-frame`) is decoded frame by
// frame (zstdframe), and at frame boundaries at least CheckpointBytes of
// image apart the slot is synced and the boundary saved (s.Pending.Download
// with its Image offset): after a power loss or a stopped agent the next
// check resumes there, with a Range request and a new decoder. A payload of
// one frame has no boundary before its end, and starts over from byte 0.
func (a *Agent) downloadZstd(ctx context.Context, s *State, rel *metadata.TargetFiles) error {
	p := s.Pending
	hashes := map[string][]byte{}
	for alg, h := range rel.Hashes {
		hashes[alg] = h
	}
	want, err := hex.DecodeString(p.ImageSHA256)
	if err != nil || len(want) == 0 || p.ImageLength <= 0 {
		return fmt.Errorf("%w: no usable image length and sha256", errImageMismatch)
	}
	if a.canStage(p) {
		return a.downloadStaged(ctx, s, hashes, want)
	}
	a.dropStagedFile()
	p.Staged = nil
	r, err := payload.NewResumable(p.Length, hashes)
	if err != nil {
		return err
	}
	z := &zstdDownload{a: a, s: s, r: r, hashes: hashes, url: a.cfg.Server + deviceapi.TargetPath(deviceapi.ReleaseBase, p.Target, p.SHA256)}
	if d := p.Download; d != nil && d.Image > 0 && d.Image <= p.ImageLength && r.Restore(d.Progress) == nil {
		// A frame boundary saved by an earlier check.
		z.resume, z.etag, z.savedImage = d, d.ETag, d.Image
		a.log.Info("resuming the compressed payload at a frame boundary", "version", p.Version, "offset", d.Offset, "image_offset", d.Image)
	} else if err := a.startOver(s, r); err != nil {
		// Progress saved by an older agent or for an uncompressed download
		// does not apply: start from byte 0.
		return err
	}
	err = a.retryDrops(ctx, r, func() error { return z.transfer(ctx) }, func(err error) {
		a.log.Warn("compressed payload download interrupted; resuming", "version", p.Version, "offset", r.Offset(), "length", p.Length, "err", err)
	})
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
	return a.verifyImage(ctx, p, want)
}

// stageMargin is the free space canStage leaves in the data directory.
const stageMargin = 16 << 20

// canStage reports whether the compressed payload of p fits into the data
// directory, with stageMargin to spare, next to what is staged already.
func (a *Agent) canStage(p *Pending) bool {
	if !a.cfg.StagingEnabled() {
		return false
	}
	free, err := freeBytes(a.cfg.DataDir)
	if err != nil {
		a.log.Warn("free space of the data directory unknown; streaming the compressed payload", "err", err)
		return false
	}
	var have int64
	if fi, err := os.Stat(a.stagedFile()); err == nil && p.Staged != nil {
		have = min(fi.Size(), p.Length)
	}
	if free < p.Length-have+stageMargin {
		a.log.Info("no room to stage the compressed payload; streaming it into the slot (a power loss restarts it from byte 0)",
			"version", p.Version, "bytes", p.Length, "free", free)
		return false
	}
	return true
}

// downloadStaged downloads the compressed payload of s.Pending into
// stagedFile (see stagedFetch), decompresses it into the slot and checks
// the image against want (the manifest's image_sha256).
func (a *Agent) downloadStaged(ctx context.Context, s *State, hashes map[string][]byte, want []byte) error {
	p := s.Pending
	if p.Download != nil {
		// Progress of a streamed download into the slot does not apply.
		p.Download = nil
		if err := a.record(s); err != nil {
			return err
		}
	}
	sf := &stagedFetch{a: a, s: s, what: "compressed payload", version: p.Version, path: a.stagedFile(), point: "stage-write",
		every: CheckpointBytes, budget: a.cfg.lossBudget(), length: p.Length, hashes: hashes,
		url:    a.cfg.Server + deviceapi.TargetPath(deviceapi.ReleaseBase, p.Target, p.SHA256),
		saved:  func() *Download { return p.Staged },
		record: func(d *Download) { p.Staged = d },
		count:  func() *DownloadCount { return s.downloadCount(p) },
	}
	f, err := sf.fetch(ctx)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	w, err := a.openSlot(ctx, p.Slot, 0)
	if err != nil {
		return err
	}
	sink := newZstdSink(powerWriter{payload.WritebackAt(w, 0), a.power, "mid-write"}, p.ImageLength, nil, 0)
	_, err = io.Copy(sink, bufio.NewReaderSize(f, 1<<16))
	if err == nil {
		err = sink.Sync()
	}
	sink.close()
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing slot %s: %w", p.Slot, cerr)
	}
	if err != nil {
		return err
	}
	if err := a.verifyImage(ctx, p, want); err != nil {
		return err
	}
	// The image is in the slot: the staged payload has served.
	a.dropStagedFile()
	p.Staged = nil
	return nil
}

// stagedFile is where a compressed payload waits to be decompressed.
func (a *Agent) stagedFile() string { return filepath.Join(a.cfg.DataDir, "payload.tmp") }

// dropStagedFile removes the staged payload, if any.
func (a *Agent) dropStagedFile() {
	if err := os.Remove(a.stagedFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("removing a staged payload", "err", err)
	}
}

// zstdDownload is the download of one compressed payload over one or more
// requests, into one decoder (sink) writing one slot (w) from byte 0, or
// from a saved frame boundary (resume).
type zstdDownload struct {
	a      *Agent
	s      *State
	r      *payload.Resumable
	hashes map[string][]byte
	url    string
	etag   string // of the latest answer
	w      interface{ Close() error }
	sink   *zstdSink
	// resume is the saved frame boundary the next sink starts at (nil:
	// byte 0); savedImage and savedAt the image offset and time of the
	// last boundary saved.
	resume     *Download
	savedImage int64
	savedAt    time.Time
}

// transfer makes one request for the rest of the compressed payload, from
// r's offset, and streams it through r (length and hashes) into the
// decoder.
func (z *zstdDownload) transfer(ctx context.Context) error {
	a, p, r := z.a, z.s.Pending, z.r
	off := r.Offset()
	res, err := a.requestRest(ctx, restRequest{what: "compressed payload", version: p.Version, url: z.url, length: p.Length, off: off, etag: z.etag,
		count: func() *DownloadCount { return z.s.downloadCount(p) }, startOver: z.startOver})
	if err != nil {
		return err
	}
	defer res.Close()
	z.etag = res.ETag
	if z.sink == nil {
		if err := z.open(ctx); err != nil {
			return err
		}
	}
	src := &counter{r: res, add: func(n int) { z.s.downloadCount(p).Bytes += int64(n) }}
	if _, err := r.Install(ctx, src, framedSink{z}, payload.Checkpoints{}); err != nil {
		return err
	}
	if err := z.close(); err != nil {
		return err
	}
	z.s.downloadCount(p).Complete = true
	return nil
}

// open opens the slot and starts a decoder at r's offset: byte 0, or the
// frame boundary z.resume, whose image bytes the slot holds.
func (z *zstdDownload) open(ctx context.Context) error {
	a, p := z.a, z.s.Pending
	var image int64
	hr, err := payload.NewResumable(p.Length, z.hashes)
	if err != nil {
		return err
	}
	if d := z.resume; d != nil {
		if err := hr.Restore(d.Progress); err != nil {
			return err
		}
		image = d.Image
	}
	w, err := a.openSlot(ctx, p.Slot, image)
	if err != nil {
		return err
	}
	z.w, z.sink = w, newZstdSink(powerWriter{payload.WritebackAt(w, image), a.power, "mid-write"}, p.ImageLength, hr, image)
	z.savedAt = a.clock.Now()
	return nil
}

// framedSink is the sink as Install sees it: before each write it saves
// the latest frame boundary the decoder reached, when one is due.
type framedSink struct{ z *zstdDownload }

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
// saves the state.
func (z *zstdDownload) checkpoint() error {
	b := z.sink.boundary()
	if b == nil || b.image <= z.savedImage {
		return nil
	}
	if b.image-z.savedImage < CheckpointBytes && z.a.clock.Now().Sub(z.savedAt) < CheckpointInterval {
		return nil
	}
	if err := z.sink.dst.Sync(); err != nil {
		return fmt.Errorf("%w at a frame boundary: %w", errSinkWrite, err)
	}
	p := z.s.Pending
	p.Download = &Download{Progress: b.progress, ETag: z.etag, Image: b.image}
	if err := z.a.record(z.s); err != nil {
		return err
	}
	z.savedImage, z.savedAt = b.image, z.a.clock.Now()
	return nil
}

// startOver drops the decoder and the progress, saved or not: the next
// bytes written are the payload's first.
func (z *zstdDownload) startOver() error {
	saved := z.s.Pending.Download != nil
	z.resume, z.savedImage = nil, 0
	if err := z.a.startOver(z.s, z.r); err != nil {
		return err
	}
	if !saved {
		z.s.downloadCount(z.s.Pending).Restarts++
	}
	return z.close()
}

// close stops the decoder, if any, and closes the slot.
func (z *zstdDownload) close() error {
	if z.sink == nil {
		return nil
	}
	z.sink.close()
	err := z.w.Close()
	z.sink, z.w = nil, nil
	if err != nil {
		return fmt.Errorf("closing slot %s: %w", z.s.Pending.Slot, err)
	}
	return nil
}

// verifyImage reads the image back from the slot and checks it against the
// manifest's image_length and image_sha256.
func (a *Agent) verifyImage(ctx context.Context, p *Pending, want []byte) error {
	rd, err := a.slots.OpenReader(ctx, p.Slot)
	if err != nil {
		return fmt.Errorf("reading back slot %s: %w", p.Slot, err)
	}
	defer rd.Close()
	if _, err := payload.Verify(ctx, rd, p.ImageLength, map[string][]byte{"sha256": want}); err != nil {
		if errors.Is(err, payload.ErrHashMismatch) || errors.Is(err, payload.ErrTruncated) {
			return fmt.Errorf("%w: slot %s: %w", errImageMismatch, p.Slot, err)
		}
		return fmt.Errorf("reading back slot %s: %w", p.Slot, err)
	}
	return nil
}

// zstdSink is the payload.Writer that decompresses: compressed bytes
// written to it go through a pipe to a decoder goroutine, which writes the
// image to dst, at most limit bytes.
//
// Errors of dst (the slot, a power loss) and a too-large window fail the
// next Write at once. Any other decoding error is held back until Sync, so
// that payload.Resumable.Install first reads the whole payload and checks
// it against the signed hashes: a payload altered on the way is reported
// as a hash mismatch, not as a decoding failure. Sync reports the decoder's
// error, an image longer or shorter than limit, or dst.Sync's.
//
// The decoder goroutine splits the stream into its zstd frames and decodes
// them one by one; hr hashes the compressed bytes it consumes. After each
// frame it records the boundary: hr's progress there and the image bytes
// written by then.
type zstdSink struct {
	pw   *io.PipeWriter
	done chan struct{}
	dst  payload.Writer
	hr   *payload.Resumable // owned by the decoder goroutine; nil: no boundaries
	// set by the decoder goroutine before done is closed, or (fatal)
	// before the pipe is closed with it
	err     error
	written int64
	limit   int64
	once    sync.Once

	mu   sync.Mutex
	last *frameBoundary // the latest boundary reached
}

// frameBoundary is a point between two zstd frames of the payload.
type frameBoundary struct {
	progress payload.Progress // of the compressed bytes up to it
	image    int64            // image bytes decoded and written up to it
}

// boundary returns the latest frame boundary the decoder reached, or nil.
func (z *zstdSink) boundary() *frameBoundary {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.last
}

// errDecodeHeld stops the pipe's reader side once the decoder failed in a
// way that Write ignores; Write then discards the rest.
var errDecodeHeld = errors.New("agent: zstd decoding failed; error held for after the hash check")

// newZstdSink starts a decoder writing to dst, which already holds the
// image's first image bytes (of limit). hr hashes the compressed bytes from
// where they begin (a frame boundary) so that boundaries can be saved; the
// download's own Resumable hashes them too, for the final check, ahead of
// the decoder. With hr nil (a staged payload, verified already) nothing is
// hashed and no boundary recorded.
func newZstdSink(dst payload.Writer, limit int64, hr *payload.Resumable, image int64) *zstdSink {
	pr, pw := io.Pipe()
	z := &zstdSink{pw: pw, done: make(chan struct{}), dst: dst, limit: limit, hr: hr, written: image}
	go func() {
		defer close(z.done)
		z.err = z.decode(pr)
		if z.err == nil {
			pr.Close()
			return
		}
		if errors.Is(z.err, errWindowTooLarge) || errors.Is(z.err, errSinkWrite) {
			pr.CloseWithError(z.err)
			return
		}
		pr.CloseWithError(errDecodeHeld)
	}()
	return z
}

// errSinkWrite marks a failure of the sink's destination.
var errSinkWrite = errors.New("agent: writing the decompressed image")

func (z *zstdSink) decode(pr io.Reader) error {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxWindow(release.MaxZstdWindow), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderConcurrency(1))
	if err != nil {
		return zstdErr(err)
	}
	defer dec.Close()
	// hr sees exactly the bytes of the frames read: at a boundary, its
	// offset is the boundary's.
	var sp *zstdframe.Splitter
	if z.hr != nil {
		sp = zstdframe.New(io.TeeReader(pr, z.hr), z.hr.Offset())
	} else {
		sp = zstdframe.New(pr, 0)
	}
	buf := make([]byte, 256<<10)
	for {
		fr, err := sp.Next()
		if err == io.EOF {
			if z.written != z.limit {
				return fmt.Errorf("%w: it has %d bytes, the manifest's image_length says %d", errImageMismatch, z.written, z.limit)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errDecode, err)
		}
		if err := z.frame(dec, fr, buf); err != nil {
			return err
		}
		if z.hr == nil {
			continue
		}
		p, err := z.hr.Progress()
		if err != nil {
			return err
		}
		z.mu.Lock()
		z.last = &frameBoundary{progress: p, image: z.written}
		z.mu.Unlock()
	}
}

// frame decodes one frame into dst.
func (z *zstdSink) frame(dec *zstd.Decoder, fr io.Reader, buf []byte) error {
	if err := dec.Reset(fr); err != nil {
		return zstdErr(err)
	}
	for {
		n, rerr := dec.Read(buf)
		if n > 0 {
			if z.written+int64(n) > z.limit {
				return fmt.Errorf("%w: it is longer than the manifest's image_length %d", errImageMismatch, z.limit)
			}
			if _, werr := z.dst.Write(buf[:n]); werr != nil {
				return fmt.Errorf("%w at offset %d: %w", errSinkWrite, z.written, werr)
			}
			z.written += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return zstdErr(rerr)
		}
	}
	// The decoder ends a frame at its last block; the frame's reader
	// must be at its end too.
	if n, err := io.Copy(io.Discard, fr); n > 0 || err != nil {
		return fmt.Errorf("%w: %d bytes after the end of a frame (%v)", errDecode, n, err)
	}
	return nil
}

// zstdErr translates the decoder's errors into the agent's.
func zstdErr(err error) error {
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return fmt.Errorf("%w (%d bytes): %v", errWindowTooLarge, release.MaxZstdWindow, err)
	}
	return fmt.Errorf("%w: %v", errDecode, err)
}

func (z *zstdSink) Write(b []byte) (int, error) {
	n, err := z.pw.Write(b)
	if errors.Is(err, errDecodeHeld) {
		return len(b), nil
	}
	return n, err
}

// Sync waits for the decoder to finish the image and syncs dst.
func (z *zstdSink) Sync() error {
	z.once.Do(func() { z.pw.Close() })
	<-z.done
	if z.err != nil {
		return z.err
	}
	return z.dst.Sync()
}

// close stops the decoder if Sync did not run, and waits for it.
func (z *zstdSink) close() error {
	z.once.Do(func() { z.pw.CloseWithError(errors.New("agent: compressed download ended early")) })
	<-z.done
	return nil
}
