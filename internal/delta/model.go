package delta

import (
	"fmt"
	"math/bits"
)

// numModel codes a non-negative integer below 2^63: its bit length (0..63) with a 6-bit tree,
// then the bits below the leading one, the first three with a tree per length (so small
// values are modelled exactly), the rest with one probability per length and bit position.
type numModel struct {
	length [64]prob
	high   [64][8]prob
	low    [64][64]prob
}

func newNumModels(n int) []numModel {
	m := make([]numModel, n)
	for i := range m {
		setProbs(m[i].length[:])
		for k := range m[i].high {
			setProbs(m[i].high[k][:])
			setProbs(m[i].low[k][:])
		}
	}
	return m
}

func setProbs(p []prob) {
	for i := range p {
		p[i] = probInit
	}
}

// num codes v (encoder) or decodes a value (decoder) with model m.
func (c *rangeCoder) num(m *numModel, v uint64) uint64 {
	k := int(c.tree(m.length[:], 6, uint32(bits.Len64(v))))
	if k <= 1 {
		return uint64(k)
	}
	out := uint64(1)
	for i := k - 2; i >= 0; i-- {
		var p *prob
		if out < 8 {
			p = &m.high[k][out]
		} else {
			p = &m.low[k][i]
		}
		out = out<<1 | uint64(c.bit(p, uint32(v>>uint(i))&1))
	}
	return out
}

// model holds every adaptive probability of a delta body and the little history the
// contexts use. Both sides start from the same state and update it identically, so they must
// make exactly the same sequence of calls. Its size is fixed (about 8 MiB with the match
// models), whatever the images. It is not safe for concurrent use.
type model struct {
	more     prob       // another op follows
	seek0    [2]prob    // seek is zero, by whether the previous one was
	seekBack prob       // seek undoes the previous one
	sign     [2][2]prob // seek is negative, by the previous seek's sign
	stored   prob       // the op's extra bytes follow raw, outside the range coder
	end      [2]prob    // the rest of the add is zero, by whether this is its start
	flagA    []counter  // zero run ends here, by the source byte there, alignment, position
	flagB    []counter  // the same by the source byte after it
	flagC    []counter  // the same by the previous run's length
	flagD    []counter  // the same by the two source bytes after it, hashed
	flagW    [][maxInputs]int32
	long     [32]prob // zero run of at least flagSpan, by the previous run length and start
	mx       mixer
	mm       *matchModel
	lm       *litMatch
	om       *opMatch
	align    [8][8]prob       // where a zero run ends modulo 8, by where the previous one ended
	more2    [4][2][2][3]prob // the next byte is nonzero too: by position, carry, previous run, match
	nums     []numModel       // see numSeek...
	pred     []byte           // predicted value by the field's higher source bytes (last seen)
	hitA     []counter        // the value is the predicted one: by prediction slot
	hitB     [16]counter
	hitC     []counter
	hitW     [][maxInputs]int32
	valA     []counter // nonzero diff values: valContexts × 272 (see mixNibble)
	valH     []counter // the same in hashed contexts
	valW     [][maxInputs]int32
	litA     []counter // extra bytes by the previous target byte: 256 × 272 (see mixNibble)
	litH     []counter // extra bytes by the two and three previous target bytes, hashed
	litW     [][maxInputs]int32

	// Run history, kept across ops: diff bytes of tables of offsets come in periodic
	// patterns (zero run 6, nonzero run 2, ...) and the values repeat those of the run before.
	prevSeek, prevAdd, prevExtra int64
	prevZ                        uint64
	prevAlign                    uint32
	prevRun                      [4]byte
}

const (
	flagSpan    = 128 // zero-run positions coded one by one
	longAfter   = 64  // previous zero run length from which a "long again" flag comes first
	valHashBits = 18
	predBits    = 16
	litHashBits = 18
	flagDBits   = 16
	flagSure    = 160 // a run flag whose two source-byte counters are below this is not mixed
	numSeek     = 0   // 8: by the bucket of the previous seek
	numAdd      = 8   // 8: by the bucket of the previous add
	numExtra    = 16  // 8: by whether the op has an add, the previous extra's bucket
	numZero     = 24  // 16: by the bit length of the previous zero run
	numModels   = 40
	// valContexts: the first value of a run by the previous run's first value; a later value
	// by the value at the same place in the previous run and the carry out of the byte
	// before.
	valContexts = 256 + 512
)

