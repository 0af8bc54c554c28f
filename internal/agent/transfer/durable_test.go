package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watchedSlot is a file slot that knows how many bytes of its image are
// durable (written before a Sync that returned) and, before every write,
// reads the checkpoint journal of dir as a new process would after a power
// loss at that moment, and notes every record that claims more than is
// durable.
type watchedSlot struct {
	fileSlot
	dir string

	written, synced atomic.Int64
	mu              sync.Mutex
	reads           int      // journal reads that found a record
	wrong           []string // records that claimed bytes not durable
}

func (s *watchedSlot) OpenWriter(ctx context.Context, off int64) (Writer, error) {
	w, err := s.fileSlot.OpenWriter(ctx, off)
	if err != nil {
		return nil, err
	}
	// The first off bytes are durable: the contract of OpenWriter.
	s.written.Store(off)
	s.synced.Store(off)
	return &watchedWriter{Writer: w, s: s}, nil
}

// check reads the newest journal record and compares it with what is
// durable now. synced only grows, so a record above it claims bytes that
// were not durable when it was written.
func (s *watchedSlot) check() error {
	_, b, ok, err := readJournal(s.dir)
	if err != nil || !ok {
		return err
	}
	var st memState
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if st.Progress != nil {
		if synced := s.synced.Load(); st.Progress.Offset > synced {
			s.wrong = append(s.wrong, fmt.Sprintf("record %d claims %d bytes, %d durable", st.Seq, st.Progress.Offset, synced))
		}
	}
	return nil
}

type watchedWriter struct {
	Writer
	s *watchedSlot
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	if err := w.s.check(); err != nil {
		return 0, err
	}
	n, err := w.Writer.Write(p)
	w.s.written.Add(int64(n))
	return n, err
}

// Sync may run while Write does (a background checkpoint): what was
// written before it began is durable once it returns.
func (w *watchedWriter) Sync() error {
	before := w.s.written.Load()
	if err := w.Writer.Sync(); err != nil {
		return err
	}
	for {
		cur := w.s.synced.Load()
		if cur >= before || w.s.synced.CompareAndSwap(cur, before) {
			return nil
		}
	}
}

// TestCheckpointsClaimOnlyDurableBytes: with the power-loss window on (so
// the download runs ahead of the slot's flushes, saves in the background),
// a checkpoint in the journal never claims bytes that are not durable in
// the slot, at any write of the download; the last one covers the image.
func TestCheckpointsClaimOnlyDurableBytes(t *testing.T) {
	data := random(7, 24<<20)
	dir := t.TempDir()
	srv := newServer(t, data)
	slot := &watchedSlot{fileSlot: newSlot(t, "b"), dir: dir}
	rec := &memRecorder{}
	d := newDownloader(t, dir)
	d.LossBudget, d.LossWindow = CheckpointBytes, 250*time.Millisecond
	if err := d.Plain(context.Background(), Job{Version: "1.1.0", Target: target(srv.URL, data), Slot: slot, Rec: rec}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slot.bytes(t), data) {
		t.Fatal("the slot does not hold the image")
	}
	if err := slot.check(); err != nil {
		t.Fatal(err)
	}
	if len(slot.wrong) > 0 || slot.reads < 10 {
		t.Fatalf("%d journal reads with a record; records claiming bytes not durable: %q", slot.reads, slot.wrong)
	}
}
