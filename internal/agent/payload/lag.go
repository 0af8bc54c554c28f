package payload

import "time"

// The power-loss window (Checkpoints.Window). What a power loss costs a
// device is time on its link: the bytes written after the last persisted
// save are downloaded again. A fixed byte bound (Checkpoints.MaxLag) small
// enough for a slow link makes a fast link wait for the slot's flushes
// every few hundred KiB; a bound in link time lets a fast link run ahead of
// them by as many bytes as it moves in that time, and costs every link the
// same time at most.
//
// The link's rate is measured as the copy goes, from the bytes the source
// delivered over the last windowSpans windows (wall time, the copy's own
// waits included, so it never overstates the rate; bytes before the copy
// began are not counted, so a copy's first span understates it).

// windowSpans is how many windows the rate is averaged over: long enough
// that the copy's own waits for a save do not swing the bound, short
// enough to follow a link that slows down.
const windowSpans = 4

// meterSlots is how many samples per span a linkMeter keeps at most.
const meterSlots = 16

// sample is the source's offset at a moment.
type sample struct {
	t   time.Time
	off int64
}

// linkMeter tracks the bytes a source delivered over the last span. It
// reads no clock: it is told the times. Memory is bounded (about
// meterSlots samples) however many observations it gets.
type linkMeter struct {
	span    time.Duration
	samples []sample // oldest first, at least span/meterSlots apart
	last    sample   // the latest observation
}

// newLinkMeter returns a meter over span that starts at off at t.
func newLinkMeter(span time.Duration, t time.Time, off int64) *linkMeter {
	m := &linkMeter{span: span, samples: make([]sample, 0, meterSlots+2)}
	m.observe(t, off)
	return m
}

// observe records that the source had delivered up to off at t. Times
// must not go backwards (a monotonic clock).
func (m *linkMeter) observe(t time.Time, off int64) {
	m.last = sample{t, off}
	if n := len(m.samples); n == 0 || t.Sub(m.samples[n-1].t) >= m.span/meterSlots {
		m.samples = append(m.samples, m.last)
	}
	cut := 0
	for cut < len(m.samples)-1 && t.Sub(m.samples[cut].t) > m.span {
		cut++
	}
	if cut > 0 {
		m.samples = append(m.samples[:0], m.samples[cut:]...)
	}
}

// moved returns the bytes delivered from the oldest sample taken within
// span before t up to the latest observation: at most what the source
// delivered in the span before t. 0 if no sample is that recent.
func (m *linkMeter) moved(t time.Time) int64 {
	for _, s := range m.samples {
		if t.Sub(s.t) <= m.span {
			return m.last.off - s.off
		}
	}
	return 0
}

// windowLag is the share of the window's bytes the lag may take (3/4):
// the rest is left for the buffer being filled and the bytes in flight in
// the network, which a power loss also costs, so that it costs at most
// about one window of link time in all.
const windowLag = 0.75

// allowedLag is the bound on bytes written and not covered by a persisted
// save: maxLag, or windowLag of the bytes the link moves in one window at
// the rate measured over the span before t, whichever is larger. With
// window 0 it is maxLag alone.
func allowedLag(maxLag int64, window time.Duration, m *linkMeter, t time.Time) int64 {
	if window <= 0 || m == nil {
		return maxLag
	}
	share := int64(float64(m.moved(t)) * windowLag * float64(window) / float64(m.span))
	return max(maxLag, share)
}

// saveShare: when the window raises the bound above MaxLag, a save comes
// due after bound/saveShare bytes rather than every Checkpoints.Bytes, so
// a fast link does not flush the slot (and write the journal) every few
// hundred KiB; the bound itself still holds.
const saveShare = 4