func newModel() *model {
	m := &model{
		nums: newNumModels(numModels),
		valA: newCounters(valContexts * 272),
		pred: make([]byte, 1<<predBits),
		hitA: newCounters(1 << predBits),
		hitC: newCounters(1 << 11),
		hitW: newWeights(4),
		valH: newCounters(1 << valHashBits),
		valW: newWeights(32),
		litA: newCounters(256 * 272),
		litH: newCounters(1 << litHashBits),
		litW: newWeights(8),
		mm:   newMatchModel(),
		lm:   newLitMatch(),
		om:   newOpMatch(),
	}
	for _, p := range []*prob{&m.more, &m.seek0[0], &m.seek0[1], &m.seekBack, &m.sign[0][0], &m.sign[0][1],
		&m.sign[1][0], &m.sign[1][1], &m.stored, &m.end[0], &m.end[1]} {
		*p = probInit
	}
	m.flagA = newCounters(128 << 8)
	m.flagB = newCounters(128 << 8)
	m.flagC = newCounters(128 << 4)
	m.flagW = newWeights(64)
	setProbs(m.long[:])
	m.flagD = newCounters(1 << flagDBits)
	for i := range m.hitB {
		m.hitB[i] = counterInit
	}
	for i := range m.align {
		setProbs(m.align[i][:])
	}
	for i := range m.more2 {
		for j := range m.more2[i] {
			for k := range m.more2[i][j] {
				setProbs(m.more2[i][j][k][:])
			}
		}
	}
	return m
}

// codeOp codes an op's seek, lengths and extra coding (stored: raw bytes, not modelled).
func (m *model) codeOp(c *rangeCoder, o *op, stored bool) bool {
	p, ok := m.om.predicted()
	var seekHit, lenHit uint32
	if ok {
		b := min(m.om.len, 7)
		seekHit = c.counterBit(&m.om.seekHit[b], boolBit(o.seek == p.seek))
		lenHit = c.counterBit(&m.om.lenHit[b*2+seekHit], boolBit(o.add == p.add && o.extra == p.extra))
		if seekHit == 1 {
			o.seek = p.seek
		}
		if lenHit == 1 {
			o.add, o.extra = p.add, p.extra
		}
	}
	if seekHit == 0 {
		m.codeSeek(c, o)
	}
	if lenHit == 0 {
		m.codeLengths(c, o)
	}
	m.om.push(op{seek: o.seek, add: o.add, extra: o.extra})
	m.prevSeek, m.prevAdd, m.prevExtra = o.seek, o.add, o.extra
	if o.extra > 0 {
		return c.bit(&m.stored, boolBit(stored)) == 1
	}
	return false
}

// codeSeek codes an op's seek.
func (m *model) codeSeek(c *rangeCoder, o *op) {
	var z, neg uint32
	if o.seek == 0 {
		z = 1
	}
	pz := uint32(0)
	if m.prevSeek == 0 {
		pz = 1
	}
	if c.bit(&m.seek0[pz], z) == 0 {
		back := uint32(0)
		if o.seek == -m.prevSeek {
			back = 1
		}
		if m.prevSeek != 0 && c.bit(&m.seekBack, back) == 1 {
			o.seek = -m.prevSeek
		} else {
			if o.seek < 0 {
				neg = 1
			}
			neg = c.bit(&m.sign[1-pz][boolBit(m.prevSeek < 0)], neg)
			mag := uint64(o.seek)
			if neg == 1 {
				mag = -mag
			}
			mag = c.num(&m.nums[numSeek+bucket(m.prevSeek)], mag-1) + 1
			o.seek = int64(mag)
			if neg == 1 {
				o.seek = -o.seek
			}
		}
	} else {
		o.seek = 0
	}
}

