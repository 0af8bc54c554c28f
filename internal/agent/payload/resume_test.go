package payload_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// journal is a slot Writer at an offset that logs writes, syncs and saves,
// so tests can check that a save never claims bytes that were not synced.
// It is safe for Sync and persist to run while Write runs.
type journal struct {
	mu      sync.Mutex
	img     []byte // the slot's content
	pos     int64
	synced  int64 // bytes durable
	saves   []payload.Progress
	failAt  int64 // a Write reaching this offset fails (0: never)
	events  []string
	syncErr error
	// syncCalls counts Sync calls, failed ones included.
	syncCalls int
}

func (j *journal) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failAt > 0 && j.pos+int64(len(p)) >= j.failAt {
		return 0, errors.New("flash worn out")
	}
	end := j.pos + int64(len(p))
	if int64(len(j.img)) < end {
		j.img = append(j.img, make([]byte, end-int64(len(j.img)))...)
	}
	copy(j.img[j.pos:], p)
	j.pos = end
	j.events = append(j.events, "write")
	return len(p), nil
}

func (j *journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.syncCalls++
	if j.syncErr != nil {
		return j.syncErr
	}
	j.synced = j.pos
	j.events = append(j.events, "sync")
	return nil
}

// save is a Checkpoints.Save: it records p through JSON, as the agent's
// state file stores it, and persists it only if p's bytes were synced.
func (j *journal) save(p payload.Progress) (func() error, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return func() error {
		j.mu.Lock()
		defer j.mu.Unlock()
		if p.Offset > j.synced {
			return errors.New("save claims bytes that are not durable")
		}
		var q payload.Progress
		if err := json.Unmarshal(b, &q); err != nil {
			return err
		}
		if n := len(j.saves); n > 0 && j.saves[n-1].Offset >= q.Offset {
			return errors.New("saves out of order")
		}
		j.saves = append(j.saves, q)
		j.events = append(j.events, "save")
		return nil
	}, nil
}

// at reopens the journal's slot at off, as OpenWriterAt does.
func (j *journal) at(off int64) *journal { j.pos = off; return j }

// cutAfter delivers the first n bytes of r, then fails like a dropped
// connection.
type cutAfter struct {
	r io.Reader
	n int64
}

var errDropped = errors.New("connection reset by peer")

func (c *cutAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errDropped
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// TestResumeAcrossProcesses cuts the source at random points; after each
// cut a new Resumable, as a new process would, restores the last saved
// progress and continues with a source starting at its offset. The slot
// ends with the image and both hashes verified.
func TestResumeAcrossProcesses(t *testing.T) {
	data, hashes := image(t, 5*payload.BufferSize+777)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		j := &journal{}
		var p *payload.Progress
		for pieces := 0; ; pieces++ {
			if pieces > 50 {
				t.Fatalf("round %d: no end after 50 pieces", round)
			}
			r, err := payload.NewResumable(int64(len(data)), hashes)
			if err != nil {
				t.Fatal(err)
			}
			if p != nil {
				if err := r.Restore(*p); err != nil {
					t.Fatalf("round %d: restore at %d: %v", round, p.Offset, err)
				}
				if !r.Restored() && p.Offset > 0 {
					t.Fatal("Restored() = false after restoring a prefix")
				}
			}
			off := r.Offset()
			cut := rng.Int64N(int64(len(data))/2 + 1)
			src := &cutAfter{r: bytes.NewReader(data[off:]), n: cut}
			res, err := r.Install(context.Background(), src, j.at(off), payload.Checkpoints{Save: j.save, Bytes: payload.BufferSize})
			if err == nil {
				if res.Bytes != int64(len(data)) || !bytes.Equal(res.SHA256, hashes["sha256"]) {
					t.Fatalf("round %d: result %+v", round, res)
				}
				break
			}
			var se *payload.SourceError
			if !errors.As(err, &se) || !errors.Is(err, errDropped) {
				t.Fatalf("round %d: err = %v, want a SourceError wrapping the dropped connection", round, err)
			}
			// The cut is saved at the exact offset reached.
			if want := off + min(cut, int64(len(data))-off); se.Offset != want || r.Offset() != want {
				t.Fatalf("round %d: source error at %d, resumable at %d, want %d", round, se.Offset, r.Offset(), want)
			}
			if r.Offset() > off {
				last := j.saves[len(j.saves)-1]
				if last.Offset != r.Offset() {
					t.Fatalf("round %d: the cut at %d was not saved (last save at %d)", round, r.Offset(), last.Offset)
				}
				p = &last
			}
		}
		if !bytes.Equal(j.img, data) {
			t.Fatalf("round %d: slot does not hold the image", round)
		}
	}
}

