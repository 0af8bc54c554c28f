package delta

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// The body of a delta is coded with an adaptive binary range coder in the style of LZMA's
// (Igor Pavlov, public domain): 32-bit range, carry propagation through a cached byte, and
// 12-bit probabilities that move towards each coded bit by 1/16 of the distance.
//
// One type does both directions, so that every model is written once: in the encoder, bit
// codes the given bit and returns it; in the decoder, it ignores the argument and returns the
// decoded bit. Model code calls c.bit with the value it would code and uses the return value.
//
// Stream invariants: the encoder's output starts with a 0 byte; after flush, the decoder has
// consumed exactly the bytes the encoder wrote (5 at start, one per normalisation), so raw
// bytes can follow a flushed stream and a new stream can start after them. In a valid stream
// the decoder's code stays below its range; the decoder checks this on every byte it reads, so
// most corruption is found close to where it is.

// prob is the probability that the next bit is 0, in units of 1/probOne. It stays within
// [probMin, probOne-probMin], so no bit ever gets a zero-width interval.
type prob uint16

const (
	probBits   = 12
	probOne    = 1 << probBits
	probInit   = probOne / 2
	probShift  = 4 // adaptation rate: p moves 1/16 of the way to the coded bit
	rangeTop   = 1 << 24
	rcInitSize = 5 // bytes the decoder reads to start a stream; bytes the encoder adds at flush
)

// newProbs returns n probabilities set to 1/2.
func newProbs(n int) []prob {
	p := make([]prob, n)
	for i := range p {
		p[i] = probInit
	}
	return p
}

// rangeCoder encodes to w or decodes from r. It is not safe for concurrent use.
type rangeCoder struct {
	dec bool
	rng uint32

	// encoder
	w         *bufio.Writer
	low       uint64
	cache     byte
	cacheSize int64
	written   int64 // bytes given to w, for tests and statistics

	// decoder
	r    *bufio.Reader
	code uint32
	err  error // first error; after it the decoder returns arbitrary bits

	stats *costStats // encoder only: cost per category, for tuning (nil: off)
}

func newEncoder(w *bufio.Writer) *rangeCoder {
	c := &rangeCoder{w: w}
	c.reset()
	return c
}

// newDecoder returns a decoder reading from r; it has read the stream's first bytes (check
// c.err).
func newDecoder(r *bufio.Reader) *rangeCoder {
	c := &rangeCoder{dec: true, r: r}
	c.start()
	return c
}

// reset starts a new encoder stream.
func (c *rangeCoder) reset() {
	c.rng, c.low, c.cache, c.cacheSize = 0xFFFFFFFF, 0, 0, 1
}

// start starts a new decoder stream: a 0 byte, then the first 32 bits of code.
func (c *rangeCoder) start() {
	c.rng, c.code = 0xFFFFFFFF, 0
	if b := c.readByte(); b != 0 && c.err == nil {
		c.fail(fmt.Errorf("%w: range coder stream does not start with 0", ErrCorrupt))
	}
	for range rcInitSize - 1 {
		c.code = c.code<<8 | uint32(c.readByte())
	}
	if c.code == 0xFFFFFFFF {
		c.fail(fmt.Errorf("%w: range coder out of range", ErrCorrupt))
	}
}

func (c *rangeCoder) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *rangeCoder) readByte() byte {
	b, err := c.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: body ends inside the range coder stream", ErrTruncated)
		} else {
			err = fmt.Errorf("delta: reading delta: %w", err)
		}
		c.fail(err)
		c.code = 0 // keep decoding well-defined
		return 0
	}
	return b
}

// bit codes bit b (0 or 1; encoder) or decodes a bit (decoder) with probability p, and
// adapts p.
func (c *rangeCoder) bit(p *prob, b uint32) uint32 {
	if c.stats != nil {
		c.stats.add(*p, b)
	}
	b = c.split((c.rng>>probBits)*uint32(*p), b)
	if b == 0 {
		*p += (probOne - *p) >> probShift
	} else {
		*p -= *p >> probShift
	}
	return b
}

// bitP codes bit b (encoder) or decodes a bit (decoder) with probability p0/probOne of a 0,
// 0 < p0 < probOne, without adapting anything.
func (c *rangeCoder) bitP(p0 uint32, b uint32) uint32 {
	if c.stats != nil {
		c.stats.add(prob(p0), b)
	}
	return c.split((c.rng>>probBits)*p0, b)
}

// split codes bit b (encoder) or decodes a bit (decoder) with the range split at bound: a 0
// keeps [0, bound), a 1 keeps [bound, rng).
func (c *rangeCoder) split(bound, b uint32) uint32 {
	if c.dec {
		b = 0
		if c.code >= bound {
			b = 1
		}
	}
	if b == 0 {
		c.rng = bound
	} else {
		if c.dec {
			c.code -= bound
		} else {
			c.low += uint64(bound)
		}
		c.rng -= bound
	}
	if c.rng < rangeTop {
		c.normalize()
	}
	return b
}

// normalize shifts out the range's top byte until it holds at least rangeTop again: the
// encoder emits it, the decoder reads the next byte of the stream.
func (c *rangeCoder) normalize() {
	for c.rng < rangeTop {
		c.rng <<= 8
		if c.dec {
			c.code = c.code<<8 | uint32(c.readByte())
			if c.code >= c.rng {
				c.fail(fmt.Errorf("%w: range coder out of range", ErrCorrupt))
				c.code = 0
			}
		} else {
			c.shiftLow()
		}
	}
}

// direct codes the low n bits of v with probability 1/2 each (no model).
func (c *rangeCoder) direct(v uint32, n int) uint32 {
	var out uint32
	for i := n - 1; i >= 0; i-- {
		b := (v >> uint(i)) & 1
		c.rng >>= 1
		if c.dec {
			b = 0
			if c.code >= c.rng {
				c.code -= c.rng
				b = 1
			}
		} else if b == 1 {
			c.low += uint64(c.rng)
		}
		out = out<<1 | b
		if c.rng < rangeTop {
			c.normalize()
		}
	}
	return out
}

// tree codes the low n bits of v, high bit first, with a binary tree of probabilities
// (probs[1:1<<n]; probs[0] is unused).
func (c *rangeCoder) tree(probs []prob, n int, v uint32) uint32 {
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		m = m<<1 | c.bit(&probs[m], (v>>uint(i))&1)
	}
	return m - 1<<uint(n)
}

func (c *rangeCoder) shiftLow() {
	if c.low < 0xFF000000 || c.low >= 1<<32 {
		carry := byte(c.low >> 32)
		t := c.cache
		for {
			c.w.WriteByte(t + carry)
			c.written++
			t = 0xFF
			c.cacheSize--
			if c.cacheSize == 0 {
				break
			}
		}
		c.cache = byte(c.low >> 24)
	}
	c.cacheSize++
	c.low = (c.low & 0x00FFFFFF) << 8
}

// flush ends the encoder stream: the decoder will have consumed exactly the bytes written so
// far when it has decoded the last bit. Call reset before coding again.
func (c *rangeCoder) flush() {
	for range rcInitSize {
		c.shiftLow()
	}
}
