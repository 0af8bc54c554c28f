package rollout

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkWaveBucket: the cost of placing one device in a rollout's waves
// (100,000 devices cost 100,000 of these).
func BenchmarkWaveBucket(b *testing.B) {
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = "device-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		WaveBucket("rollout-42", ids[i%len(ids)])
	}
}

func BenchmarkDecide(b *testing.B) {
	p := testPlan()
	st := State{Phase: PhaseActive, Wave: 2, Since: t0}
	c := []Counts{{Members: 1000, Succeeded: 990}, {Members: 9000, Succeeded: 8000}, {Members: 40000, Succeeded: 10}, {Members: 50000}}
	now := t0.Add(10 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decide(p, st, c, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWindowContains(b *testing.B) {
	w, err := ParseWindow("Mon-Fri 02:00-04:00 Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Contains(t0.Add(time.Duration(i) * time.Minute))
	}
}

func BenchmarkWindowNext(b *testing.B) {
	w, err := ParseWindow("Mon-Fri 02:00-04:00 Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Next(t0.Add(time.Duration(i) * time.Minute))
	}
}
