package fleetsim

import (
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// histogram counts durations in log-linear buckets (16 per power of two
// of microseconds: under 6.25 % error), lock-free.
type histogram struct {
	b [64 * 16]atomic.Uint64
	n atomic.Uint64
}

func bucketOf(us uint64) int {
	if us < 16 {
		return int(us)
	}
	e := bits.Len64(us) - 1 // 2^e <= us
	m := (us >> (e - 4)) & 15
	return (e-3)*16 + int(m)
}

// bucketUpper is the largest value in bucket i, in microseconds.
func bucketUpper(i int) uint64 {
	if i < 16 {
		return uint64(i)
	}
	e := i/16 + 3
	m := uint64(i % 16)
	return (16+m+1)<<(e-4) - 1
}

func (h *histogram) add(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	i := min(bucketOf(us), len(h.b)-1)
	h.b[i].Add(1)
	h.n.Add(1)
}

// quantile returns the q-quantile (0 < q <= 1), 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.b {
		seen += h.b[i].Load()
		if seen >= rank {
			return time.Duration(bucketUpper(i)) * time.Microsecond
		}
	}
	return time.Duration(bucketUpper(len(h.b)-1)) * time.Microsecond
}

// stats are the counters of a run, shared by all workers.
type stats struct {
	requests     atomic.Int64
	payloadBytes atomic.Int64
	checks       atomic.Int64 // successful update checks
	verified     atomic.Int64 // checks that ran go-tuf (see quick)
	checkTime    histogram
	lag          histogram // how late checks started against their schedule
	succeeded    atomic.Int64
	failed       atomic.Int64

	mu     sync.Mutex
	errors map[string]*ErrorKind
}

// ErrorKind counts errors of one kind, with one example.
type ErrorKind struct {
	Kind    string `json:"kind"`
	Count   int64  `json:"count"`
	Example string `json:"example"`
}

func (s *stats) fail(err error) {
	k := errKind(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errors == nil {
		s.errors = map[string]*ErrorKind{}
	}
	e := s.errors[k]
	if e == nil {
		e = &ErrorKind{Kind: k, Example: err.Error()}
		s.errors[k] = e
	}
	e.Count++
}

func (s *stats) errorKinds() []ErrorKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ErrorKind{}
	for _, e := range s.errors {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Kind < out[j].Kind
	})
	return out
}

// errKind names the kind of err for the summary: "http 403 rejected",
// "network", "tuf release", "payload", "other".
func errKind(err error) string {
	var se *statusError
	var ne *netError
	var te *tufError
	switch {
	case errors.As(err, &te):
		return "tuf " + te.repo
	case errors.As(err, &se):
		k := fmt.Sprintf("http %d", se.status)
		if se.code != "" {
			k += " " + se.code
		} else if t := http.StatusText(se.status); t != "" {
			k += " " + t
		}
		return k
	case errors.As(err, &ne):
		return "network"
	case errors.Is(err, errTooLong):
		return "too long"
	}
	return "other"
}
