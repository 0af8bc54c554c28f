package delta

import (
	"fmt"
	"io"
	"math"
	"os"
)

// costStats adds up the ideal code length of coded bits per category, for tuning the models
// (UPTRUST_DELTA_STATS=1 prints it to stderr from Create).
type costStats struct {
	cat  int
	bits [catCount]float64
	n    [catCount]int64
}

const (
	catOp = iota
	catRuns
	catVal
	catLit
	catStored
	catCount
)

var catNames = [catCount]string{"ops", "runs", "values", "literals", "stored"}

func (s *costStats) add(p prob, b uint32) {
	s.n[s.cat]++
	q := float64(p) / probOne
	if b == 1 {
		q = 1 - q
	}
	s.bits[s.cat] -= math.Log2(q)
}

func (s *costStats) print(w io.Writer) {
	for i, b := range s.bits {
		fmt.Fprintf(w, "%-9s %10.0f bytes %10d items\n", catNames[i], b/8, s.n[i])
	}
}

func statsEnabled() bool { return os.Getenv("UPTRUST_DELTA_STATS") != "" }