func TestCheckpointsEveryBytes(t *testing.T) {
	data, hashes := image(t, 9*payload.BufferSize/4+5)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	if _, err := r.Install(context.Background(), bytes.NewReader(data), j, payload.Checkpoints{Save: j.save, Bytes: payload.BufferSize / 2}); err != nil {
		t.Fatal(err)
	}
	// Saves at every 2 buffers of BufferSize/4, none at the end (the
	// caller persists the finished install itself).
	var got []int64
	for _, s := range j.saves {
		got = append(got, s.Offset)
	}
	want := []int64{}
	for off := int64(payload.BufferSize / 2); off < int64(len(data)); off += payload.BufferSize / 2 {
		want = append(want, off)
	}
	if !equal(got, want) {
		t.Fatalf("saved at %v, want %v", got, want)
	}
	for i, e := range j.events {
		if e == "save" && (i == 0 || j.events[i-1] != "sync") {
			t.Fatalf("save without a sync just before it: %v", j.events)
		}
	}
}

func TestCheckpointsEveryInterval(t *testing.T) {
	data, hashes := image(t, 2*payload.BufferSize)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	// A fake clock that advances 1 s per reading: the first reading is the
	// start, and a 3 s interval passes every third reading.
	now := time.Unix(0, 0)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	if _, err := r.Install(context.Background(), bytes.NewReader(data), j, payload.Checkpoints{Save: j.save, Interval: 3 * time.Second, Now: clock}); err != nil {
		t.Fatal(err)
	}
	// The start reads 1 s; chunks of BufferSize/4 then read 2, 3, 4 (3 s
	// passed: save, which reads 5), 6, 7, 8 (save, 9), 10, and nothing
	// after the last chunk.
	var got []int64
	for _, s := range j.saves {
		got = append(got, s.Offset)
	}
	q := int64(payload.BufferSize / 4)
	if want := []int64{3 * q, 6 * q}; !equal(got, want) {
		t.Fatalf("saved at %v, want %v", got, want)
	}
}

func TestNoSaveAfterWriteFails(t *testing.T) {
	data, hashes := image(t, 2*payload.BufferSize)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{failAt: payload.BufferSize + 1}
	_, err := r.Install(context.Background(), bytes.NewReader(data), j, payload.Checkpoints{Save: j.save, Bytes: payload.BufferSize / 4})
	if err == nil || !strings.Contains(err.Error(), "flash worn out") {
		t.Fatalf("err = %v, want the write error", err)
	}
	var se *payload.SourceError
	if errors.As(err, &se) {
		t.Fatal("a write failure is reported as a source failure")
	}
	last := j.saves[len(j.saves)-1]
	if last.Offset > r.Offset() || r.Offset() != payload.BufferSize {
		t.Fatalf("after the failed write: last save %d, offset %d", last.Offset, r.Offset())
	}
	// The state after the failure covers exactly Offset: resuming from it
	// with a writer that works gives the image.
	r2 := resumed(t, r, int64(len(data)), hashes)
	j.failAt = 0
	if _, err := r2.Install(context.Background(), bytes.NewReader(data[r2.Offset():]), j.at(r2.Offset()), payload.Checkpoints{}); err != nil {
		t.Fatal(err)
	}
}

func TestSaveOnCancel(t *testing.T) {
	data, hashes := image(t, 3*payload.BufferSize)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	src := &cancelAfter{r: bytes.NewReader(data), limit: payload.BufferSize + 10, cancel: cancel}
	_, err := r.Install(ctx, src, j, payload.Checkpoints{Save: j.save})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(j.saves) != 1 || j.saves[0].Offset != r.Offset() || r.Offset() == 0 {
		t.Fatalf("saves %v at offset %d: want one save at the offset reached", len(j.saves), r.Offset())
	}
}

