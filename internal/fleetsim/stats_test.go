package fleetsim

import (
	"errors"
	"testing"
	"time"
)

// TestHistogram: quantiles of known samples, within the 1/16 bucket width.
func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram has a quantile")
	}
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, 1000 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.07 {
			t.Errorf("quantile(%v) = %v, want %v to 7 %% above", tc.q, got, tc.want)
		}
	}
	for us := uint64(0); us < 1<<20; us += 997 {
		if i := bucketOf(us); bucketUpper(i) < us || i > 0 && bucketUpper(i-1) >= us {
			t.Fatalf("%d µs in bucket %d [.., %d], previous ends at %d", us, i, bucketUpper(i), bucketUpper(i-1))
		}
	}
}

// TestErrKind: errors are counted by kind, with their first message.
func TestErrKind(t *testing.T) {
	var s stats
	s.fail(&statusError{method: "POST", path: "/api/device/v1/enroll", status: 422, code: "token-invalid"})
	s.fail(&statusError{method: "POST", path: "/api/device/v1/enroll", status: 422, code: "token-invalid", detail: "second"})
	s.fail(&netError{err: errors.New("connection refused")})
	s.fail(&tufError{repo: "fleet", err: errors.New("expired")})
	ks := s.errorKinds()
	if len(ks) != 3 || ks[0].Kind != "http 422 token-invalid" || ks[0].Count != 2 || ks[0].Example != "fleetsim: POST /api/device/v1/enroll: 422 token-invalid" {
		t.Errorf("kinds: %+v", ks)
	}
	if ks[1].Kind != "network" || ks[2].Kind != "tuf fleet" {
		t.Errorf("kinds: %+v", ks)
	}
}
