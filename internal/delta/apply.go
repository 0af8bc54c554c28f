package delta

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
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
// used. Memory use is bounded (about 20 MiB) whatever the image sizes. ctx is checked between
// blocks.
func Apply(ctx context.Context, dst io.Writer, src Source, patch io.Reader) (Header, error) {
	h, err := ReadHeader(patch)
	if err != nil {
		return h, err
	}
	if h.SourceSize != src.Size || h.SourceSHA256 != src.SHA256 {
		return h, fmt.Errorf("%w: delta is for a %d-byte source with SHA-256 %x", ErrSourceMismatch, h.SourceSize, h.SourceSHA256)
	}
	zr, err := zstd.NewReader(patch,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderMaxMemory(MaxWindow+(1<<20)))
	if err != nil {
		return h, fmt.Errorf("delta: zstd decoder: %w", err)
	}
	defer zr.Close()
	a := applier{
		h:    h,
		src:  src,
		r:    bufio.NewReaderSize(zr, 1<<16),
		hash: sha256.New(),
		dst:  dst,
	}
	if err := a.run(ctx); err != nil {
		return h, err
	}
	return h, nil
}

type applier struct {
	h    Header
	src  Source
	r    *bufio.Reader
	hash interface {
		io.Writer
		Sum([]byte) []byte
	}
	dst     io.Writer
	written int64
	pos     int64 // source position
	ops     []op
	runs    []byte // the block's run-length sections: zruns, then nzruns
	zruns   []byte // unread zero-run lengths
	nzruns  []byte // unread nonzero-run lengths
	vals    []byte // unread nonzero diff values of the block
	z, nz   int    // rest of the current (zeros, nonzeros) pair
	diff    []byte
	buf     []byte
}

// readErr classifies an error from the compressed body.
func readErr(what string, err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s", ErrTruncated, what)
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return fmt.Errorf("%w: %s: %v (limit %d bytes)", ErrWindowTooLarge, what, err, MaxWindow)
	default:
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
	}
}

func (a *applier) uvarint(what string) (uint64, error) {
	v, err := binary.ReadUvarint(a.r)
	if err != nil {
		return 0, readErr(what, err)
	}
	return v, nil
}

func (a *applier) write(p []byte) error {
	if int64(len(p)) > a.h.TargetSize-a.written {
		return fmt.Errorf("%w (%d bytes)", ErrTooLong, a.h.TargetSize)
	}
	a.hash.Write(p)
	if _, err := a.dst.Write(p); err != nil {
		return fmt.Errorf("delta: writing target: %w", err)
	}
	a.written += int64(len(p))
	return nil
}

func (a *applier) run(ctx context.Context) error {
	a.diff = make([]byte, diffChunk)
	a.runs = make([]byte, 0, MaxDiffRuns)
	a.vals = make([]byte, 0, MaxDiffValues)
	a.buf = make([]byte, diffChunk)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		nops, err := a.uvarint("block")
		if err != nil {
			return err
		}
		if nops == 0 {
			break
		}
		if nops > MaxOpsPerBlock {
			return fmt.Errorf("%w: block of %d ops", ErrCorrupt, nops)
		}
		if err := a.block(ctx, int(nops)); err != nil {
			return err
		}
	}
	// The body must end exactly here (checks the zstd frame's checksum too).
	if _, err := a.r.ReadByte(); err == nil {
		return fmt.Errorf("%w: data after the end marker", ErrCorrupt)
	} else if !errors.Is(err, io.EOF) {
		return readErr("end", err)
	}
	if a.written != a.h.TargetSize {
		return fmt.Errorf("%w: wrote %d of %d target bytes", ErrCorrupt, a.written, a.h.TargetSize)
	}
	if [32]byte(a.hash.Sum(nil)) != a.h.TargetSHA256 {
		return ErrTargetMismatch
	}
	return nil
}

