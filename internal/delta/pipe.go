package delta

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
)

// pipeWriter hashes (SHA-256) and writes the target on its own goroutine, so that decoding
// overlaps with hashing and writing. It holds pipeBuffers buffers of pipeChunk bytes; Write
// copies into the current one and hands it over when full. Write and close must be called
// from one goroutine; close must always be called, and the hash is read only after it.
type pipeWriter struct {
	dst    io.Writer
	hash   hash.Hash
	cur    []byte
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	failed atomic.Bool
	err    error // set by the goroutine, read after done is closed
}

const (
	pipeChunk   = 256 << 10
	pipeBuffers = 3
)

func newPipeWriter(dst io.Writer) *pipeWriter {
	w := &pipeWriter{
		dst:  dst,
		hash: sha256.New(),
		cur:  make([]byte, 0, pipeChunk),
		full: make(chan []byte, pipeBuffers),
		free: make(chan []byte, pipeBuffers),
		done: make(chan struct{}),
	}
	for range pipeBuffers - 1 {
		w.free <- make([]byte, 0, pipeChunk)
	}
	go w.run(w.full)
	return w
}

func (w *pipeWriter) run(full <-chan []byte) {
	defer close(w.done)
	for b := range full {
		if w.err == nil {
			w.hash.Write(b)
			if _, err := w.dst.Write(b); err != nil {
				w.err = fmt.Errorf("delta: writing target: %w", err)
				w.failed.Store(true)
			}
		}
		w.free <- b[:0]
	}
}

// Write queues p. A write error of the destination shows up in a later Write or in close.
func (w *pipeWriter) Write(p []byte) (int, error) {
	if w.failed.Load() {
		return 0, w.close()
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(w.cur[len(w.cur):cap(w.cur)], p)
		w.cur, p = w.cur[:len(w.cur)+k], p[k:]
		if len(w.cur) == cap(w.cur) {
			w.full <- w.cur
			w.cur = <-w.free
		}
	}
	return n, nil
}

// close writes what is queued, stops the goroutine and returns the first write error. It may
// be called more than once.
func (w *pipeWriter) close() error {
	if w.full != nil {
		if len(w.cur) > 0 {
			w.full <- w.cur
		}
		close(w.full)
		w.full = nil
		<-w.done
	}
	return w.err
}
