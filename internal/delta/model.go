package delta

import (
	"fmt"
	"math/bits"
	"os"
	"strconv"
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
// make exactly the same sequence of calls. Its size is fixed (about 1 MiB), whatever the
// images.
type model struct {
	more   prob // another op follows
	seek0  prob // seek is zero
	sign   prob // seek is negative
	stored prob // the op's extra bytes follow raw, outside the range coder
	end    [2]prob
	flagA  []counter // zero run ends here, by the source byte there, alignment, position
	flagB  []counter // the same by the source byte after it
	flagC  []counter // the same by the previous run's length
	flagD  []counter // the same by the two source bytes after it, hashed
	flagW  [][maxInputs]int32
	mx     mixer
	align  [8][8]prob // where a zero run ends modulo 8, by where the previous one ended
	more2  [4][2][2]prob
	nums   []numModel // see numSeek...
	pred   []byte     // predicted value by the field's higher source bytes (last seen)
	hitA   []counter  // the value is the predicted one: by prediction slot
	hitB   [16]counter
	hitC   []counter
	hitW   [][maxInputs]int32
	valA   []counter // nonzero diff values: valContexts × 272 (see mixNibble)
	valH   []counter // the same in hashed contexts
	valW   [][maxInputs]int32
	lit    []prob // extra bytes: 256 trees of 256, by the previous target byte

	// Run history, kept across ops: diff bytes of tables of offsets come in periodic
	// patterns (zero run 6, nonzero run 2, ...) and the values repeat those of the run before.
	prevZ     uint64
	prevAlign uint32
	prevRun   [4]byte
}

const (
	flagSpan    = 16
	valHashBits = 20
	predBits    = 16
	flagDBits   = 18
	flagBits    = 18
	numSeek     = 0
	numAdd      = 1
	numExtra    = 2  // 2: by whether the op has an add
	numZero     = 4  // 16: by the bit length of the previous zero run
	numNonzero  = 20 // 4: by the previous nonzero run's length (up to 3)
	numModels   = 24
	// valContexts: the first value of a run by the previous run's first value; a later value
	// by the value at the same place in the previous run and the carry out of the byte
	// before.
	valContexts = 256 + 512
)

var variant, _ = strconv.Atoi(os.Getenv("V"))

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
		lit:  newProbs(256 * 256),
	}
	for _, p := range []*prob{&m.more, &m.seek0, &m.sign, &m.stored, &m.end[0], &m.end[1]} {
		*p = probInit
	}
	m.flagA = newCounters(128 << 8)
	m.flagB = newCounters(128 << 8)
	m.flagC = newCounters(128 << 4)
	m.flagW = newWeights(64)
	m.flagD = newCounters(1 << flagDBits)
	for i := range m.hitB {
		m.hitB[i] = counterInit
	}
	for i := range m.align {
		setProbs(m.align[i][:])
	}
	for i := range m.more2 {
		setProbs(m.more2[i][0][:])
		setProbs(m.more2[i][1][:])
	}
	return m
}

// codeOp codes an op's seek, lengths and extra coding (stored: raw bytes, not modelled).
func (m *model) codeOp(c *rangeCoder, o *op, stored bool) bool {
	var z, neg uint32
	if o.seek == 0 {
		z = 1
	}
	if c.bit(&m.seek0, z) == 0 {
		if o.seek < 0 {
			neg = 1
		}
		neg = c.bit(&m.sign, neg)
		mag := uint64(o.seek)
		if neg == 1 {
			mag = -mag
		}
		mag = c.num(&m.nums[numSeek], mag-1) + 1
		o.seek = int64(mag)
		if neg == 1 {
			o.seek = -o.seek
		}
	} else {
		o.seek = 0
	}
	o.add = int64(c.num(&m.nums[numAdd], uint64(o.add)))
	hasAdd := 0
	if o.add > 0 {
		hasAdd = 1
	}
	o.extra = int64(c.num(&m.nums[numExtra+hasAdd], uint64(o.extra)))
	if o.extra > 0 {
		var s uint32
		if stored {
			s = 1
		}
		return c.bit(&m.stored, s) == 1
	}
	return false
}