func (a *applier) block(ctx context.Context, nops int) error {
	a.ops = slices.Grow(a.ops[:0], nops)[:nops]
	for i := range a.ops {
		add, err := a.uvarint("op")
		if err != nil {
			return err
		}
		a.ops[i].add = int64(min(add, MaxBlockOutput+1))
	}
	for i := range a.ops {
		extra, err := a.uvarint("op")
		if err != nil {
			return err
		}
		a.ops[i].extra = int64(min(extra, MaxBlockOutput+1))
	}
	var total int64
	for i := range a.ops {
		seek, err := binary.ReadVarint(a.r)
		if err != nil {
			return readErr("op", err)
		}
		a.ops[i].seek = seek
		total += a.ops[i].add + a.ops[i].extra
		if total > MaxBlockOutput {
			return fmt.Errorf("%w: block produces more than %d bytes", ErrCorrupt, MaxBlockOutput)
		}
	}
	if err := a.readSparse(); err != nil {
		return err
	}
	for i, o := range a.ops {
		if i&1023 == 1023 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if o.add > 0 {
			if a.pos < 0 || a.pos > a.src.Size-o.add {
				return fmt.Errorf("%w: source range %d+%d outside the %d-byte source", ErrCorrupt, a.pos, o.add, a.src.Size)
			}
			for left := o.add; left > 0; {
				n := min(left, int64(len(a.buf)))
				b := a.buf[:n]
				if _, err := a.src.R.ReadAt(b, a.pos); err != nil {
					return fmt.Errorf("delta: reading source at %d: %w", a.pos, err)
				}
				d, err := a.nextDiff(int(n))
				if err != nil {
					return err
				}
				addBytes(b, d)
				if err := a.write(b); err != nil {
					return err
				}
				left, a.pos = left-n, a.pos+n
			}
		}
		for left := o.extra; left > 0; {
			n := min(left, int64(len(a.buf)))
			b := a.buf[:n]
			if _, err := io.ReadFull(a.r, b); err != nil {
				return readErr("extra bytes", err)
			}
			if err := a.write(b); err != nil {
				return err
			}
			left -= n
		}
		a.pos += o.seek
	}
	if len(a.zruns) != 0 || len(a.nzruns) != 0 || len(a.vals) != 0 || a.z != 0 || a.nz != 0 {
		return fmt.Errorf("%w: diff runs do not match the block", ErrCorrupt)
	}
	return nil
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

// readSparse reads a block's sparse diff sections (run lengths and nonzero values); nextDiff
// expands them as the ops consume diff bytes.
func (a *applier) readSparse() error {
	nz, err := a.uvarint("diff runs")
	if err != nil {
		return err
	}
	nnz, err := a.uvarint("diff runs")
	if err != nil {
		return err
	}
	nv, err := a.uvarint("diff values")
	if err != nil {
		return err
	}
	if nz > MaxDiffRuns || nnz > MaxDiffRuns-nz || nv > MaxDiffValues {
		return fmt.Errorf("%w: diff sections too long", ErrCorrupt)
	}
	a.runs, a.vals = a.runs[:nz+nnz], a.vals[:nv]
	if _, err := io.ReadFull(a.r, a.runs); err != nil {
		return readErr("diff runs", err)
	}
	if _, err := io.ReadFull(a.r, a.vals); err != nil {
		return readErr("diff values", err)
	}
	a.zruns, a.nzruns = a.runs[:nz], a.runs[nz:]
	a.z, a.nz = 0, 0
	return nil
}

// nextDiff returns the next n (at most diffChunk) diff bytes of the block.
func (a *applier) nextDiff(n int) ([]byte, error) {
	out := a.diff[:n]
	for o := out; len(o) > 0; {
		if a.z == 0 && a.nz == 0 {
			z, k1 := binary.Uvarint(a.zruns)
			if k1 <= 0 {
				return nil, fmt.Errorf("%w: diff runs", ErrCorrupt)
			}
			nz, k2 := binary.Uvarint(a.nzruns)
			if k2 <= 0 {
				return nil, fmt.Errorf("%w: diff runs", ErrCorrupt)
			}
			a.zruns, a.nzruns = a.zruns[k1:], a.nzruns[k2:]
			if z > MaxBlockOutput || nz > uint64(len(a.vals)) || z+nz == 0 {
				return nil, fmt.Errorf("%w: diff runs exceed the block", ErrCorrupt)
			}
			a.z, a.nz = int(z), int(nz)
		}
		k := min(a.z, len(o))
		clear(o[:k])
		o, a.z = o[k:], a.z-k
		k = min(a.nz, len(o))
		copy(o[:k], a.vals[:k])
		o, a.vals, a.nz = o[k:], a.vals[k:], a.nz-k
	}
	return out, nil
}
