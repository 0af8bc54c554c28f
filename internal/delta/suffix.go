package delta

import (
	"bytes"
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

func matchLen(a, b []byte) int {
	n := min(len(a), len(b), matchLimit)
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// search returns the position in old of a longest (up to matchLimit) match for a prefix of
// target and its length, by binary search over the suffix array.
func search(sa []int32, old, target []byte) (pos, n int) {
	if len(sa) == 0 {
		return 0, 0
	}
	lo, hi := 0, len(sa)-1
	for hi-lo >= 2 {
		mid := lo + (hi-lo)/2
		s := old[sa[mid]:]
		m := min(len(s), len(target), matchLimit)
		if bytes.Compare(s[:m], target[:m]) < 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	x := matchLen(old[sa[lo]:], target)
	y := matchLen(old[sa[hi]:], target)
	if x > y {
		return int(sa[lo]), x
	}
	return int(sa[hi]), y
}
