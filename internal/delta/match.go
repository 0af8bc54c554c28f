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

	gapHit [16]counter // the zero run is the predicted one, by match length
	valHit []counter   // the value is the predicted one, by match length and agreement
	hitW   [][maxInputs]int32
}

const (
	matchRing  = 1 << 20
	matchBits  = 18
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
	if m.n < matchOrder {
		return
	}
	var h uint32
	for k := m.n - matchOrder; k != m.n; k++ {
		j := k & (matchRing - 1)
		h = (h + uint32(m.vals[j]) + uint32(m.gaps[j])<<8) * 0x2F0B4F27
	}
	h >>= 32 - matchBits
	if m.len == 0 {
		if p := m.table[h]; p != 0 && m.n-p < matchRing-1 {
			m.ptr, m.len = p, 1
		}
	}
	m.table[h] = m.n
}
