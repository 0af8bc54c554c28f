package rollout

import (
	"crypto/rand"
	"testing"
)

func TestBucketUniformAndStable(t *testing.T) {
	seed := []byte("device-seed")
	if Bucket(seed, "p", "1.0.0") != Bucket(seed, "p", "1.0.0") {
		t.Fatal("bucket not stable")
	}
	admitted := 0
	const n = 20000
	for i := 0; i < n; i++ {
		s := make([]byte, 16)
		rand.Read(s)
		if Admit(Rule{Percent: 25}, Bucket(s, "p", "1.0.0")).Admitted {
			admitted++
		}
	}
	// 25% of 20000 = 5000; binomial sd ≈ 61, allow 5 sd.
	if admitted < 4700 || admitted > 5300 {
		t.Fatalf("admitted %d of %d at 25%%", admitted, n)
	}
}

func TestAdmitEdges(t *testing.T) {
	for b := 0; b < Buckets; b += 997 {
		if Admit(Rule{Percent: 0}, b).Admitted {
			t.Fatal("0% admitted a device")
		}
		if !Admit(Rule{Percent: 100}, b).Admitted {
			t.Fatal("100% refused a device")
		}
		if d := Admit(Rule{Percent: 100, Halted: true}, b); d.Admitted || d.Reason == "" {
			t.Fatal("halted rollout admitted a device")
		}
	}
	if (Rule{Percent: 101}).Validate() == nil || (Rule{Percent: -1}).Validate() == nil {
		t.Fatal("out-of-range percent accepted")
	}
}

func TestBucketDiffersAcrossReleases(t *testing.T) {
	seed := []byte("seed")
	same := 0
	for i := 0; i < 50; i++ {
		if Bucket(seed, "p", "1.0."+string(rune('0'+i%10))+string(rune('a'+i))) == Bucket(seed, "p", "2.0.0") {
			same++
		}
	}
	if same > 2 {
		t.Fatalf("bucket does not depend on the version (%d equal)", same)
	}
}