// codeLengths codes an op's add and extra lengths.
func (m *model) codeLengths(c *rangeCoder, o *op) {
	o.add = int64(c.num(&m.nums[numAdd+bucket(m.prevAdd)], uint64(o.add)))
	hasAdd := boolBit(o.add > 0)
	o.extra = int64(c.num(&m.nums[numExtra+int(hasAdd)*4+bucket(m.prevExtra)/2], uint64(o.extra)))
}

func boolBit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// bucket returns 0..7 by the bit length of |v|.
func bucket(v int64) int {
	if v < 0 {
		v = -v
	}
	return min(bits.Len64(uint64(v)), 31) / 4
}

// codeDiff codes the diff bytes d (target minus source) of one add op that starts at target
// offset at; old holds the source bytes under them. The decoder fills d up to the returned
// length, after which all diff bytes are zero (d is left as it was there). Diff bytes are coded
// as runs: a flag "the rest is zero", else a zero run, then the nonzero run value by value,
// each followed by a flag "the next byte is nonzero too".
func (m *model) codeDiff(c *rangeCoder, at int64, old, d []byte) (int, error) {
	n := len(d)
	last := -1
	if !c.dec {
		for last = n - 1; last >= 0 && d[last] == 0; last-- {
		}
	}
	for i := 0; i < n; {
		start := 0
		if i == 0 {
			start = 1
		}
		var end uint32
		if i > last {
			end = 1
		}
		if c.bit(&m.end[start], end) == 1 {
			return i, nil
		}
		var z uint64
		if !c.dec {
			for int(z) < n-i && d[i+int(z)] == 0 {
				z++
			}
		}
		z = m.runLength(c, z, start, uint64(at)+uint64(i), old, i)
		if z >= uint64(n-i) {
			return 0, fmt.Errorf("%w: diff run beyond the op", ErrCorrupt)
		}
		if c.dec {
			clear(d[i : i+int(z)])
		}
		i += int(z)
		if c.stats != nil {
			c.stats.cat = catVal
		}
		i = m.values(c, old, d, i, z)
		if c.stats != nil {
			c.stats.cat = catRuns
		}
	}
	return n, nil
}

// runLength codes the length of the zero run at d[i:]; at is the target offset of d[0], old
// the source bytes under d; start: the run begins the op (and may be empty). Its first
// flagSpan positions are coded one by one ("the run ends here"), in context of the source
// bytes there and the alignment: which fields of a table change is told by their old values.
// A longer run is coded as the offset where it ends modulo 8, then the rest in units of 8.
func (m *model) runLength(c *rangeCoder, z uint64, start int, at uint64, old []byte, i int) uint64 {
	n := uint64(len(old) - i)
	if g, _, ok := m.mm.predicted(); ok && g > 0 && g <= maxGap && uint64(g-1) >= uint64(1-start) {
		// A long-range match predicts this run: one flag if it is right.
		zp := uint64(g - 1)
		if c.counterBit(&m.mm.gapHit[m.mm.lenBucket()], boolBit(z == zp)) == 1 {
			m.prevZ = zp
			if zp >= flagSpan {
				m.prevAlign = uint32(at+zp) & 7
			}
			return zp
		}
	}
	// After a long run, a first flag tells whether this one is long too (one decision
	// instead of flagSpan in sparse regions).
	var long uint32
	coded := m.prevZ >= longAfter
	if coded {
		long = c.bit(&m.long[min(bits.Len64(m.prevZ), 15)*2+start], boolBit(z >= flagSpan))
	}
	for k := uint64(1 - start); long == 0 && k < flagSpan; k++ {
		if k >= n {
			return n // only on corrupt input: no nonzero byte before the end
		}
		if coded && k == flagSpan-1 {
			m.prevZ = k
			return k
		}
		q := i + int(k)
		kb := uint32(k)
		if k >= 12 {
			kb = 12 + uint32(min(bits.Len64(k)-4, 3))
		}
		ctx := uint32((at+k)&3) | kb<<2
		if k == m.prevZ {
			ctx |= 1 << 6
		}
		var b1 uint32
		if q+1 < len(old) {
			b1 = uint32(old[q+1])
		}
		var hit uint32
		if z == k {
			hit = 1
		}
		fa, fb := &m.flagA[ctx<<8|uint32(old[q])], &m.flagB[ctx<<8|b1]
		if pa, pb := fa.p12(), fb.p12(); pa < flagSure && pb < flagSure {
			// Both source-byte contexts are sure the run goes on: code the position with
			// their mean, unmixed (most positions of a run).
			if c.pairBit(fa, fb, pa, pb, hit) == 1 {
				m.prevZ = k
				return k
			}
			continue
		}
		mx := &m.mx
		mx.n = 3
		mx.in[0] = fa
		mx.in[1] = fb
		mx.in[2] = &m.flagC[ctx<<4|uint32(min(bits.Len64(m.prevZ), 15))]
		{
			var b2 uint32
			if q+2 < len(old) {
				b2 = uint32(old[q+2])
			}
			mx.n = 4
			hd := b1 | b2<<8 | uint32((at+k)&3)<<16
			mx.in[3] = &m.flagD[mixHash(hd)>>(32-flagDBits)]
		}
		if q > 0 {
			mx.n = 5
			mx.in[4] = &m.flagD[mixHash(uint32(old[q-1])|uint32((at+k)&3)<<8|kb<<10|1<<20)>>(32-flagDBits)]
		}
		if c.mixBit(mx, &m.flagW[ctx&63], hit) == 1 {
			m.prevZ = k
			return k
		}
	}
	e := c.tree(m.align[m.prevAlign][:], 3, uint32(at+z)&7)
	low := uint64(e-uint32(at+flagSpan)) & 7
	ctx := numZero + min(bits.Len64(m.prevZ), 15)
	z = c.num(&m.nums[ctx], (z-flagSpan-low)/8)*8 + low + flagSpan
	m.prevAlign = uint32(at+z) & 7
	m.prevZ = z
	return z
}

