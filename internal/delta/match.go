package delta

// matchModel predicts the diff stream from its own history, as a long-range match: the
// sequence of nonzero diff values, each with the length of the zero run before it. A changed
// file that occurs more than once in an image (the same binary in a filesystem and in an
// archive of it) gives the same sequence again, farther back than any other context reaches.
// Its memory is fixed: a ring of matchRing values and gaps, and a table of 1<<matchBits
// positions.
type matchModel struct {
	vals  []byte   // ring of values
	gaps  []uint16 // per value: 0 inside a run, else 1 + the zero run before it (saturated)
	table []uint32 // hash of the last matchOrder (gap, value) pairs -> index after them
	n     uint32   // values seen
	ptr   uint32   // index of the predicted value, if length > 0
	len   uint32   // length of the current match (0: none)
	reg   uint64   // the last matchOrder (value, gap) pairs, 16 bits each

	gapHit [16]counter // the zero run is the predicted one, by match length
	valHit []counter   // the value is the predicted one, by match length and agreement
	hitW   [][maxInputs]int32
}

const (
	matchRing  = 1 << 19
	matchBits  = 17
	matchOrder = 4
	matchMin   = 4 // shorter matches predict too often wrongly (agent pair +3 % at 1)
	maxGap     = 1<<16 - 2
)

func newMatchModel() *matchModel {
	m := &matchModel{
		vals:   make([]byte, matchRing),
		gaps:   make([]uint16, matchRing),
		table:  make([]uint32, 1<<matchBits),
		valHit: newCounters(16 * 8),
		hitW:   newWeights(16),
	}
	for i := range m.gapHit {
		m.gapHit[i] = counterInit
	}
	return m
}

// gapCode is what the ring stores for a value: 0 inside a run, else 1 + the zero run length.
func gapCode(first bool, z uint64) uint16 {
	if !first {
		return 0
	}
	return uint16(min(z, maxGap) + 1)
}

// predicted returns the predicted gap code and value of the next value, if there is a match.
func (m *matchModel) predicted() (gap uint16, val byte, ok bool) {
	if m.len < matchMin {
		return 0, 0, false
	}
	i := m.ptr & (matchRing - 1)
	return m.gaps[i], m.vals[i], true
}

// lenBucket returns 0..15 by the current match length.
func (m *matchModel) lenBucket() uint32 {
	if m.len < 12 {
		return m.len
	}
	return min(12+(m.len-12)/16, 15)
}

// push appends a coded value and follows or looks up the match.
func (m *matchModel) push(gap uint16, v byte) {
	if i := m.ptr & (matchRing - 1); m.len > 0 && m.gaps[i] == gap && m.vals[i] == v {
		m.ptr++
		m.len++
	} else {
		m.len = 0
	}
	i := m.n & (matchRing - 1)
	m.vals[i], m.gaps[i] = v, gap
	m.n++
	m.reg = m.reg<<16 | uint64(v) | uint64(min(gap, 255))<<8 // the last matchOrder pairs
	if m.n < matchOrder {
		return
	}
	h := uint32((m.reg * 0x9E3779B97F4A7C15) >> (64 - matchBits))
	if m.len == 0 {
		if p := m.table[h]; p != 0 && m.n-p < matchRing-1 {
			m.ptr, m.len = p, 1
		}
	}
	m.table[h] = m.n
}

// litMatch predicts modelled extra bytes from earlier ones, as a long-range match: new file
// contents that occur more than once in an image. Its memory is fixed: a ring of matchRing
// bytes and a table of 1<<matchBits positions.
type litMatch struct {
	ring  []byte
	table []uint32 // hash of the last litOrder bytes -> index after them
	n     uint32
	ptr   uint32
	len   uint32
	reg   uint64      // the last litOrder bytes
	hit   [16]counter // the byte is the predicted one, by match length
}

const litOrder = 6

func newLitMatch() *litMatch {
	m := &litMatch{ring: make([]byte, matchRing), table: make([]uint32, 1<<matchBits)}
	for i := range m.hit {
		m.hit[i] = counterInit
	}
	return m
}

// code codes byte v (encoder) or decodes one if a match predicts it; ok is false if there is
// no usable match or it predicted wrong.
func (m *litMatch) code(c *rangeCoder, v byte) (byte, bool) {
	if m.len < matchMin {
		return 0, false
	}
	pv := m.ring[m.ptr&(matchRing-1)]
	b := min(m.len, 15)
	if c.counterBit(&m.hit[b], boolBit(v == pv)) == 1 {
		return pv, true
	}
	return 0, false
}

// push appends a coded byte and follows or looks up the match.
func (m *litMatch) push(v byte) {
	if m.len > 0 && m.ring[m.ptr&(matchRing-1)] == v {
		m.ptr++
		m.len++
	} else {
		m.len = 0
	}
	m.ring[m.n&(matchRing-1)] = v
	m.n++
	m.reg = (m.reg<<8 | uint64(v)) & (1<<(8*litOrder) - 1)
	h := uint32((m.reg * 0x9E3779B97F4A7C15) >> (64 - matchBits))
	if m.len == 0 && m.n >= litOrder {
		if p := m.table[h]; p != 0 && m.n-p < matchRing-1 {
			m.ptr, m.len = p, 1
		}
	}
	m.table[h] = m.n
}

// opMatch predicts an op from earlier ones, as a long-range match on the op sequence (the
// ops of a changed file that occurs more than once in an image repeat).
type opMatch struct {
	ring    []op
	table   []uint32 // hash of the last two ops' lengths -> index after them
	n       uint32
	ptr     uint32
	len     uint32
	seekHit [8]counter // the seek is the predicted one, by match length
	lenHit  [16]counter
}

const (
	opRing = 1 << 15
	opBits = 14
)

func newOpMatch() *opMatch {
	m := &opMatch{ring: make([]op, opRing), table: make([]uint32, 1<<opBits)}
	for i := range m.seekHit {
		m.seekHit[i] = counterInit
	}
	for i := range m.lenHit {
		m.lenHit[i] = counterInit
	}
	return m
}

// predicted returns the predicted next op, if there is a match.
func (m *opMatch) predicted() (op, bool) {
	if m.len < 1 {
		return op{}, false
	}
	return m.ring[m.ptr&(opRing-1)], true
}

func (m *opMatch) push(o op) {
	if p, ok := m.predicted(); ok && p == o {
		m.ptr++
		m.len++
	} else {
		m.len = 0
	}
	m.ring[m.n&(opRing-1)] = o
	m.n++
	if m.n < 2 {
		return
	}
	a, b := m.ring[(m.n-2)&(opRing-1)], m.ring[(m.n-1)&(opRing-1)]
	h := uint32(a.add)*0x9E3779B1 ^ uint32(a.extra)*0x85EBCA6B ^ uint32(b.add)*0xC2B2AE35 ^ uint32(b.extra)*0x27D4EB2F
	h = mixHash(h) >> (32 - opBits)
	if m.len == 0 {
		if p := m.table[h]; p != 0 && m.n-p < opRing-1 {
			m.ptr, m.len = p, 1
		}
	}
	m.table[h] = m.n
}
