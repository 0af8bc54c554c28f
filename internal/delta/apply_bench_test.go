package delta

import (
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"testing"
)

// BenchmarkApplyFile applies the delta UPTRUST_BENCH_DELTA to the source UPTRUST_BENCH_SOURCE
// (skipped unless both are set), writing to io.Discard.
func BenchmarkApplyFile(b *testing.B) {
	srcPath, deltaPath := os.Getenv("UPTRUST_BENCH_SOURCE"), os.Getenv("UPTRUST_BENCH_DELTA")
	if srcPath == "" || deltaPath == "" {
		b.Skip("UPTRUST_BENCH_SOURCE and UPTRUST_BENCH_DELTA not set")
	}
	f, err := os.Open(srcPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		b.Fatal(err)
	}
	src := Source{R: f, Size: size, SHA256: [32]byte(h.Sum(nil))}
	b.ResetTimer()
	for range b.N {
		d, err := os.Open(deltaPath)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(context.Background(), io.Discard, src, bufio.NewReaderSize(d, 1<<16)); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