func TestResumeDetectsExtraBytes(t *testing.T) {
	data, hashes := image(t, payload.BufferSize)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	src := &cutAfter{r: bytes.NewReader(data), n: 1000}
	if _, err := r.Install(context.Background(), src, j, payload.Checkpoints{Save: j.save}); err == nil {
		t.Fatal("cut source succeeded")
	}
	longer := append(bytes.Clone(data[1000:]), 'x')
	_, err := r.Install(context.Background(), bytes.NewReader(longer), j.at(1000), payload.Checkpoints{Save: j.save})
	if !errors.Is(err, payload.ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
}

// TestResumeWithWrongPrefixFails: a restored state that does not belong to
// the bytes that follow gives a hash mismatch, never success.
func TestResumeWithWrongPrefixFails(t *testing.T) {
	data, hashes := image(t, payload.BufferSize)
	other, _ := image(t, payload.BufferSize)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	if _, err := r.Install(context.Background(), &cutAfter{r: bytes.NewReader(other), n: 5000}, j, payload.Checkpoints{Save: j.save}); err == nil {
		t.Fatal("cut source succeeded")
	}
	r2, _ := payload.NewResumable(int64(len(data)), hashes)
	if err := r2.Restore(j.saves[0]); err != nil {
		t.Fatal(err)
	}
	_, err := r2.Install(context.Background(), bytes.NewReader(data[5000:]), j.at(5000), payload.Checkpoints{})
	if !errors.Is(err, payload.ErrHashMismatch) {
		t.Fatalf("err = %v, want ErrHashMismatch", err)
	}
}

func TestRestoreRefusesBadProgress(t *testing.T) {
	data, hashes := image(t, payload.BufferSize)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	if _, err := r.Install(context.Background(), &cutAfter{r: bytes.NewReader(data), n: 4096}, j, payload.Checkpoints{Save: j.save}); err == nil {
		t.Fatal("cut source succeeded")
	}
	good := j.saves[0]
	without := func(name string) map[string][]byte {
		m := map[string][]byte{}
		for k, v := range good.States {
			if k != name {
				m[k] = v
			}
		}
		return m
	}
	swapped := map[string][]byte{"sha256": good.States["sha512"], "sha512": good.States["sha256"]}
	for name, p := range map[string]payload.Progress{
		"negative offset":     {Offset: -1, States: good.States},
		"beyond the image":    {Offset: int64(len(data)) + 1, States: good.States},
		"other offset":        {Offset: good.Offset + 1, States: good.States},
		"no sha512":           {Offset: good.Offset, States: without("sha512")},
		"no sha256":           {Offset: good.Offset, States: without("sha256")},
		"swapped algorithms":  {Offset: good.Offset, States: swapped},
		"garbage":             {Offset: 8, States: map[string][]byte{"sha256": bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 0, 8}, 4), "sha512": good.States["sha512"]}},
		"truncated state":     {Offset: good.Offset, States: map[string][]byte{"sha256": good.States["sha256"][:20], "sha512": good.States["sha512"]}},
		"empty sha512 state":  {Offset: good.Offset, States: map[string][]byte{"sha256": good.States["sha256"], "sha512": nil}},
		"state of zero bytes": {Offset: good.Offset, States: freshStates(t, hashes)},
	} {
		r2, _ := payload.NewResumable(int64(len(data)), hashes)
		if err := r2.Restore(p); err == nil {
			t.Errorf("%s: Restore succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "payload:") {
			t.Errorf("%s: error %q does not say where it comes from", name, err)
		}
		if r2.Offset() != 0 || r2.Restored() {
			t.Errorf("%s: a refused Restore changed the resumable", name)
		}
	}
	r2, _ := payload.NewResumable(int64(len(data)), hashes)
	if err := r2.Restore(good); err != nil {
		t.Fatalf("good progress: %v", err)
	}
}

// freshStates returns the saved states of a Resumable that saw no bytes.
func freshStates(t *testing.T, hashes map[string][]byte) map[string][]byte {
	r, _ := payload.NewResumable(1, hashes)
	p, err := r.Progress()
	if err != nil {
		t.Fatal(err)
	}
	return p.States
}

