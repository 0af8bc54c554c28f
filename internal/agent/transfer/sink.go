package transfer

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/zstdframe"
)

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
var errDecodeHeld = errors.New("transfer: zstd decoding failed; error held for after the hash check")

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
		if errors.Is(z.err, ErrWindowTooLarge) || errors.Is(z.err, errSinkWrite) {
			pr.CloseWithError(z.err)
			return
		}
		pr.CloseWithError(errDecodeHeld)
	}()
	return z
}

// errSinkWrite marks a failure of the sink's destination.
var errSinkWrite = errors.New("transfer: writing the decompressed image")

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
				return fmt.Errorf("%w: it has %d bytes, the manifest's image_length says %d", ErrImageMismatch, z.written, z.limit)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrDecode, err)
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
				return fmt.Errorf("%w: it is longer than the manifest's image_length %d", ErrImageMismatch, z.limit)
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
		return fmt.Errorf("%w: %d bytes after the end of a frame (%v)", ErrDecode, n, err)
	}
	return nil
}

// zstdErr translates the decoder's errors into the package's.
func zstdErr(err error) error {
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return fmt.Errorf("%w (%d bytes): %v", ErrWindowTooLarge, release.MaxZstdWindow, err)
	}
	return fmt.Errorf("%w: %v", ErrDecode, err)
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
	z.once.Do(func() { z.pw.CloseWithError(errors.New("transfer: compressed download ended early")) })
	<-z.done
	return nil
}