// codeDiff codes the diff bytes d (target minus source) of one add op that starts at target
// offset at; old holds the source bytes under them. The decoder fills d. Diff bytes are coded
// as runs: a flag "the rest is zero", else a zero run, then the nonzero run value by value,
// each followed by a flag "the next byte is nonzero too".
func (m *model) codeDiff(c *rangeCoder, at int64, old, d []byte) error {
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
			if c.dec {
				clear(d[i:])
			}
			return nil
		}
		var z uint64
		if !c.dec {
			for int(z) < n-i && d[i+int(z)] == 0 {
				z++
			}
		}
		z = m.runLength(c, z, start, uint64(at)+uint64(i), old, i)
		if z >= uint64(n-i) {
			return fmt.Errorf("%w: diff run beyond the op", ErrCorrupt)
		}
		if c.dec {
			clear(d[i : i+int(z)])
		}
		i += int(z)
		if c.stats != nil {
			c.stats.cat = catVal
		}
		i = m.values(c, old, d, i)
		if c.stats != nil {
			c.stats.cat = catRuns
		}
	}
	return nil
}

// runLength codes the length of the zero run at d[i:]; at is the target offset of d[0], old
// the source bytes under d; start: the run begins the op (and may be empty). Its first
// flagSpan positions are coded one by one ("the run ends here"), in context of the source
// bytes there and the alignment: which fields of a table change is told by their old values.
// A longer run is coded as the offset where it ends modulo 8, then the rest in units of 8.
func (m *model) runLength(c *rangeCoder, z uint64, start int, at uint64, old []byte, i int) uint64 {
	n := uint64(len(old) - i)
	for k := uint64(1 - start); k < flagSpan; k++ {
		if k >= n {
			return n // only on corrupt input: no nonzero byte before the end
		}
		q := i + int(k)
		ctx := uint32((at+k)&3) | uint32(min(k, 15))<<2
		if k == m.prevZ {
			ctx |= 1 << 6
		}
		var b1 uint32
		if q+1 < len(old) {
			b1 = uint32(old[q+1])
		}
		mx := &m.mx
		mx.n = 3
		mx.in[0] = &m.flagA[ctx<<8|uint32(old[q])]
		mx.in[1] = &m.flagB[ctx<<8|b1]
		mx.in[2] = &m.flagC[ctx<<4|uint32(min(bits.Len64(m.prevZ), 15))]
		{
			var b2 uint32
			if q+2 < len(old) {
				b2 = uint32(old[q+2])
			}
			mx.n = 4
			hd := b1 | b2<<8 | uint32((at+k)&3)<<16
			mx.in[3] = &m.flagD[hash(hd)>>(32-flagDBits)]
		}
		var hit uint32
		if z == k {
			hit = 1
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

// mixNibble codes the 4-bit value v with a mix of three counters per bit: from valA at slot
// baseA (16 slots) and from the 16-counter buckets of valH that contexts hb and hc hash to
// (one cache line each). w holds the mixer weights by bit.
func (m *model) mixNibble(c *rangeCoder, baseA, hb, hc uint32, w [][maxInputs]int32, v uint32) uint32 {
	bb := hash(hb) >> (32 - valHashBits + 4) << 4
	bc := hash(hc) >> (32 - valHashBits + 4) << 4
	mx := &m.mx
	mx.n = 3
	sub := uint32(1)
	for b := 3; b >= 0; b-- {
		mx.in[0] = &m.valA[baseA+sub]
		mx.in[1] = &m.valH[bb+sub]
		mx.in[2] = &m.valH[bc+sub]
		sub = sub<<1 | c.mixBit(mx, &w[b], (v>>uint(b))&1)
	}
	return sub - 16
}

func hash(x uint32) uint32 {
	x *= 0x9E3779B1
	x ^= x >> 16
	return x * 0x85EBCA6B
}

// values codes the nonzero run that starts at d[i] (i < len(d)), value by value, and returns
// where it ends. old holds the source bytes under d. The value contexts: the first value of a
// run by the previous run's first value; later ones by the value at the same place in the
// previous run and the carry out of the byte before (tables of offsets that all moved by the
// same amount give the same low byte, and the next byte differs only by that carry).
func (m *model) values(c *rangeCoder, old, d []byte, i int) int {
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
		key := hash(hb) >> (32 - predBits)
		pv := m.pred[key]
		hit := uint32(0)
		if pv != 0 {
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
			hi := m.mixNibble(c, ctx*272, hb, hc, w[4:], v>>4)
			lo := m.mixNibble(c, ctx*272+16+16*hi, hb|(hi+1)<<20, hc|(hi+1)<<20, w[:4], v&15)
			d[j] = byte(hi<<4 | lo)
		}
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
		more = c.bit(&m.more2[min(k, 3)][carry][longer], more)
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

// codeLit codes the extra bytes x; prev is the target byte before them. The decoder fills x.
func (m *model) codeLit(c *rangeCoder, prev byte, x []byte) {
	for i := range x {
		ctx := uint32(prev) << 8
		x[i] = byte(c.tree(m.lit[ctx:ctx+256], 8, uint32(x[i])))
		prev = x[i]
	}
}
