package rollout

import (
	"crypto/sha256"
	"encoding/binary"
)

// WaveBucket places a device in a managed rollout: it maps the rollout's id
// and the device's stable id to 0..Buckets-1, uniformly. Wave k of a plan
// holds the devices whose bucket is below Waves[k] (Plan.WaveOf).
//
// Invariants:
//   - Stable: the bucket depends on nothing but the two ids, so devices that
//     enrol after the rollout started (its selection includes them) never
//     move anyone else, and a device keeps its wave for the whole rollout.
//   - Monotone: waves are cumulative, so a device offered the release in
//     wave k is still offered it in every later wave.
//   - Keyed by the rollout: the first devices of one rollout are not the
//     first devices of the next, so no device is always the guinea pig.
//
// Unlike Bucket (anonymous mode), the inputs are known to the server: this
// is for devices the server already identifies.
func WaveBucket(rolloutID, deviceID string) int {
	h := sha256.New()
	h.Write([]byte("uptrust managed rollout wave\x00"))
	h.Write([]byte(rolloutID))
	h.Write([]byte{0})
	h.Write([]byte(deviceID))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return int(binary.BigEndian.Uint64(sum[:8]) % Buckets)
}

// WaveOf returns the wave (0-based) a bucket first belongs to: the smallest
// k with bucket < Waves[k]. Every bucket of a valid plan has one, since the
// last wave is Buckets; a bucket outside 0..Buckets-1 gives -1.
func (p Plan) WaveOf(bucket int) int {
	if bucket < 0 {
		return -1
	}
	for k, w := range p.Waves {
		if bucket < w {
			return k
		}
	}
	return -1
}

// WaveRange returns the buckets [lo, hi) that first belong to wave k, for a
// query such as "bucket >= lo AND bucket < hi" counting a wave's members.
// The ranges of a valid plan's waves tile 0..Buckets-1.
func (p Plan) WaveRange(k int) (lo, hi int) {
	if k > 0 {
		lo = p.Waves[k-1]
	}
	return lo, p.Waves[k]
}

// Admits reports whether a device with the given wave bucket may be offered
// the release now: the rollout is active or complete and the device is in
// the active wave or an earlier one. Scheduled, paused, halted and aborted
// rollouts offer nothing, as a halted anonymous Rule does.
func Admits(p Plan, st State, bucket int) bool {
	switch st.Phase {
	case PhaseActive:
		return st.Wave >= 0 && st.Wave < len(p.Waves) && bucket >= 0 && bucket < p.Waves[st.Wave]
	case PhaseComplete:
		return bucket >= 0 && bucket < Buckets
	default:
		return false
	}
}
