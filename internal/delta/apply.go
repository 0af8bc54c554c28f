package delta

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Source is the image a delta is applied to, typically the active slot.
type Source struct {
	R    io.ReaderAt
	Size int64
	// SHA256 is the hash of the first Size bytes of R, computed (or taken from a verified
	// cache) by the caller. Apply refuses a delta made for any other source.
	SHA256 [32]byte
}

// Apply reads a delta from patch and writes the target image to dst in order, reading src
// with random access. It returns the delta's header. It returns nil only if the full target
// was written and its SHA-256 matches the header; otherwise dst holds garbage and must not be
// used. Memory use is bounded (about 13 MiB: the model's 8 MiB and five MaxOpLength buffers:
// the op's diff, its output and three in the pipe) whatever the image sizes. The target is
// hashed and written by two more goroutines, which have ended when Apply returns. ctx is
// checked every 256 ops.
func Apply(ctx context.Context, dst io.Writer, src Source, patch io.Reader) (Header, error) {
	h, err := ReadHeader(patch)
	if err != nil {
		return h, err
	}
	if h.SourceSize != src.Size || h.SourceSHA256 != src.SHA256 {
		return h, fmt.Errorf("%w: delta is for a %d-byte source with SHA-256 %x", ErrSourceMismatch, h.SourceSize, h.SourceSHA256)
	}
	r, ok := patch.(*bufio.Reader)
	if !ok {
		r = bufio.NewReaderSize(patch, 1<<16)
	}
	a := applier{
		h:    h,
		src:  src,
		r:    r,
		out:  newPipeWriter(dst),
		m:    newModel(),
		buf:  make([]byte, MaxOpLength),
		diff: make([]byte, MaxOpLength),
	}
	err = a.run(ctx)
	if cerr := a.out.close(); err == nil {
		err = cerr
	}
	return h, err
}

type applier struct {
	h         Header
	src       Source
	r         *bufio.Reader
	out       *pipeWriter
	m         *model
	written   int64
	last      uint32 // last four target bytes written, the last one in the low byte
	pos       int64  // source position
	buf, diff []byte
}

// swapMin is the output length from which the applier hands its op buffer to the pipe
// instead of copying it.
const swapMin = 64 << 10

// write outputs p, which is a prefix of a.buf. A long p is handed over whole and a.buf
// replaced by a fresh buffer, so a.buf's contents are undefined after write.
func (a *applier) write(p []byte) error {
	for _, b := range p[max(len(p)-4, 0):] {
		a.last = a.last<<8 | uint32(b)
	}
	if len(p) >= swapMin {
		b, err := a.out.swap(p)
		if err != nil {
			return err
		}
		a.buf = b[:MaxOpLength]
	} else if _, err := a.out.Write(p); err != nil {
		return err
	}
	a.written += int64(len(p))
	return nil
}

func (a *applier) run(ctx context.Context) error {
	c := newDecoder(a.r)
	for n := 0; ; n++ {
		if n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if c.err != nil {
			return c.err
		}
		if c.bit(&a.m.more, 0) == 0 {
			break
		}
		if err := a.op(c); err != nil {
			return err
		}
	}
	if c.err != nil {
		return c.err
	}
	// The body must end exactly here.
	if _, err := a.r.ReadByte(); err == nil {
		return fmt.Errorf("%w: data after the end of the body", ErrCorrupt)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("delta: reading delta: %w", err)
	}
	if a.written != a.h.TargetSize {
		return fmt.Errorf("%w: wrote %d of %d target bytes", ErrCorrupt, a.written, a.h.TargetSize)
	}
	if err := a.out.close(); err != nil {
		return err
	}
	if [32]byte(a.out.hash.Sum(nil)) != a.h.TargetSHA256 {
		return ErrTargetMismatch
	}
	return nil
}

// op decodes and applies one op.
func (a *applier) op(c *rangeCoder) error {
	var o op
	stored := a.m.codeOp(c, &o, false)
	if c.err != nil {
		return c.err
	}
	size := a.src.Size
	switch {
	case o.add < 0 || o.add > MaxOpLength || o.extra < 0 || o.extra > MaxOpLength || o.add+o.extra == 0:
		return fmt.Errorf("%w: op lengths %d, %d", ErrCorrupt, o.add, o.extra)
	case o.seek < -size || o.seek > size || a.pos+o.seek < 0 || a.pos+o.seek > size-o.add:
		return fmt.Errorf("%w: source range %d%+d, %d bytes outside the %d-byte source", ErrCorrupt, a.pos, o.seek, o.add, size)
	case o.add+o.extra > a.h.TargetSize-a.written:
		return fmt.Errorf("%w (%d bytes)", ErrTooLong, a.h.TargetSize)
	}
	a.pos += o.seek
	if o.add > 0 {
		b, d := a.buf[:o.add], a.diff[:o.add]
		if _, err := a.src.R.ReadAt(b, a.pos); err != nil {
			return fmt.Errorf("delta: reading source at %d: %w", a.pos, err)
		}
		k, err := a.m.codeDiff(c, a.written, b, d)
		if c.err != nil {
			return c.err
		}
		if err != nil {
			return err
		}
		addBytes(b[:k], d[:k]) // diff bytes from k on are zero
		if err := a.write(b); err != nil {
			return err
		}
		a.pos += o.add
	}
	if o.extra == 0 {
		return nil
	}
	b := a.buf[:o.extra]
	if stored {
		// The range coder stream ends before raw bytes and a new one starts after them.
		if _, err := io.ReadFull(a.r, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: stored extra bytes", ErrTruncated)
			}
			return fmt.Errorf("delta: reading delta: %w", err)
		}
		c.start()
	} else {
		a.m.codeLit(c, a.last, b)
		if c.err != nil {
			return c.err
		}
	}
	return a.write(b)
}

// addBytes sets dst[i] += d[i], skipping zero words (most diff bytes are zero).
func addBytes(dst, d []byte) {
	i := 0
	for ; i+8 <= len(d); i += 8 {
		w := binary.LittleEndian.Uint64(d[i:])
		if w == 0 {
			continue
		}
		for j := i; j < i+8; j++ {
			dst[j] += d[j]
		}
	}
	for ; i < len(d); i++ {
		dst[i] += d[i]
	}
}
