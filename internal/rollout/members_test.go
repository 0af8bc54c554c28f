package rollout

import (
	"fmt"
	"math"
	"testing"
)

func TestWaveBucketStableAndUniform(t *testing.T) {
	if WaveBucket("r1", "dev-1") != WaveBucket("r1", "dev-1") {
		t.Fatal("bucket not stable")
	}
	p := testPlan() // 1 %, 10 %, 50 %, 100 %
	per := make([]int, len(p.Waves))
	const n = 40000
	for i := 0; i < n; i++ {
		b := WaveBucket("rollout-7", fmt.Sprintf("device-%d", i))
		if b < 0 || b >= Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
		per[p.WaveOf(b)]++
	}
	// Expected 1 %, 9 %, 40 %, 50 % of n; allow 5 binomial standard
	// deviations.
	for k, frac := range []float64{0.01, 0.09, 0.40, 0.50} {
		exp := frac * n
		sd := math.Sqrt(n * frac * (1 - frac))
		if d := float64(per[k]) - exp; d > 5*sd || d < -5*sd {
			t.Errorf("wave %d holds %d of %d devices; want about %.0f", k+1, per[k], n, exp)
		}
	}
}

// The first devices of one rollout are not the first devices of the next,
// and the separator keeps ("ab","c") apart from ("a","bc").
func TestWaveBucketKeyedByRollout(t *testing.T) {
	p := testPlan()
	both, first := 0, 0
	for i := 0; i < 20000; i++ {
		d := fmt.Sprintf("device-%d", i)
		a, b := p.WaveOf(WaveBucket("rollout-1", d)) == 0, p.WaveOf(WaveBucket("rollout-2", d)) == 0
		if a {
			first++
			if b {
				both++
			}
		}
	}
	// About 200 devices in wave 1 of rollout 1, of which about 2 also in
	// wave 1 of rollout 2.
	if first < 100 || both > 12 {
		t.Fatalf("%d devices first in rollout 1, %d of them also in rollout 2", first, both)
	}
	if WaveBucket("ab", "c") == WaveBucket("a", "bc") && WaveBucket("ab", "d") == WaveBucket("a", "bd") {
		t.Fatal("rollout and device ids run together")
	}
}

// Membership is monotone (a device offered in wave k is offered in every
// later wave) and stable as devices enrol (a new device moves no one).
func TestMembershipMonotoneAndStable(t *testing.T) {
	p := testPlan()
	var enrolled []string
	wave := map[string]int{}
	for i := 0; i < 5000; i++ {
		d := fmt.Sprintf("dev-%d", i)
		enrolled = append(enrolled, d)
		b := WaveBucket("r", d)
		wave[d] = p.WaveOf(b)
		for k := range p.Waves {
			in := Admits(p, State{Phase: PhaseActive, Wave: k, Since: t0}, b)
			if in != (wave[d] <= k) {
				t.Fatalf("device %s (first wave %d) admitted=%v at wave %d", d, wave[d], in, k)
			}
			lo, hi := p.WaveRange(k)
			if (b >= lo && b < hi) != (wave[d] == k) {
				t.Fatalf("WaveRange(%d) = [%d,%d) disagrees with WaveOf(%d) = %d", k, lo, hi, b, wave[d])
			}
		}
		if i%500 == 0 {
			for _, e := range enrolled {
				if p.WaveOf(WaveBucket("r", e)) != wave[e] {
					t.Fatalf("device %s moved after %d enrolments", e, i)
				}
			}
		}
	}
}

func TestWaveOfAndRangeEdges(t *testing.T) {
	p := Plan{Waves: []int{1, 100, 10000}}
	for _, tc := range []struct{ bucket, want int }{{0, 0}, {1, 1}, {99, 1}, {100, 2}, {9999, 2}, {10000, -1}, {-1, -1}} {
		if got := p.WaveOf(tc.bucket); got != tc.want {
			t.Errorf("WaveOf(%d) = %d, want %d", tc.bucket, got, tc.want)
		}
	}
	next := 0
	for k := range p.Waves {
		lo, hi := p.WaveRange(k)
		if lo != next || hi <= lo {
			t.Fatalf("WaveRange(%d) = [%d,%d); ranges must tile 0..Buckets", k, lo, hi)
		}
		next = hi
	}
	if next != Buckets {
		t.Fatalf("ranges end at %d", next)
	}
}

func TestAdmitsByPhase(t *testing.T) {
	p := testPlan()
	for _, tc := range []struct {
		st     State
		bucket int
		want   bool
	}{
		{NewState(), 0, false},
		{State{Phase: PhaseActive, Wave: 0, Since: t0}, 99, true},
		{State{Phase: PhaseActive, Wave: 0, Since: t0}, 100, false},
		{State{Phase: PhaseActive, Wave: 3, Since: t0}, 9999, true},
		{State{Phase: PhasePaused, Wave: 3, Since: t0}, 0, false},
		{State{Phase: PhaseHalted, Wave: 3, Since: t0}, 0, false},
		{State{Phase: PhaseAborted, Wave: 3, Since: t0}, 0, false},
		{State{Phase: PhaseComplete, Wave: 3, Since: t0}, 9999, true},
		{State{Phase: PhaseComplete, Wave: 3, Since: t0}, Buckets, false},
		{State{Phase: PhaseActive, Wave: 7, Since: t0}, 0, false},
		{State{Phase: PhaseActive, Wave: 1, Since: t0}, -1, false},
	} {
		if got := Admits(p, tc.st, tc.bucket); got != tc.want {
			t.Errorf("Admits(%+v, %d) = %v, want %v", tc.st, tc.bucket, got, tc.want)
		}
	}
}