// mixNibble codes the 4-bit value v with a mix of three counters per bit: from tabA at slot
// baseA (16 slots) and from the 16-counter buckets of tabH that contexts hb and hc hash to
// (one cache line each). w holds the mixer weights by bit.
func (m *model) mixNibble(c *rangeCoder, tabA []counter, baseA uint32, tabH []counter, hb, hc, hd uint32, w [][maxInputs]int32, v uint32) uint32 {
	shift := 32 - bits.Len(uint(len(tabH))) + 1 + 4
	bb := mixHash(hb) >> shift << 4
	bc := mixHash(hc) >> shift << 4
	bd := mixHash(hd) >> shift << 4
	mx := &m.mx
	mx.n = 3
	if hd != 0 {
		mx.n = 4
	}
	sub := uint32(1)
	for b := 3; b >= 0; b-- {
		mx.in[0] = &tabA[baseA+sub]
		mx.in[1] = &tabH[bb+sub]
		mx.in[2] = &tabH[bc+sub]
		mx.in[3] = &tabH[bd+sub]
		sub = sub<<1 | c.mixBit(mx, &w[b], (v>>uint(b))&1)
	}
	return sub - 16
}

func mixHash(x uint32) uint32 {
	x *= 0x9E3779B1
	x ^= x >> 16
	return x * 0x85EBCA6B
}

