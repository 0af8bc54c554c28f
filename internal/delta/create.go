package delta

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
)

// Create writes a delta that turns source into target. Both images are held in memory (the
// server side): peak memory is about len(source)*5 + len(target) plus one op (at most
// 2*MaxOpLength) and the model. The output is written as it is produced. ctx is checked
// between matches; cancelling it stops Create with ctx.Err().
func Create(ctx context.Context, w io.Writer, source, target []byte) error {
	return CreateWith(ctx, w, source, target, Options{})
}

// Options for CreateWith.
type Options struct {
	// Indexed, when set, is called once the source is indexed (the
	// suffix array is built), before matching starts.
	Indexed func()
	// Progress, when set, is called during matching with the target bytes
	// matched so far and len(target), at least every 1024 matches and
	// once at the end.
	Progress func(done, total int64)
}

// CreateWith is Create reporting its progress as o asks.
func CreateWith(ctx context.Context, w io.Writer, source, target []byte, o Options) error {
	h := Header{
		SourceSize:   int64(len(source)),
		SourceSHA256: sha256.Sum256(source),
		TargetSize:   int64(len(target)),
		TargetSHA256: sha256.Sum256(target),
	}
	ew := &errWriter{w: w}
	bw := bufio.NewWriterSize(ew, 1<<16)
	bw.Write(h.marshal())
	sa, err := suffixArray(source)
	if err != nil {
		return err
	}
	if o.Indexed != nil {
		o.Indexed()
	}
	e := &encoder{c: newEncoder(bw), w: bw, ew: ew, m: newModel(), source: source, target: target, progress: o.Progress}
	if statsEnabled() {
		e.c.stats = &costStats{}
		defer e.c.stats.print(os.Stderr)
	}
	if err := diff(ctx, sa, source, target, e); err != nil {
		return err
	}
	return e.finish()
}

// errWriter keeps the first write error, so that the matcher can stop early.
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	if err != nil {
		w.err = fmt.Errorf("delta: writing delta: %w", err)
	}
	return n, err
}

// encoder turns the matcher's ops into the range-coded body. The ops come as diff bytes, extra
// bytes and seeks; an op is coded when the next one starts (its lengths come first), so the
// encoder holds one op's diff and extra bytes, at most MaxOpLength each.
type encoder struct {
	c              *rangeCoder
	w              *bufio.Writer
	ew             *errWriter
	m              *model
	source, target []byte
	cur            op     // open op: seek, then add diff bytes, then extra bytes
	diff, extra    []byte // cur's bytes
	pos            int64  // source position before cur's seek
	out            int64  // target bytes coded, before cur
	err            error
	progress       func(done, total int64)
}

// addDiff appends diff bytes (target minus source at the current source position).
func (e *encoder) addDiff(d []byte) {
	if e.cur.extra != 0 {
		e.emit()
	}
	for len(d) > 0 {
		n := min(len(d), MaxOpLength-len(e.diff))
		e.diff = append(e.diff, d[:n]...)
		e.cur.add += int64(n)
		d = d[n:]
		if len(e.diff) == MaxOpLength {
			e.emit()
		}
	}
}

func (e *encoder) addExtra(x []byte) {
	for len(x) > 0 {
		n := min(len(x), MaxOpLength-len(e.extra))
		e.extra = append(e.extra, x[:n]...)
		e.cur.extra += int64(n)
		x = x[n:]
		if len(e.extra) == MaxOpLength {
			e.emit()
		}
	}
}

// seek moves the source position; it belongs to the next op.
func (e *encoder) seek(s int64) {
	if e.cur.add != 0 || e.cur.extra != 0 {
		e.emit()
	}
	e.cur.seek += s
}

// emit codes the open op and starts a new one.
func (e *encoder) emit() {
	o := e.cur
	if o.add == 0 && o.extra == 0 {
		return
	}
	c := e.c
	st := c.stats
	if st != nil {
		st.cat = catOp
		st.n[catOp]++
	}
	c.bit(&e.m.more, 1)
	stored := storeRaw(e.extra)
	e.m.codeOp(c, &o, stored)
	e.pos += o.seek
	if st != nil {
		st.cat = catRuns
	}
	e.m.codeDiff(c, e.out, e.source[e.pos:e.pos+o.add], e.diff)
	e.pos += o.add
	e.out += o.add
	if o.extra > 0 {
		if st != nil {
			st.cat = catLit
			st.n[catLit] += o.extra
			if stored {
				st.bits[catStored] += float64(8*o.extra + 40)
				st.n[catStored] += o.extra
			}
		}
		if stored {
			c.flush()
			e.w.Write(e.extra)
			c.reset()
		} else {
			var hist uint32
			for _, b := range e.target[max(e.out-4, 0):e.out] {
				hist = hist<<8 | uint32(b)
			}
			e.m.codeLit(c, hist, e.extra)
		}
	}
	e.out += o.extra
	e.cur, e.diff, e.extra = op{}, e.diff[:0], e.extra[:0]
	if e.ew.err != nil {
		e.err = e.ew.err
	}
}

func (e *encoder) finish() error {
	e.emit()
	e.c.bit(&e.m.more, 0)
	e.c.flush()
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("delta: writing delta: %w", err)
	}
	return e.ew.err
}

// storeRaw reports whether extra bytes look incompressible (compressed or encrypted data), so
// that they are better stored raw than modelled: at least 64 bytes, and an order-0 entropy
// estimate (with the Miller-Madow small-sample correction) of at least 7.5 bits per byte.
func storeRaw(x []byte) bool {
	if len(x) < 64 {
		return false
	}
	var cnt [256]int
	for _, b := range x {
		cnt[b]++
	}
	n := float64(len(x))
	h, used := 0.0, 0
	for _, k := range cnt {
		if k > 0 {
			p := float64(k) / n
			h -= p * math.Log2(p)
			used++
		}
	}
	h += float64(used-1) / (2 * n * math.Ln2)
	return h >= 7.5
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
			if e.progress != nil {
				e.progress(int64(scan), int64(newsize))
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
			k := min(lenf-off, 1<<16)
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
	if e.progress != nil {
		e.progress(int64(newsize), int64(newsize))
	}
	return e.err
}
