package delta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// codeScript runs the same sequence of coding calls on an encoder or a decoder: bits with
// skewed adaptive probabilities, numbers, trees, direct bits, mixed bits and raw bytes between
// two range coder streams. It returns what it coded (encoder) or decoded (decoder).
func codeScript(c *rangeCoder, raw func([]byte), in []uint64) []uint64 {
	var out []uint64
	probs := newProbs(4)
	nums := newNumModels(2)
	tree := newProbs(256)
	cnt := newCounters(8)
	w := newWeights(2)
	var mx mixer
	for i, v := range in {
		var r uint64
		switch i % 7 {
		case 0:
			r = uint64(c.bit(&probs[i%4], uint32(v&1)))
		case 1:
			r = c.num(&nums[i%2], v)
		case 2:
			r = uint64(c.tree(tree, 8, uint32(v&0xFF)))
		case 3:
			r = uint64(c.direct(uint32(v&0xFFFF), 16))
		case 4:
			mx.n = 3
			for k := range 3 {
				mx.in[k] = &cnt[(i+k)%8]
			}
			r = uint64(c.mixBit(&mx, &w[i%2], uint32(v&1)))
		case 5:
			r = uint64(c.bitP(100, uint32(v&1)))
		case 6:
			if i%5 == 1 {
				b := binary.BigEndian.AppendUint64(nil, v)
				if c.dec {
					// Nothing to flush: the decoder has read exactly what the encoder wrote.
					if _, err := io.ReadFull(c.r, b); err != nil {
						return out
					}
					r = binary.BigEndian.Uint64(b)
					c.start()
				} else {
					c.flush()
					raw(b)
					c.reset()
					r = v
				}
			} else {
				r = uint64(c.bit(&probs[3], uint32(v>>3&1)))
			}
		}
		out = append(out, r)
	}
	return out
}

func scriptInput(r *rand.Rand, n int) []uint64 {
	in := make([]uint64, n)
	for i := range in {
		switch i % 7 {
		case 0, 4:
			in[i] = uint64(boolBit(r.IntN(10) == 0)) // skewed
		case 1:
			in[i] = r.Uint64() >> (1 + r.IntN(63))
		case 6:
			if i%5 == 1 {
				in[i] = r.Uint64()
			} else {
				in[i] = uint64(r.IntN(16))
			}
		default:
			in[i] = r.Uint64()
		}
	}
	return in
}

func TestRangeCoderRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 7, 100, 20000} {
		in := scriptInput(r, n)
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		enc := newEncoder(bw)
		want := codeScript(enc, func(b []byte) { bw.Write(b) }, in)
		enc.flush()
		bw.Flush()
		if len(buf.Bytes()) == 0 || buf.Bytes()[0] != 0 {
			t.Fatalf("n=%d: stream does not start with 0", n)
		}
		dec := newDecoder(bufio.NewReader(bytes.NewReader(buf.Bytes())))
		got := codeScript(dec, nil, make([]uint64, n))
		if dec.err != nil {
			t.Fatalf("n=%d: %v", n, dec.err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("n=%d: decoded values differ", n)
		}
		// The decoder consumed exactly what the encoder wrote.
		if _, err := dec.r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("n=%d: decoder left bytes unread (%v)", n, err)
		}
	}
}

func TestRangeCoderTruncated(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	in := scriptInput(r, 3000)
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	enc := newEncoder(bw)
	codeScript(enc, func(b []byte) { bw.Write(b) }, in)
	enc.flush()
	bw.Flush()
	p := buf.Bytes()
	for _, n := range []int{0, 1, 4, len(p) / 2, len(p) - 1} {
		dec := newDecoder(bufio.NewReader(bytes.NewReader(p[:n])))
		codeScript(dec, nil, make([]uint64, len(in)))
		if !errors.Is(dec.err, ErrTruncated) {
			t.Errorf("cut at %d of %d: got %v, want ErrTruncated", n, len(p), dec.err)
		}
	}
}

// TestRangeCoderGarbage decodes random bytes: it must end (every loop is bounded by the
// caller), never panic, and report most garbage as corrupt.
func TestRangeCoderGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	corrupt := 0
	for range 200 {
		b := make([]byte, 1+r.IntN(200))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		dec := newDecoder(bufio.NewReader(bytes.NewReader(b)))
		codeScript(dec, nil, make([]uint64, 300))
		if dec.err == nil {
			t.Fatal("300 decoding steps on at most 200 random bytes without an error")
		}
		if errors.Is(dec.err, ErrCorrupt) {
			corrupt++
		}
	}
	if corrupt < 150 {
		t.Errorf("only %d of 200 random streams reported corrupt", corrupt)
	}
}

// TestRangeCoderEfficiency checks that adaptive bits cost close to their entropy and that
// incompressible bits cost little more than one bit each.
func TestRangeCoderEfficiency(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	const n = 200000
	for _, q := range []float64{0.5, 0.1, 0.01} {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		enc := newEncoder(bw)
		p := prob(probInit)
		for range n {
			enc.bit(&p, boolBit(r.Float64() < q))
		}
		enc.flush()
		bw.Flush()
		h := -(q*math.Log2(q) + (1-q)*math.Log2(1-q)) * n / 8
		// Fast adaptation (1/16 per bit) follows changing statistics at the cost of some
		// noise on stationary ones: allow 15 % over the entropy.
		if got := float64(buf.Len()); got > h*1.15+16 {
			t.Errorf("p=%.2f: %d bytes, entropy %.0f", q, buf.Len(), h)
		}
	}
}

func TestSquashStretch(t *testing.T) {
	if squash(0) != 2047 || squash(-5000) != 1 || squash(5000) != 4094 {
		t.Fatalf("squash(0, -inf, +inf) = %d, %d, %d", squash(0), squash(-5000), squash(5000))
	}
	for x := int32(-2047); x < 2047; x++ {
		if squash(x) > squash(x+1) {
			t.Fatalf("squash not monotonic at %d", x)
		}
		if int32(squashTab[x+2047]) != squash(x) {
			t.Fatalf("squashTab[%d] = %d, want %d", x, squashTab[x+2047], squash(x))
		}
	}
	for p := int32(1); p < 4095; p++ {
		if d := squash(int32(stretchTab[p])) - p; d > 64 || d < -64 {
			t.Fatalf("squash(stretch(%d)) = %d", p, squash(int32(stretchTab[p])))
		}
	}
}

func TestCounter(t *testing.T) {
	c := counterInit
	for range 10 {
		c.update(1)
	}
	if c.p12() < 3600 {
		t.Fatalf("after ten 1s: p12 = %d", c.p12())
	}
	for range 200 {
		c.update(0)
	}
	if c.p12() > 100 {
		t.Fatalf("after 200 0s: p12 = %d", c.p12())
	}
	r := rand.New(rand.NewPCG(19, 20))
	c = counterInit
	sum := 0
	for i := range 20000 {
		c.update(boolBit(r.IntN(4) == 0))
		if i >= 10000 {
			sum += int(c.p12())
		}
	}
	if avg := sum / 10000; avg < 850 || avg > 1200 {
		t.Fatalf("p=1/4: average p12 %d, want about 1024", avg)
	}
}