// TestProgressRoundTripMatchesOneShot: the sha256 of an image hashed in
// one go equals the one hashed with a save and restore in the middle,
// at every offset class (block boundary, inside a block).
func TestProgressRoundTripMatchesOneShot(t *testing.T) {
	data, hashes := image(t, 3000)
	for _, cut := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 2999, 3000} {
		r, _ := payload.NewResumable(3000, hashes)
		j := &journal{}
		src := &cutAfter{r: bytes.NewReader(data), n: cut}
		_, err := r.Install(context.Background(), src, j, payload.Checkpoints{Save: j.save})
		if cut == 3000 {
			// All bytes arrived; the check for more failed.
			var se *payload.SourceError
			if !errors.As(err, &se) || se.Offset != 3000 {
				t.Fatalf("cut at the end: %v", err)
			}
		}
		p, _ := r.Progress()
		r2, _ := payload.NewResumable(3000, hashes)
		if err := r2.Restore(p); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		res, err := r2.Install(context.Background(), bytes.NewReader(data[cut:]), j.at(cut), payload.Checkpoints{})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if want := sha256.Sum256(data); !bytes.Equal(res.SHA256, want[:]) {
			t.Fatalf("cut %d: sha256 differs", cut)
		}
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAbsorb: a process wrote past its last save and died; the next one
// restores the save, absorbs the bytes already in the slot and downloads
// only the rest.
func TestAbsorb(t *testing.T) {
	data, hashes := image(t, 3*payload.BufferSize+99)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	j := &journal{}
	const written = 2*payload.BufferSize + 12345
	_, err := r.Install(context.Background(), &cutAfter{r: bytes.NewReader(data), n: written}, j, payload.Checkpoints{Save: j.save, Bytes: payload.BufferSize})
	if err == nil {
		t.Fatal("cut source succeeded")
	}
	first := j.saves[0] // the save at BufferSize; the later ones are "lost"
	if first.Offset != payload.BufferSize {
		t.Fatalf("first save at %d", first.Offset)
	}

	r2, _ := payload.NewResumable(int64(len(data)), hashes)
	if err := r2.Restore(first); err != nil {
		t.Fatal(err)
	}
	// A slot that ends early: refused, nothing changes.
	if err := r2.Absorb(context.Background(), bytes.NewReader(j.img[first.Offset:written-1]), written-first.Offset); err == nil || r2.Offset() != first.Offset {
		t.Fatalf("short absorb: %v, offset %d", err, r2.Offset())
	}
	if err := r2.Absorb(context.Background(), bytes.NewReader(j.img[first.Offset:]), int64(len(data))); err == nil {
		t.Fatal("absorbed beyond the image")
	}
	if err := r2.Absorb(context.Background(), bytes.NewReader(j.img[first.Offset:]), written-first.Offset); err != nil || r2.Offset() != written || !r2.Restored() {
		t.Fatalf("absorb: %v, offset %d", err, r2.Offset())
	}
	if _, err := r2.Install(context.Background(), bytes.NewReader(data[written:]), j.at(written), payload.Checkpoints{}); err != nil {
		t.Fatal(err)
	}

	// Absorbing bytes that are not the image's ends in a mismatch.
	r3, _ := payload.NewResumable(int64(len(data)), hashes)
	r3.Restore(first)
	junk := make([]byte, written-first.Offset)
	if err := r3.Absorb(context.Background(), bytes.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	if _, err := r3.Install(context.Background(), bytes.NewReader(data[written:]), j.at(written), payload.Checkpoints{}); !errors.Is(err, payload.ErrHashMismatch) {
		t.Fatalf("err = %v, want ErrHashMismatch", err)
	}
}

// TestBackgroundCheckpoints: with saves in the background the copy goes on
// while they sync and persist; every save still claims only synced bytes,
// they persist in order, and the exact offset of a failure is saved last.
func TestBackgroundCheckpoints(t *testing.T) {
	data, hashes := image(t, 20*payload.BufferSize+3)
	for round := range 10 {
		r, _ := payload.NewResumable(int64(len(data)), hashes)
		j := &journal{}
		cut := int64(len(data)) - int64(round)*payload.BufferSize - 1
		_, err := r.Install(context.Background(), &cutAfter{r: bytes.NewReader(data), n: cut}, j,
			payload.Checkpoints{Save: j.save, Bytes: payload.BufferSize / 4, Background: true})
		var se *payload.SourceError
		if !errors.As(err, &se) {
			t.Fatalf("round %d: err = %v, want the cut", round, err)
		}
		if len(j.saves) < 2 || j.saves[len(j.saves)-1].Offset != cut {
			t.Fatalf("round %d: %d saves, last at %v, want the cut at %d last", round, len(j.saves), j.saves[len(j.saves)-1].Offset, cut)
		}
	}
	// A failing background save fails Install.
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	full := func(payload.Progress) (func() error, error) {
		return func() error { return errors.New("state disk full") }, nil
	}
	_, err := r.Install(context.Background(), bytes.NewReader(data), &journal{}, payload.Checkpoints{Save: full, Bytes: payload.BufferSize, Background: true})
	if err == nil || !strings.Contains(err.Error(), "state disk full") {
		t.Fatalf("err = %v, want the save error", err)
	}
}

// slowSync is a journal whose Sync blocks until released, and which
// records how far writes got past the last persisted save.
type slowSync struct {
	journal
	release   chan struct{}
	syncing   bool
	maxAtRisk int64
}

func (s *slowSync) Write(p []byte) (int, error) {
	n, err := s.journal.Write(p)
	s.mu.Lock()
	persisted := int64(0)
	if k := len(s.saves); k > 0 {
		persisted = s.saves[k-1].Offset
	}
	s.maxAtRisk = max(s.maxAtRisk, s.pos-persisted)
	s.mu.Unlock()
	return n, err
}

func (s *slowSync) Sync() error {
	s.mu.Lock()
	s.syncing = true
	s.mu.Unlock()
	<-s.release
	s.mu.Lock()
	s.syncing = false
	s.mu.Unlock()
	return s.journal.Sync()
}

// TestBackgroundCheckpointsMaxLag: a save whose sync hangs holds the copy
// back: the bytes written and not covered by a persisted save stay below
// MaxLag plus one buffer. (The syncs are released by a helper once writes
// stop for a while; releasing early only makes the lag smaller, so the
// check on bytes cannot fail because of timing.)
func TestBackgroundCheckpointsMaxLag(t *testing.T) {
	data, hashes := image(t, 40*payload.BufferSize)
	s := &slowSync{release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		last := int64(-1)
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s.mu.Lock()
			pos, syncing := s.pos, s.syncing
			s.mu.Unlock()
			if syncing && pos == last {
				s.release <- struct{}{}
			}
			last = pos
		}
	}()
	defer close(done)
	const lag = 4 * payload.BufferSize
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	if _, err := r.Install(context.Background(), bytes.NewReader(data), s, payload.Checkpoints{Save: s.save, Bytes: payload.BufferSize,
		Background: true, MaxLag: lag}); err != nil {
		t.Fatal(err)
	}
	if s.maxAtRisk >= lag+payload.BufferSize/4 || len(s.saves) < 3 {
		t.Fatalf("writes ran %d bytes past the last persisted save (bound %d + one buffer); %d saves", s.maxAtRisk, lag, len(s.saves))
	}
}

// Write hashes bytes moved by the caller: its progress is the one an
// Install of the same bytes reaches, and it refuses bytes beyond the image.
func TestResumableWrite(t *testing.T) {
	data, hashes := image(t, 3*payload.BufferSize+7)
	r, _ := payload.NewResumable(int64(len(data)), hashes)
	half := int64(len(data) / 2)
	if n, err := r.Write(data[:half]); err != nil || int64(n) != half || r.Offset() != half {
		t.Fatalf("Write: %d, %v; offset %d", n, err, r.Offset())
	}
	r2 := resumed(t, r, int64(len(data)), hashes)
	if _, err := r2.Install(context.Background(), bytes.NewReader(data[half:]), &journal{}, payload.Checkpoints{}); err != nil {
		t.Fatalf("install after Write: %v", err)
	}
	if _, err := r.Write(make([]byte, len(data))); !errors.Is(err, payload.ErrTooLong) || r.Offset() != half {
		t.Fatalf("write past the end: %v, offset %d; want ErrTooLong at %d", err, r.Offset(), half)
	}
}

// resumed returns a new Resumable restored from r's progress.
func resumed(t *testing.T, r *payload.Resumable, length int64, hashes map[string][]byte) *payload.Resumable {
	t.Helper()
	p, err := r.Progress()
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := payload.NewResumable(length, hashes)
	if err := r2.Restore(p); err != nil {
		t.Fatal(err)
	}
	return r2
}

// tickClock is a link clock that moves on by tick at every reading: the
// copy reads it once per buffer, so the source seems to deliver a buffer
// per tick.
type tickClock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration
}

