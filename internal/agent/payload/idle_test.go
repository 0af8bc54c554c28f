package payload_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// stallAfter delivers the first n bytes of r, then blocks until release is
// closed, then delivers the rest.
type stallAfter struct {
	r       io.Reader
	n       int64
	stalled chan struct{} // closed when the stall begins
	release chan struct{}
}

func (s *stallAfter) Read(p []byte) (int, error) {
	if s.n == 0 {
		close(s.stalled)
		<-s.release
		s.n = -1
	}
	if s.n > 0 && int64(len(p)) > s.n {
		p = p[:s.n]
	}
	n, err := s.r.Read(p)
	if s.n > 0 {
		s.n -= int64(n)
	}
	return n, err
}

// TestIdleCheckpoint: a source that stalls after whole buffers gets a save
// at exactly the offset written, while it is stalled, with the slot synced
// first; the copy then goes on and completes.
func TestIdleCheckpoint(t *testing.T) {
	data, hashes := image(t, 3*payload.BufferSize)
	stallAt := int64(5 * payload.BufferSize / 4) // whole buffers of BufferSize/4
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	src := &stallAfter{r: bytes.NewReader(data), n: stallAt, stalled: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := r.Install(context.Background(), src, j, payload.Checkpoints{Save: j.save, Idle: 20 * time.Millisecond})
		done <- err
	}()
	<-src.stalled
	deadline := time.Now().Add(10 * time.Second)
	for {
		j.mu.Lock()
		n := len(j.saves)
		j.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no save while the source stalled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	j.mu.Lock()
	got := j.saves[0].Offset
	j.mu.Unlock()
	if got != stallAt {
		t.Fatalf("idle save at offset %d, want %d", got, stallAt)
	}
	close(src.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(j.saves) != 1 {
		t.Fatalf("saves at %v, want one (idle only once per stall)", j.saves)
	}
	if !bytes.Equal(j.img, data) {
		t.Fatal("slot does not hold the image")
	}
}

// TestIdleCheckpointSyncFails: an idle save whose sync fails stops Install
// with that error once the source returns, and nothing claims the bytes.
func TestIdleCheckpointSyncFails(t *testing.T) {
	data, hashes := image(t, 2*payload.BufferSize)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{syncErr: errors.New("disk gone")}
	src := &stallAfter{r: bytes.NewReader(data), n: payload.BufferSize / 4, stalled: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := r.Install(context.Background(), src, j, payload.Checkpoints{Save: j.save, Idle: 10 * time.Millisecond})
		done <- err
	}()
	<-src.stalled
	for {
		j.mu.Lock()
		tried := j.syncCalls > 0
		j.mu.Unlock()
		if tried {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(src.release)
	err := <-done
	if err == nil || !errors.Is(err, j.syncErr) {
		t.Fatalf("Install: %v, want the sync error", err)
	}
	if len(j.saves) != 0 {
		t.Fatalf("saved %v after a failed sync", j.saves)
	}
}

// TestIdleCheckpointNothingNew: a stall right after a save gets no second
// save of the same offset.
func TestIdleCheckpointNothingNew(t *testing.T) {
	data, hashes := image(t, payload.BufferSize)
	stallAt := int64(payload.BufferSize / 2)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	src := &stallAfter{r: bytes.NewReader(data), n: stallAt, stalled: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := r.Install(context.Background(), src, j, payload.Checkpoints{Save: j.save, Bytes: payload.BufferSize / 4, Idle: 5 * time.Millisecond})
		done <- err
	}()
	<-src.stalled
	time.Sleep(100 * time.Millisecond) // twenty idle periods
	close(src.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, s := range j.saves {
		got = append(got, s.Offset)
	}
	if want := []int64{payload.BufferSize / 4, payload.BufferSize / 2, 3 * payload.BufferSize / 4}; !equal(got, want) {
		t.Fatalf("saved at %v, want %v (the byte grid only)", got, want)
	}
}
