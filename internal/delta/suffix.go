package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
)

// suffixArray returns the suffix array of data: the start offsets of all suffixes in
// lexicographic order. It uses 4 bytes per input byte and runs in O(n) time (SA-IS).
func suffixArray(data []byte) ([]int32, error) {
	if len(data) >= math.MaxInt32 {
		return nil, errors.New("delta: source image too large (2 GiB limit)")
	}
	sa := make([]int32, len(data))
	if len(data) > 0 {
		text_32(data, sa)
	}
	return sa, nil
}

// matchLimit caps how far one comparison during the search runs. A match longer than this is
// found in several consecutive steps at the same offset, which keeps the search cost bounded
// on long runs (zero-filled free space) without changing the matches found.
const matchLimit = 1 << 16

// commonPrefix returns the length of the common prefix of a and b, starting the comparison at
// from (the caller knows the first from bytes are equal), up to limit.
func commonPrefix(a, b []byte, from, limit int) int {
	n := min(len(a), len(b), limit)
	i := from
	for i+256 <= n && bytes.Equal(a[i:i+256], b[i:i+256]) {
		i += 256
	}
	for i+8 <= n {
		if binary.LittleEndian.Uint64(a[i:]) != binary.LittleEndian.Uint64(b[i:]) {
			break
		}
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// search returns the position in old of a longest (up to matchLimit) match for a prefix of
// target and its length, by binary search over the suffix array. It keeps the common prefix
// of target with both ends of the interval: every suffix in between shares at least the
// smaller of the two, so each comparison starts there (O(len(match) + log n) per search in
// practice instead of O(len(match) × log n)). The result is the same as comparing in full.
func search(sa []int32, old, target []byte) (pos, n int) {
	if len(sa) == 0 {
		return 0, 0
	}
	lo, hi := 0, len(sa)-1
	llo := commonPrefix(old[sa[lo]:], target, 0, matchLimit)
	lhi := commonPrefix(old[sa[hi]:], target, 0, matchLimit)
	for hi-lo >= 2 {
		mid := lo + (hi-lo)/2
		s := old[sa[mid]:]
		l := commonPrefix(s, target, min(llo, lhi), matchLimit)
		// Decide s < target comparing both truncated to matchLimit. A suffix that is a
		// proper prefix of target sorts before it (the suffix array's order): comparing only
		// the first min(len(s), len(target)) bytes would call it equal and send the search
		// the wrong way, which on an image ending in a long run of equal bytes (0xff in
		// filesystem bitmaps) found 2-byte matches instead of 64 KiB ones, at 1 MB of
		// comparisons per search.
		less := false
		switch {
		case l < min(len(s), len(target), matchLimit):
			less = s[l] < target[l]
		case l == len(s) && l < min(len(target), matchLimit):
			less = true
		}
		if less {
			lo, llo = mid, l
		} else {
			hi, lhi = mid, l
		}
	}
	if llo > lhi {
		return int(sa[lo]), llo
	}
	return int(sa[hi]), lhi
}