func (c *tickClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.tick)
	return c.t
}

// TestBackgroundCheckpointsWindow: with a Window the bytes at risk may
// reach what the link moves in the window, when that is more than MaxLag,
// and no further; on a link that moves less, MaxLag holds as before. Every
// save still claims only synced bytes (journal.save fails Install
// otherwise). The syncs hang until the copy stops for a while (as in
// TestBackgroundCheckpointsMaxLag), so the copy runs up to its bound; the
// link's time is a fake clock, one tick per buffer, so the bound does not
// depend on how fast the test runs.
func TestBackgroundCheckpointsWindow(t *testing.T) {
	const buf = payload.BufferSize / 4
	const lag = 2 * buf
	const window = 10 * time.Millisecond
	for _, tc := range []struct {
		name string
		tick time.Duration
		// the bound: MaxLag, or the bytes of one window at a buffer per
		// tick averaged over four windows
		min, bound int64
		// quiet is how long the writes must stop before a sync is let
		// go: long enough, where a lower bound is checked, that a test
		// run slowly by a loaded machine does not release a sync while
		// the copy still runs.
		quiet time.Duration
	}{
		// 40 buffers per span of 40 ms: 10 buffers per window, a bound
		// of 7.5.
		{"fast link", time.Millisecond, 6 * buf, 7.5*buf + buf, 50 * time.Millisecond},
		// a buffer per 10 ms: one buffer per window, below MaxLag.
		{"slow link", 10 * time.Millisecond, 0, lag + buf, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, hashes := image(t, 16*payload.BufferSize)
			s := &slowSync{release: make(chan struct{})}
			done := make(chan struct{})
			go func() {
				last := int64(-1)
				for {
					select {
					case <-done:
						return
					case <-time.After(tc.quiet):
					}
					s.mu.Lock()
					pos, syncing := s.pos, s.syncing
					s.mu.Unlock()
					if syncing && pos == last {
						s.release <- struct{}{}
					}
					last = pos
				}
			}()
			defer close(done)
			clk := &tickClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), tick: tc.tick}
			r, _ := payload.NewResumable(int64(len(data)), hashes)
			if _, err := r.Install(context.Background(), bytes.NewReader(data), s, payload.Checkpoints{Save: s.save, Bytes: buf,
				Background: true, MaxLag: lag, Window: window, LinkClock: clk.now}); err != nil {
				t.Fatal(err)
			}
			if s.maxAtRisk >= tc.bound || s.maxAtRisk < tc.min || len(s.saves) < 3 {
				t.Fatalf("writes ran %d bytes past the last persisted save, want %d..%d; %d saves", s.maxAtRisk, tc.min, tc.bound, len(s.saves))
			}
		})
	}
}

