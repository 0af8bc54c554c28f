package delta

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Create writes a delta that turns source into target. Both images are held in memory (the
// server side): peak memory is about len(source)*5 + len(target) plus one block (at most
// MaxBlockOutput of extra bytes and 8 MiB of sparse sections). The output is
// written as it is produced. ctx is checked between matches; cancelling it stops Create with
// ctx.Err().
func Create(ctx context.Context, w io.Writer, source, target []byte) error {
	h := Header{
		SourceSize:   int64(len(source)),
		SourceSHA256: sha256.Sum256(source),
		TargetSize:   int64(len(target)),
		TargetSHA256: sha256.Sum256(target),
	}
	if _, err := w.Write(h.marshal()); err != nil {
		return fmt.Errorf("delta: writing header: %w", err)
	}
	sa, err := suffixArray(source)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	zw, err := zstd.NewWriter(bw,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(MaxWindow),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return fmt.Errorf("delta: zstd encoder: %w", err)
	}
	e := &encoder{w: zw}
	if err := diff(ctx, sa, source, target, e); err != nil {
		zw.Close()
		return err
	}
	if err := e.finish(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("delta: compressing: %w", err)
	}
	return bw.Flush()
}

// encoder collects ops into blocks and writes each block to w. Diff bytes are coded sparsely
// as they arrive (see sparse); extra bytes are kept until the block is written.
type encoder struct {
	w     io.Writer
	ops   []op
	cur   op // open op, not yet in ops
	sp    sparse
	extra []byte
	out   int64 // target bytes in the current block, including cur
	hdr   []byte
	err   error
}

// room is how many more target bytes fit in the current block.
func (e *encoder) room() int64 { return MaxBlockOutput - e.out }

func (e *encoder) closeOp() {
	if e.cur != (op{}) {
		e.ops = append(e.ops, e.cur)
		e.cur = op{}
	}
	if len(e.ops) >= MaxOpsPerBlock-1 {
		e.flush()
	}
}

// addDiff appends diff bytes (target minus source at the current source position).
func (e *encoder) addDiff(d []byte) {
	if e.cur.extra != 0 || e.cur.seek != 0 {
		e.closeOp()
	}
	for len(d) > 0 {
		n := min(int64(len(d)), e.room(), diffChunk)
		if !e.sp.fits(int(n)) {
			e.flush()
			continue
		}
		e.cur.add += n
		e.sp.add(d[:n])
		e.out += n
		d = d[n:]
		if e.room() == 0 {
			e.flush()
		}
	}
}

func (e *encoder) addExtra(x []byte) {
	if e.cur.seek != 0 {
		e.closeOp()
	}
	for len(x) > 0 {
		n := min(int64(len(x)), e.room())
		e.cur.extra += n
		e.extra = append(e.extra, x[:n]...)
		e.out += n
		x = x[n:]
		if e.room() == 0 {
			e.flush()
		}
	}
}

func (e *encoder) seek(s int64) {
	e.cur.seek += s
	e.closeOp()
}

// flush writes the current block; the open op goes into it.
func (e *encoder) flush() {
	if e.cur != (op{}) {
		e.ops = append(e.ops, e.cur)
		e.cur = op{}
	}
	if len(e.ops) == 0 || e.err != nil {
		return
	}
	e.sp.end()
	b := e.hdr[:0]
	b = binary.AppendUvarint(b, uint64(len(e.ops)))
	for _, o := range e.ops {
		b = binary.AppendUvarint(b, uint64(o.add))
	}
	for _, o := range e.ops {
		b = binary.AppendUvarint(b, uint64(o.extra))
	}
	for _, o := range e.ops {
		b = binary.AppendVarint(b, o.seek)
	}
	b = binary.AppendUvarint(b, uint64(len(e.sp.zruns)))
	b = binary.AppendUvarint(b, uint64(len(e.sp.nzruns)))
	b = binary.AppendUvarint(b, uint64(len(e.sp.vals)))
	e.hdr = b
	for _, p := range [][]byte{b, e.sp.zruns, e.sp.nzruns, e.sp.vals, e.extra} {
		if _, err := e.w.Write(p); err != nil {
			e.err = fmt.Errorf("delta: compressing: %w", err)
			return
		}
		// End the zstd block after each section, so that no block mixes two sections and
		// each gets its own literal and sequence tables (tar pair: 2 % smaller).
		if f, ok := e.w.(interface{ Flush() error }); ok && len(p) > 0 {
			if err := f.Flush(); err != nil {
				e.err = fmt.Errorf("delta: compressing: %w", err)
				return
			}
		}
	}
	e.ops, e.extra, e.out = e.ops[:0], e.extra[:0], 0
	e.sp.zruns, e.sp.nzruns, e.sp.vals = e.sp.zruns[:0], e.sp.nzruns[:0], e.sp.vals[:0]
}

func (e *encoder) finish() error {
	e.flush()
	if e.err != nil {
		return e.err
	}
	if _, err := e.w.Write([]byte{0}); err != nil {
		return fmt.Errorf("delta: compressing: %w", err)
	}
	return nil
}

// diffChunk is the most diff bytes the encoder codes at once (and the applier expands at once).
const diffChunk = 1 << 16

// sparse codes diff bytes as (zero bytes, nonzero bytes) run-length pairs and the nonzero
// bytes. Diff bytes are mostly zero with short nonzero runs where code moved; the zero-run
// lengths, the nonzero-run lengths and the values are separate sections because each
// compresses best on its own (tar pair: 5 % smaller than interleaved pairs).
type sparse struct {
	zruns, nzruns, vals []byte
	z, nz               int // pending pair
}

// fits reports whether n more diff bytes surely fit in the block's section limits: each pair
// takes at most 8 bytes (lengths < 2^28) and covers at least 2 diff bytes, or ends the block.
func (s *sparse) fits(n int) bool {
	return len(s.zruns)+len(s.nzruns)+8*(n/2+2) <= MaxDiffRuns && len(s.vals)+n <= MaxDiffValues
}

func (s *sparse) add(d []byte) {
	for i := 0; i < len(d); {
		if d[i] == 0 {
			if s.nz > 0 {
				s.end()
			}
			j := i
			for j+8 <= len(d) && binary.LittleEndian.Uint64(d[j:]) == 0 {
				j += 8
			}
			for j < len(d) && d[j] == 0 {
				j++
			}
			s.z += j - i
			i = j
			continue
		}
		j := i
		for j < len(d) && d[j] != 0 {
			j++
		}
		s.nz += j - i
		s.vals = append(s.vals, d[i:j]...)
		i = j
	}
}

// end writes the pending pair.
func (s *sparse) end() {
	if s.z == 0 && s.nz == 0 {
		return
	}
	s.zruns = binary.AppendUvarint(s.zruns, uint64(s.z))
	s.nzruns = binary.AppendUvarint(s.nzruns, uint64(s.nz))
	s.z, s.nz = 0, 0
}

// skipMin is the match length from which the search loop, when the old offset stays nearly as
// good as the new match, skips half the match instead of one byte (see diff).
const skipMin = 256

// diff is bsdiff 4.3's matching loop (Colin Percival, BSD licence), writing ops to e.
func diff(ctx context.Context, sa []int32, old, new []byte, e *encoder) error {
	oldsize, newsize := len(old), len(new)
	var scan, pos, n, lastscan, lastpos, lastoffset int
	var dbuf []byte
	for steps := 0; scan < newsize; steps++ {
		if steps&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.err != nil {
				return e.err
			}
		}
		oldscore := 0
		scan += n
		scsc := scan
		for ; scan < newsize; scan++ {
			pos, n = search(sa, old, new[scan:])
			for ; scsc < scan+n; scsc++ {
				if o := scsc + lastoffset; o >= 0 && o < oldsize && old[o] == new[scsc] {
					oldscore++
				}
			}
			if (n == oldscore && n != 0) || n > oldscore+8 {
				break
			}
			// The old offset is nearly as good as the best match here. bsdiff moves on by one
			// byte and searches again, which re-finds the same long match at every byte
			// (quadratic on long near-identical regions). Skip part of the match instead.
			k := 1
			if n >= skipMin {
				k = n / 2
			}
			for end := scan + k; scan < end; scan++ {
				if o := scan + lastoffset; o >= 0 && o < oldsize && old[o] == new[scan] {
					oldscore--
				}
			}
			scan--
		}
		if n == oldscore && scan != newsize {
			continue
		}
		// Extend the previous match forwards.
		s, sf, lenf := 0, 0, 0
		for i := 0; lastscan+i < scan && lastpos+i < oldsize; {
			if old[lastpos+i] == new[lastscan+i] {
				s++
			}
			i++
			if s*2-i > sf*2-lenf {
				sf, lenf = s, i
			}
		}
		// Extend the new match backwards.
		lenb := 0
		if scan < newsize {
			s, sb := 0, 0
			for i := 1; scan >= lastscan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if s*2-i > sb*2-lenb {
					sb, lenb = s, i
				}
			}
		}
		// Resolve an overlap between the two extensions.
		if lastscan+lenf > scan-lenb {
			overlap := (lastscan + lenf) - (scan - lenb)
			s, ss, lens := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if new[lastscan+lenf-overlap+i] == old[lastpos+lenf-overlap+i] {
					s++
				}
				if new[scan-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > ss {
					ss, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}
		for off := 0; off < lenf; {
			k := min(lenf-off, diffChunk)
			dbuf = dbuf[:0]
			for i := off; i < off+k; i++ {
				dbuf = append(dbuf, new[lastscan+i]-old[lastpos+i])
			}
			e.addDiff(dbuf)
			off += k
		}
		e.addExtra(new[lastscan+lenf : scan-lenb])
		e.seek(int64((pos - lenb) - (lastpos + lenf)))
		lastscan, lastpos, lastoffset = scan-lenb, pos-lenb, pos-scan
	}
	return e.err
}
