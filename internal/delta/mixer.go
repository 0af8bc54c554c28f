package delta

// Logistic mixing of a few adaptive predictions (in the style of Matt Mahoney's lpaq1, public
// domain), for the decisions where one context is not enough. All arithmetic is integer, so
// encoder and decoder agree on every platform.

// counter is an adaptive prediction: the probability of a 1 (16 bits) in the high half, and
// how many times it was updated (up to counterLimit) in the low half. It adapts fast while
// young (1/(n+1.5)) and then at a fixed rate, so rare contexts learn from few examples.
type counter uint32

const (
	counterInit  = counter(1<<31 | 0)
	counterLimit = 60
)

// rateTab[n] = 65536/(n+1.5).
var rateTab = func() (t [counterLimit + 1]int32) {
	for n := range t {
		t[n] = int32(65536 * 2 / (2*n + 3))
	}
	return t
}()

// p12 returns the probability of a 1 in 12 bits.
func (c counter) p12() int32 { return int32(c >> 20) }

func (c *counter) update(b uint32) {
	p := int32(*c >> 16)
	n := int32(*c & 0xFFFF)
	target := int32(b) * 65535
	p += (target - p) * rateTab[n] >> 16
	if n < counterLimit {
		n++
	}
	*c = counter(uint32(p)<<16 | uint32(n))
}

func newCounters(n int) []counter {
	c := make([]counter, n)
	for i := range c {
		c[i] = counterInit
	}
	return c
}

// squash(x) = 4096/(1+e^-(x/256)), interpolated from a table; x is clamped to ±2047 and the
// result lies in [1, 4095].
func squash(x int32) int32 {
	t := [33]int32{1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546,
		2047, 2549, 2994, 3348, 3607, 3785, 3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094}
	if x > 2047 {
		x = 2047
	}
	if x < -2047 {
		x = -2047
	}
	w := x & 127
	i := (x >> 7) + 16
	return (t[i]*(128-w) + t[i+1]*w + 64) >> 7
}

// squashTab[x+2047] = squash(x).
var squashTab = func() (t [4095]int16) {
	for x := range t {
		t[x] = int16(squash(int32(x) - 2047))
	}
	return t
}()

// stretchTab inverts squash: stretchTab[p] is the x with squash(x) closest to p from below.
var stretchTab = func() (t [4096]int16) {
	pi := int32(0)
	for x := int32(-2047); x <= 2047; x++ {
		v := squash(x)
		for j := pi; j <= v; j++ {
			t[j] = int16(x)
		}
		pi = v + 1
	}
	for j := pi; j < 4096; j++ {
		t[j] = 2047
	}
	return t
}()

const (
	maxInputs = 5
	mixShift  = 14 // learning rate of the mixer weights
	weightOne = 1 << 16
)

// mixer combines up to maxInputs counters with one weight vector chosen by the caller.
type mixer struct {
	n  int
	in [maxInputs]*counter
	st [maxInputs]int32
}

// mixBit codes bit b (encoder) or decodes one (decoder) with the mixed prediction of the
// counters in m, using and training weights w, and updates the counters.
func (c *rangeCoder) mixBit(m *mixer, w *[maxInputs]int32, b uint32) uint32 {
	n := min(m.n, maxInputs)
	in, st := &m.in, &m.st
	var dot int64
	for i := range n {
		st[i] = int32(stretchTab[in[i].p12()&4095])
		dot += int64(st[i]) * int64(w[i])
	}
	x := min(max(dot>>16, -2047), 2047)
	p1 := int32(squashTab[x+2047])
	b = c.bitP(uint32(probOne-p1), b)
	err := int32(b)<<12 - p1
	for i := range n {
		w[i] += (st[i]*err + 1<<(mixShift-1)) >> mixShift
		in[i].update(b)
	}
	return b
}

func newWeights(n int) [][maxInputs]int32 {
	w := make([][maxInputs]int32, n)
	for i := range w {
		for j := range w[i] {
			w[i][j] = weightOne * 3 / 10
		}
	}
	return w
}

// counterBit codes bit b (encoder) or decodes one (decoder) with the prediction of counter k
// alone, and updates it.
func (c *rangeCoder) counterBit(k *counter, b uint32) uint32 {
	p1 := min(max(k.p12(), 1), probOne-1)
	b = c.bitP(uint32(probOne-p1), b)
	k.update(b)
	return b
}

// pairBit codes bit b (encoder) or decodes one (decoder) with the mean of the predictions
// pa, pb of counters ka, kb, and updates both.
func (c *rangeCoder) pairBit(ka, kb *counter, pa, pb int32, b uint32) uint32 {
	p1 := min(max((pa+pb)>>1, 1), probOne-1)
	b = c.bitP(uint32(probOne-p1), b)
	ka.update(b)
	kb.update(b)
	return b
}