// TestWindowSavesLessOften: where the window raises the bound above
// MaxLag, a save comes due after a quarter of the bound rather than every
// Bytes, so a fast link flushes the slot and writes the journal less often;
// on a link the window does not raise, every Bytes as before. (Saves in
// the foreground and a fake link clock, one tick per buffer: the count does
// not depend on how fast the test runs.)
func TestWindowSavesLessOften(t *testing.T) {
	const buf = payload.BufferSize / 4
	data, hashes := image(t, 32*payload.BufferSize) // 128 buffers
	for _, tc := range []struct {
		name     string
		tick     time.Duration
		min, max int
	}{
		// the bound grows to 7.5 buffers: a save about every 2
		{"fast link", time.Millisecond, 20, 80},
		// the bound stays MaxLag: a save every buffer
		{"slow link", 10 * time.Millisecond, 127, 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			clk := &tickClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), tick: tc.tick}
			r, _ := payload.NewResumable(int64(len(data)), hashes)
			if _, err := r.Install(context.Background(), bytes.NewReader(data), j, payload.Checkpoints{Save: j.save, Bytes: buf,
				MaxLag: 2 * buf, Window: 10 * time.Millisecond, LinkClock: clk.now}); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d saves for 128 buffers", len(j.saves))
			if n := len(j.saves); n < tc.min || n > tc.max {
				t.Fatalf("%d saves for 128 buffers, want %d..%d", n, tc.min, tc.max)
			}
		})
	}
}
