package delta

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand"
	"testing"
)

// TestPipeWriterOrder mixes copied writes and swapped buffers and checks that the output and
// its hash keep their order.
func TestPipeWriterOrder(t *testing.T) {
	var out bytes.Buffer
	w := newPipeWriter(&out)
	rng := rand.New(rand.NewSource(1))
	var want []byte
	buf := make([]byte, pipeChunk)
	for i := range 200 {
		n := rng.Intn(pipeChunk) + 1
		if i%3 == 0 {
			n = rng.Intn(100) + 1
		}
		p := buf[:n]
		rng.Read(p)
		want = append(want, p...)
		if i%2 == 0 {
			b, err := w.swap(p)
			if err != nil {
				t.Fatal(err)
			}
			if cap(b) != pipeChunk || len(b) != 0 {
				t.Fatalf("swap returned a buffer of len %d cap %d", len(b), cap(b))
			}
			buf = b[:pipeChunk]
		} else if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("output differs from what was written (%d vs %d bytes)", out.Len(), len(want))
	}
	if [32]byte(w.hash.Sum(nil)) != sha256.Sum256(want) {
		t.Fatal("hash differs from the hash of what was written")
	}
}

type failWriter struct{ after int }

var errDisk = errors.New("disk on fire")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errDisk
	}
	f.after--
	return len(p), nil
}

// TestPipeWriterError checks that a destination's write error reaches a later Write or swap
// and close, and that nothing blocks after it.
func TestPipeWriterError(t *testing.T) {
	w := newPipeWriter(&failWriter{after: 2})
	buf := make([]byte, pipeChunk)
	var err error
	for range 100 {
		if _, err = w.Write(buf[:pipeChunk/2]); err != nil {
			break
		}
		var b []byte
		if b, err = w.swap(buf); err != nil {
			break
		}
		buf = b[:pipeChunk]
	}
	if !errors.Is(err, errDisk) {
		t.Fatalf("write error: got %v, want %v", err, errDisk)
	}
	if err := w.close(); !errors.Is(err, errDisk) {
		t.Fatalf("close: got %v, want %v", err, errDisk)
	}
}