// values codes the nonzero run that starts at d[i] (i < len(d)), value by value, and returns
// where it ends. old holds the source bytes under d. The value contexts: the first value of a
// run by the previous run's first value; later ones by the value at the same place in the
// previous run and the carry out of the byte before (tables of offsets that all moved by the
// same amount give the same low byte, and the next byte differs only by that carry).
func (m *model) values(c *rangeCoder, old, d []byte, i int, z uint64) int {
	var run [4]byte
	j := i
	for {
		k := j - i
		var ctx uint32
		var carry uint32
		if k == 0 {
			ctx = uint32(m.prevRun[0])
		} else {
			if old[j-1]+d[j-1] < old[j-1] {
				carry = 1
			}
			pr := byte(0)
			if k < len(m.prevRun) {
				pr = m.prevRun[k]
			}
			ctx = 256 + (uint32(pr)<<1 | carry)
		}
		var o1, o2 uint32
		if j+1 < len(old) {
			o1 = uint32(old[j+1])
		}
		if j+2 < len(old) {
			o2 = uint32(old[j+2])
		}
		kk := uint32(min(k, 3))
		hb := o1 | o2<<8 | kk<<16 | carry<<18
		var pd uint32
		if j > 0 {
			pd = uint32(d[j-1])
		}
		hc := pd | kk<<8 | carry<<10 | 1<<19
		v := uint32(d[j])
		key := mixHash(hb) >> (32 - predBits)
		pv := m.pred[key]
		hit := uint32(0)
		mg, mv, ok := m.mm.predicted()
		gap := gapCode(k == 0, z)
		if ok && mg == gap {
			// A long-range match predicts this value: one flag if it is right.
			ctx := m.mm.lenBucket()*8 + kk*2 + boolBit(mv == pv)
			if c.counterBit(&m.mm.valHit[ctx], boolBit(byte(v) == mv)) == 1 {
				hit, pv = 1, mv
			}
		}
		if hit == 0 && pv != 0 {
			if byte(v) == pv {
				hit = 1
			}
			same := uint32(0)
			if k < len(m.prevRun) && m.prevRun[k] == pv {
				same = 1
			}
			mx := &m.mx
			mx.n = 3
			mx.in[0] = &m.hitA[key]
			mx.in[1] = &m.hitB[kk<<2|carry<<1|same]
			mx.in[2] = &m.hitC[(pd<<3|kk<<1|carry)&0x7FF]
			hit = c.mixBit(mx, &m.hitW[kk], hit)
		}
		if hit == 1 {
			d[j] = pv
		} else {
			w := m.valW[kk*8 : kk*8+8]
			var ob uint32
			if i > 0 {
				ob = uint32(old[i-1])
			}
			hd := ob | kk<<8 | carry<<10 | 3<<19
			hi := m.mixNibble(c, m.valA, ctx*272, m.valH, hb, hc, hd, w[4:], v>>4)
			lo := m.mixNibble(c, m.valA, ctx*272+16+16*hi, m.valH, hb|(hi+1)<<20, hc|(hi+1)<<20, hd|(hi+1)<<20, w[:4], v&15)
			d[j] = byte(hi<<4 | lo)
		}
		m.mm.push(gap, d[j])
		m.pred[key] = d[j]
		if k < len(run) {
			run[k] = d[j]
		}
		j++
		if j == len(d) {
			break
		}
		carry = 0
		if old[j-1]+d[j-1] < old[j-1] {
			carry = 1
		}
		var more uint32
		if d[j] != 0 {
			more = 1
		}
		longer := uint32(0)
		if k+1 < len(m.prevRun) && m.prevRun[k+1] != 0 {
			longer = 1
		}
		if c.stats != nil {
			c.stats.cat = catRuns
		}
		ms := 0
		if g, _, ok := m.mm.predicted(); ok {
			ms = 1 + int(boolBit(g == 0))
		}
		more = c.bit(&m.more2[min(k, 3)][carry][longer][ms], more)
		if c.stats != nil {
			c.stats.cat = catVal
		}
		if more == 0 {
			break
		}
	}
	m.prevRun = run
	return j
}

// codeLit codes the extra bytes x; hist holds the target bytes before them (the last one in
// the low byte). The decoder fills x. Each byte is coded by nibbles with a mix of order-1
// (direct), order-2 and order-3 (hashed) contexts.
func (m *model) codeLit(c *rangeCoder, hist uint32, x []byte) {
	for i := range x {
		if b, ok := m.lm.code(c, x[i]); ok {
			x[i] = b
			m.lm.push(b)
			hist = hist<<8 | uint32(b)
			continue
		}
		v := uint32(x[i])
		p1 := hist & 0xFF
		h2 := hist&0xFFFF | 1<<24
		h3 := hist&0xFFFFFF | 2<<24
		hi := m.mixNibble(c, m.litA, p1*272, m.litH, h2, h3, 0, m.litW[4:], v>>4)
		lo := m.mixNibble(c, m.litA, p1*272+16+16*hi, m.litH, h2+(hi+1)<<26, h3+(hi+1)<<26, 0, m.litW[:4], v&15)
		x[i] = byte(hi<<4 | lo)
		m.lm.push(x[i])
		hist = hist<<8 | uint32(x[i])
	}
}
