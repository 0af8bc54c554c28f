package delta

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
)

// pipeWriter hashes (SHA-256) and writes the target on two goroutines of its own, so that
// decoding, hashing and writing overlap: the applier fills a buffer, the hasher hashes it and
// passes it on, the writer writes it and returns it to the free list. Buffers keep their
// order through both stages. Each buffer has capacity pipeChunk; there are pipeBuffers of
// them, one of which is always the applier's current buffer. Write copies into the current
// buffer; swap hands over a whole buffer of the caller's without copying. Write, swap and
// close must be called from one goroutine; close must always be called, and the hash is read
// only after it.
type pipeWriter struct {
	dst     io.Writer
	hash    hash.Hash
	cur     []byte
	toHash  chan []byte
	toWrite chan []byte
	free    chan []byte
	done    chan struct{}
	failed  atomic.Bool
	err     error // set by the writer, read after done is closed
}

const (
	pipeChunk   = MaxOpLength // so that an op's buffer can be swapped in whole
	pipeBuffers = 3
)

func newPipeWriter(dst io.Writer) *pipeWriter {
	w := &pipeWriter{
		dst:     dst,
		hash:    sha256.New(),
		cur:     make([]byte, 0, pipeChunk),
		toHash:  make(chan []byte, pipeBuffers),
		toWrite: make(chan []byte, pipeBuffers),
		free:    make(chan []byte, pipeBuffers+1), // +1: the buffer a swap takes in
		done:    make(chan struct{}),
	}
	for range pipeBuffers - 1 {
		w.free <- make([]byte, 0, pipeChunk)
	}
	go w.hasher(w.toHash)
	go w.writer()
	return w
}

func (w *pipeWriter) hasher(in <-chan []byte) {
	defer close(w.toWrite)
	for b := range in {
		if !w.failed.Load() {
			w.hash.Write(b)
		}
		w.toWrite <- b
	}
}

func (w *pipeWriter) writer() {
	defer close(w.done)
	for b := range w.toWrite {
		if w.err == nil {
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
			w.toHash <- w.cur
			w.cur = <-w.free
		}
	}
	return n, nil
}

// swap queues b, whose capacity must be pipeChunk, without copying it (after whatever was
// queued by Write), and returns an empty buffer of capacity pipeChunk that the caller owns
// from then on. The caller must not touch b after the call.
func (w *pipeWriter) swap(b []byte) ([]byte, error) {
	if cap(b) != pipeChunk {
		panic("delta: pipeWriter.swap: buffer of the wrong size")
	}
	if w.failed.Load() {
		return b[:0], w.close()
	}
	if len(w.cur) > 0 {
		w.toHash <- w.cur
		w.cur = <-w.free
	}
	w.toHash <- b
	return <-w.free, nil
}

// close writes what is queued, stops both goroutines and returns the first write error. It
// may be called more than once.
func (w *pipeWriter) close() error {
	if w.toHash != nil {
		if len(w.cur) > 0 {
			w.toHash <- w.cur
			w.cur = nil
		}
		close(w.toHash)
		w.toHash = nil
		<-w.done
	}
	return w.err
}
