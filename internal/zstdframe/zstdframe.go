// Package zstdframe splits a zstd stream (RFC 8878) into its frames without
// decoding them, so that a decoder can be started afresh at every frame
// boundary: a download of a payload made of independent frames can then
// resume, after a power loss, at the last boundary it saved.
//
// It parses only what delimits a frame: the frame header, the three-byte
// block headers (type and size) and the optional content checksum, plus
// skippable frames. It checks no more than that; the decoder and the
// signed hashes of the payload check the rest.
package zstdframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	frameMagic     = 0xFD2FB528
	skippableMagic = 0x184D2A50 // low four bits free
	// maxBlockSize is Block_Maximum_Size at most (RFC 8878, 3.1.1.2.4).
	maxBlockSize = 128 << 10
)

// ErrFormat marks a stream that is not a sequence of zstd frames.
var ErrFormat = errors.New("zstdframe: not a zstd frame")

// Splitter reads a zstd stream frame by frame. It reads from its source
// exactly the bytes of the frames it hands out, never beyond the frame
// being read, so that the source's position is a frame boundary whenever
// a frame was read to its end.
type Splitter struct {
	src io.Reader
	off int64 // bytes of the stream consumed
	cur *frame
}

// New returns a Splitter reading from src, whose first byte is at offset
// off of the stream (a stream resumed at a frame boundary).
func New(src io.Reader, off int64) *Splitter { return &Splitter{src: src, off: off} }

// Offset is the number of stream bytes consumed so far: at a frame
// boundary once the frame returned by Next was read to io.EOF.
func (s *Splitter) Offset() int64 { return s.off }

// Next returns a reader of the next frame's bytes, header to checksum,
// which ends with io.EOF exactly at its end. It returns io.EOF itself when
// the stream ends cleanly at a frame boundary, and an error when the
// previous frame was not read to its end.
func (s *Splitter) Next() (io.Reader, error) {
	if s.cur != nil && !s.cur.done {
		return nil, errors.New("zstdframe: the previous frame was not read to its end")
	}
	var magic [4]byte
	n, err := io.ReadFull(s.src, magic[:])
	s.off += int64(n)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("zstdframe: frame header at offset %d: %w", s.off-int64(n), unexpected(err))
	}
	s.cur = &frame{s: s, start: s.off - 4, pending: append([]byte(nil), magic[:]...)}
	m := binary.LittleEndian.Uint32(magic[:])
	switch {
	case m == frameMagic:
		s.cur.step = s.cur.header
	case m&^0xF == skippableMagic:
		s.cur.step = s.cur.skippable
	default:
		return nil, fmt.Errorf("%w at offset %d (magic %#08x)", ErrFormat, s.off-4, m)
	}
	return s.cur, nil
}

// frame serves one frame: pending bytes already read (headers), then
// remain bytes passed straight from the source, then step parses what
// comes next.
type frame struct {
	s        *Splitter
	start    int64
	pending  []byte
	remain   int64
	step     func() error // nil: the frame ends after pending and remain
	checksum bool
	done     bool
}

func (f *frame) Read(p []byte) (int, error) {
	for {
		if len(f.pending) > 0 {
			n := copy(p, f.pending)
			f.pending = f.pending[n:]
			return n, nil
		}
		if f.remain > 0 {
			if int64(len(p)) > f.remain {
				p = p[:f.remain]
			}
			n, err := f.s.src.Read(p)
			f.remain -= int64(n)
			f.s.off += int64(n)
			if n > 0 {
				return n, nil
			}
			if err == nil {
				continue
			}
			return 0, fmt.Errorf("zstdframe: frame at offset %d: %w", f.start, unexpected(err))
		}
		if f.step == nil {
			f.done = true
			return 0, io.EOF
		}
		step := f.step
		f.step = nil
		if err := step(); err != nil {
			return 0, err
		}
	}
}

// read reads n header bytes from the source and queues them.
func (f *frame) read(n int) ([]byte, error) {
	b := make([]byte, n)
	k, err := io.ReadFull(f.s.src, b)
	f.s.off += int64(k)
	if err != nil {
		return nil, fmt.Errorf("zstdframe: frame at offset %d: %w", f.start, unexpected(err))
	}
	f.pending = append(f.pending, b...)
	return b, nil
}

// skippable: a four-byte length, then that many bytes of user data.
func (f *frame) skippable() error {
	b, err := f.read(4)
	if err != nil {
		return err
	}
	f.remain = int64(binary.LittleEndian.Uint32(b))
	return nil
}

// header: the frame header descriptor and the fields it announces.
func (f *frame) header() error {
	d, err := f.read(1)
	if err != nil {
		return err
	}
	fhd := d[0]
	if fhd&0x08 != 0 {
		return fmt.Errorf("%w at offset %d: reserved header bit set", ErrFormat, f.start)
	}
	single := fhd&0x20 != 0
	f.checksum = fhd&0x04 != 0
	n := [4]int{0, 1, 2, 4}[fhd&3]  // dictionary ID
	n += [4]int{0, 2, 4, 8}[fhd>>6] // frame content size
	if fhd>>6 == 0 && single {
		n++
	}
	if !single {
		n++ // window descriptor
	}
	if _, err := f.read(n); err != nil {
		return err
	}
	f.step = f.block
	return nil
}

// block: a block header and its content; after the last block, the
// checksum if the frame has one.
func (f *frame) block() error {
	b, err := f.read(3)
	if err != nil {
		return err
	}
	h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	last, typ, size := h&1 == 1, (h>>1)&3, int64(h>>3)
	switch typ {
	case 0, 2: // raw, compressed
		if size > maxBlockSize {
			return fmt.Errorf("%w at offset %d: block of %d bytes", ErrFormat, f.start, size)
		}
		f.remain = size
	case 1: // RLE: one byte, repeated size times
		f.remain = 1
	default:
		return fmt.Errorf("%w at offset %d: reserved block type", ErrFormat, f.start)
	}
	switch {
	case !last:
		f.step = f.block
	case f.checksum:
		f.step = func() error { _, err := f.read(4); return err }
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
