package payload

import (
	"bytes"
	"context"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"sort"
	"sync"
	"time"
)

// Progress is a resumable position in an image: its first Offset bytes are
// durable in the slot, and States holds every hash's state after exactly
// those bytes, marshalled with encoding.BinaryMarshaler (the format of Go's
// crypto/sha256 and crypto/sha512, which records the byte count; Restore
// checks that it equals Offset).
type Progress struct {
	Offset int64 `json:"offset"`
	// States maps an algorithm name ("sha256", "sha512") to its state.
	States map[string][]byte `json:"hash_states"`
}

// SourceError is a failure to read the image from its source after Offset
// bytes: a dropped connection, a stall, a source that ended early, or one
// that failed while being checked for trailing bytes. Everything before
// Offset was written and, with checkpoints on, saved; reading the rest from
// Offset may succeed. Err starts with "payload:".
type SourceError struct {
	Offset int64
	Err    error
}

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// Checkpoints says when Resumable.Install saves its progress. The zero
// value never saves.
//
// A save takes the progress at an offset once every byte written so far is
// hashed, hands it to Save (while the copy stands still: never during a
// write to dst or another Save, so that Save can capture whatever it
// persists along with it; src.Read may be running), then calls dst.Sync, and
// only after Sync returned nil calls the persist function Save returned: a
// persisted Progress never claims bytes that are not durable. Install saves
// when Bytes or Interval have passed since the last save began, whichever
// comes first, checked between buffers (at most BufferSize/4 bytes apart),
// and once more, at the exact offset reached, when the source fails or ctx
// ends. It never saves after a write to dst failed: what that write left
// is unknown.
//
// With Background, the periodic saves (Sync and persist) run in a second
// goroutine while the copy goes on, one at a time: a save that comes due
// while the previous one runs waits for the next buffer. MaxLag bounds the
// bytes at risk: before each buffer is read, the copy waits for the running
// save (and, if that is not enough, saves at once, in the foreground) until
// fewer than MaxLag bytes written are not covered by a persisted save. So
// at any moment fewer than MaxLag plus one buffer (BufferSize/4) written
// bytes are not covered, however fast the source and however slow the
// syncs; the copy only waits when the syncs cannot keep up. (Bytes before
// the offset Install starts at count as covered.) With Window, the bound
// is whichever is larger of MaxLag and three quarters of the bytes the
// source delivers in Window at the rate measured over the last four Windows
// (see lag.go): a power loss then costs at most about Window of link time
// (the last quarter left for the buffer being filled and the bytes in
// flight), or MaxLag plus one buffer; and while it raises the bound above
// MaxLag, the periodic save comes due after a quarter of the bound rather
// than Bytes, so a fast link flushes the slot and writes the state a few
// times per window rather than every few hundred KiB. The save at a failure,
// and the end of Install, wait for a running save first, so saves persist
// in order and none outlives Install; a failed background save fails
// Install. dst.Sync must then be safe to call while Write runs.
//
// With Idle, a source that has sent nothing for Idle while the copy waits
// for it gets a save, at once and not in the background, at the offset
// reached (of the whole buffers written; a partly filled buffer, at most
// BufferSize/4, is not saved), if at least minIdleSave bytes are not yet
// covered by a save: a download that stalls and then loses power costs no
// more than that buffer and minIdleSave, and a slow, bursty link does not
// rewrite the state file at every pause. The save runs on a watchdog goroutine
// while Install's goroutine is blocked in src.Read, which waits for it to
// finish before it goes on; src.Read must therefore not touch what Save
// captures.
type Checkpoints struct {
	// Save records p and returns the function that persists it. Errors
	// of either stop Install and are returned.
	Save func(p Progress) (persist func() error, err error)
	// Bytes saves after this many bytes since the last save (0: never by
	// bytes).
	Bytes int64
	// Interval saves once this long has passed since the last save (0:
	// never by time), as told by Now (nil: time.Now).
	Interval   time.Duration
	Now        func() time.Time
	Background bool
	// MaxLag bounds the bytes written and not covered by a persisted
	// save, to below MaxLag plus one buffer (0: no bound). It should be at
	// least Bytes.
	MaxLag int64
	// Window, if not 0 (and MaxLag is not 0), raises the bound to three
	// quarters of the bytes the source delivers in Window, measured as the
	// copy goes (see lag.go), when that is more than MaxLag.
	Window time.Duration
	// LinkClock tells the time the link's rate is measured by (nil:
	// time.Now, monotonic). It is not Now: the rate is physical, whatever
	// the caller's clock says.
	LinkClock func() time.Time
	// Idle saves once the source has been silent this long (0: never).
	Idle time.Duration
}

// minIdleSave is the least progress an idle save covers (Checkpoints.Idle).
const minIdleSave = 64 << 10

// saver runs the saves of one copy, at most one in the background.
type saver struct {
	dst       Writer
	cp        Checkpoints
	done      chan error // non-nil while a background save runs
	off       int64      // offset of the last save begun
	at        time.Time  // when it began
	persisted int64      // offset of the last save persisted (or where the copy began)
}

// begin saves p: at once, or in the background when bg is set.
func (sv *saver) begin(p Progress, bg bool) error {
	persist, err := sv.cp.Save(p)
	if err != nil {
		return fmt.Errorf("payload: saving progress at offset %d: %w", p.Offset, err)
	}
	run := func() error {
		if err := sv.dst.Sync(); err != nil {
			return fmt.Errorf("payload: sync at offset %d: %w", p.Offset, err)
		}
		if err := persist(); err != nil {
			return fmt.Errorf("payload: saving progress at offset %d: %w", p.Offset, err)
		}
		return nil
	}
	if !bg {
		if err := run(); err != nil {
			return err
		}
		sv.persisted = p.Offset
		return nil
	}
	done := make(chan error, 1)
	sv.done = done
	go func() { done <- run() }()
	return nil
}

// wait waits for a background save and returns its error.
func (sv *saver) wait() error {
	if sv.done == nil {
		return nil
	}
	return sv.finished(<-sv.done)
}

// finished records the end of the background save, whose result is err.
func (sv *saver) finished(err error) error {
	sv.done = nil
	if err == nil {
		sv.persisted = sv.off
	}
	return err
}

// busy reports whether a background save still runs, and the error of one
// that ended.
func (sv *saver) busy() (bool, error) {
	if sv.done == nil {
		return false, nil
	}
	select {
	case err := <-sv.done:
		return false, sv.finished(err)
	default:
		return true, nil
	}
}

// Resumable copies one image into a slot and verifies it, possibly over
// several calls to Install with different sources (a download resumed after
// a dropped connection) and across processes (Progress and Restore). It
// tracks sha256, always, and every known algorithm among the expected
// hashes.
//
// Invariant: the hash states always cover exactly the first Offset bytes of
// the image as they were handed to dst, or restored from a Progress that
// claimed so. A restored prefix was not seen by this Resumable; see
// Restored. A Resumable is not safe for concurrent use.
type Resumable struct {
	length   int64
	checks   []check
	names    []string // tracked algorithms, sorted; includes "sha256"
	hashes   map[string]hash.Hash
	off      int64
	restored bool
}

// NewResumable returns a Resumable for an image of length bytes expected to
// match hashes (as for Install), at offset 0.
func NewResumable(length int64, hashes map[string][]byte) (*Resumable, error) {
	if length < 0 {
		return nil, fmt.Errorf("payload: negative length %d", length)
	}
	checks, err := prepare(hashes)
	if err != nil {
		return nil, err
	}
	r := &Resumable{length: length, checks: checks, names: []string{"sha256"}}
	for _, c := range checks {
		if c.name != "sha256" {
			r.names = append(r.names, c.name)
		}
	}
	sort.Strings(r.names)
	r.Reset()
	return r, nil
}

// Reset starts over at offset 0.
func (r *Resumable) Reset() {
	r.hashes = make(map[string]hash.Hash, len(r.names))
	for _, n := range r.names {
		r.hashes[n] = known[n]()
	}
	r.off, r.restored = 0, false
}

// Offset is the number of image bytes copied (or restored) so far.
func (r *Resumable) Offset() int64 { return r.off }

// Length is the image's declared length.
func (r *Resumable) Length() int64 { return r.length }

// Restored reports whether a prefix of the image was taken on trust from a
// Progress rather than seen by this Resumable. The hashes then prove what
// the source sent, not what the slot holds: read the slot back (Verify)
// before trusting it.
func (r *Resumable) Restored() bool { return r.restored }

// Progress returns the current position and hash states.
func (r *Resumable) Progress() (Progress, error) {
	p := Progress{Offset: r.off, States: make(map[string][]byte, len(r.names))}
	for _, n := range r.names {
		m, ok := r.hashes[n].(encoding.BinaryMarshaler)
		if !ok {
			return Progress{}, fmt.Errorf("payload: %s state cannot be saved", n)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			return Progress{}, fmt.Errorf("payload: saving %s state: %w", n, err)
		}
		p.States[n] = b
	}
	return p, nil
}

// Restore continues from p. It checks that p is within the image and holds
// a state for every tracked algorithm that covers exactly p.Offset bytes;
// on error r is unchanged. The caller must make sure the slot holds the
// bytes p claims (see Restored).
func (r *Resumable) Restore(p Progress) error {
	if p.Offset < 0 || p.Offset > r.length {
		return fmt.Errorf("payload: saved offset %d is outside the image of %d bytes", p.Offset, r.length)
	}
	hs := make(map[string]hash.Hash, len(r.names))
	for _, n := range r.names {
		st, ok := p.States[n]
		if !ok {
			return fmt.Errorf("payload: saved progress has no %s state", n)
		}
		if got, ok := stateLength(st); !ok || got != uint64(p.Offset) {
			return fmt.Errorf("payload: saved %s state does not cover the %d bytes of the saved offset", n, p.Offset)
		}
		h := known[n]()
		u, ok := h.(encoding.BinaryUnmarshaler)
		if !ok {
			return fmt.Errorf("payload: %s state cannot be restored", n)
		}
		if err := u.UnmarshalBinary(st); err != nil {
			return fmt.Errorf("payload: restoring %s state: %w", n, err)
		}
		hs[n] = h
	}
	r.hashes, r.off, r.restored = hs, p.Offset, p.Offset > 0
	return nil
}

// Absorb hashes the next n image bytes from src, which must already be in
// the slot at Offset (written there by an earlier process that did not live
// to save them), and advances Offset past them. On error r is unchanged.
// Like Restore, it takes the slot's word for the bytes: Restored reports
// true afterwards.
func (r *Resumable) Absorb(ctx context.Context, src io.Reader, n int64) error {
	if n < 0 || n > r.length-r.off {
		return fmt.Errorf("payload: cannot absorb %d bytes at offset %d of %d", n, r.off, r.length)
	}
	p, err := r.Progress()
	if err != nil {
		return err
	}
	next := &Resumable{length: r.length, checks: r.checks, names: r.names}
	next.Reset()
	if err := next.Restore(p); err != nil {
		return err
	}
	if err := next.copy(ctx, io.LimitReader(src, n), nil, Checkpoints{}, r.off+n); err != nil {
		return fmt.Errorf("payload: absorbing %d bytes at offset %d: %w", n, r.off, err)
	}
	r.hashes, r.off, r.restored = next.hashes, next.off, true
	return nil
}

// Write hashes b as the next bytes of the image, as if they had been
// copied into the slot, and advances Offset past them: for a caller that
// moves the bytes itself (reading them through an io.TeeReader, say). It
// refuses bytes beyond the declared length with ErrTooLong and hashes none
// of them then.
func (r *Resumable) Write(b []byte) (int, error) {
	if int64(len(b)) > r.length-r.off {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLong, r.length)
	}
	for _, n := range r.names {
		r.hashes[n].Write(b)
	}
	r.off += int64(len(b))
	return len(b), nil
}

// stateLength reads the byte count that Go's SHA-2 state encoding keeps in
// its last eight bytes (big-endian).
func stateLength(st []byte) (uint64, bool) {
	if len(st) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(st[len(st)-8:]), true
}

// Install copies the rest of the image, from Offset to the declared length,
// from src into dst, which must both be positioned at Offset. Then it reads
// once more to make sure src has nothing beyond the image, checks the hashes
// of the whole image and, if they match, syncs dst. It saves progress as cp says.
//
// Errors start with "payload:". A failure of src is a *SourceError (which
// wraps ErrTruncated when src ended early, and the source's own error
// otherwise; progress was saved at its Offset); bytes beyond the image
// give ErrTooLong, a wrong image ErrHashMismatch; ctx's error, dst's and
// cp.Save's are wrapped. After any error r stands at the offset reached,
// and another Install may continue from there with a new source.
func (r *Resumable) Install(ctx context.Context, src io.Reader, dst Writer, cp Checkpoints) (Result, error) {
	if err := r.copy(ctx, src, dst, cp, r.length); err != nil {
		return Result{Bytes: r.off}, err
	}
	// One more byte, never more: enough to tell "exactly length" from
	// "longer", without reading an endless source.
	var one [1]byte
	n, err := io.ReadFull(src, one[:])
	if n > 0 {
		return Result{Bytes: r.off}, fmt.Errorf("%w: more than %d bytes", ErrTooLong, r.length)
	}
	if err != io.EOF {
		err = &SourceError{Offset: r.off, Err: fmt.Errorf("payload: checking for data beyond %d bytes: %w", r.length, err)}
		if cp.Save != nil {
			p, perr := r.Progress()
			if perr == nil {
				perr = (&saver{dst: dst, cp: cp}).begin(p, false)
			}
			if perr != nil {
				return Result{Bytes: r.off}, perr
			}
		}
		return Result{Bytes: r.off}, err
	}
	res, err := r.compare()
	if err != nil {
		return res, err
	}
	if err := dst.Sync(); err != nil {
		return res, fmt.Errorf("payload: sync: %w", err)
	}
	return res, nil
}

// compare checks the digests of a complete image.
func (r *Resumable) compare() (Result, error) {
	res := Result{Bytes: r.off, SHA256: r.hashes["sha256"].Sum(nil)}
	for _, c := range r.checks {
		got := r.hashes[c.name].Sum(nil)
		if !bytes.Equal(got, c.want) {
			return res, fmt.Errorf("%w: %s expected %s…, got %s…", ErrHashMismatch, c.name, prefix(c.want), prefix(got))
		}
	}
	return res, nil
}

// item is a buffer to hash, or (b == nil) a barrier whose done channel is
// closed once every earlier buffer is hashed.
type item struct {
	b    []byte
	done chan struct{}
}

// copy moves bytes from src to dst (nil: only hash) until Offset reaches
// end, saving progress as cp says (dst must be non-nil then).
func (r *Resumable) copy(ctx context.Context, src io.Reader, dst Writer, cp Checkpoints, end int64) (err error) {
	hashers := make([]io.Writer, 0, len(r.names))
	for _, n := range r.names {
		hashers = append(hashers, r.hashes[n])
	}
	slab := slabPool.Get().(*[]byte)
	defer slabPool.Put(slab)

	// Pipeline: this goroutine reads each chunk and writes it to dst, then
	// hands it to a second goroutine that hashes it while the next chunk is
	// read and written. A buffer returns to free only after it has been
	// hashed, so no buffer is overwritten while in use. A barrier lets this
	// goroutine wait until the hashes cover everything written, before it
	// saves them.
	free := make(chan []byte, nbuf)
	for i := range nbuf {
		size := BufferSize / nbuf
		free <- (*slab)[i*size : (i+1)*size : (i+1)*size]
	}
	work := make(chan item, nbuf+1)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for it := range work {
			if it.b == nil {
				close(it.done)
				continue
			}
			for _, h := range hashers {
				h.Write(it.b)
			}
			free <- it.b[:cap(it.b)]
		}
	}()
	stopHashing := sync.OnceFunc(func() { close(work); <-hashed })
	defer stopHashing()
	barrier := func() {
		done := make(chan struct{})
		work <- item{done: done}
		<-done
	}

	now := cp.Now
	if now == nil {
		now = time.Now
	}
	sv := &saver{dst: dst, cp: cp, off: r.off, at: now(), persisted: r.off}
	linkNow := cp.LinkClock
	if linkNow == nil {
		linkNow = time.Now
	}
	var meter *linkMeter
	if cp.MaxLag > 0 && cp.Window > 0 {
		meter = newLinkMeter(windowSpans*cp.Window, linkNow(), r.off)
	}
	defer func() {
		if serr := sv.wait(); serr != nil && err == nil {
			err = serr
		}
	}()
	// checkpoint saves the current offset, in the background if bg.
	checkpoint := func(bg bool) error {
		barrier()
		p, err := r.Progress()
		if err != nil {
			return err
		}
		sv.off, sv.at = r.off, now()
		return sv.begin(p, bg)
	}
	// failed saves the exact offset reached when the source or ctx failed,
	// after any save in progress, then returns err (or a save's error).
	failed := func(err error) error {
		if serr := sv.wait(); serr != nil {
			return serr
		}
		if cp.Save != nil && r.off > sv.off {
			if serr := checkpoint(false); serr != nil {
				return serr
			}
		}
		return err
	}

	read := io.ReadFull
	if cp.Save != nil && cp.Idle > 0 && dst != nil {
		// sv.off is read with the copy stopped; a background save only
		// moves it forward when the copy begins one.
		due := func() bool { return r.off-sv.off >= minIdleSave }
		w := startWatchdog(cp.Idle, due, func() error {
			if err := sv.wait(); err != nil {
				return err
			}
			if r.off > sv.off {
				return checkpoint(false)
			}
			return nil
		})
		defer w.stop()
		read = w.read
	}

	for r.off < end {
		if err := ctx.Err(); err != nil {
			return failed(fmt.Errorf("payload: after %d of %d bytes: %w", r.off, r.length, err))
		}
		buf := <-free
		chunk := buf[:min(int64(len(buf)), end-r.off)]
		n, err := read(src, chunk)
		if werr, ok := err.(*watchdogError); ok {
			free <- buf // read, not written: the save that failed is the error
			return werr.err
		}
		if n > 0 {
			// Written first, hashed after: the hashes never cover a byte
			// whose write failed.
			if dst != nil {
				if w, werr := dst.Write(chunk[:n]); werr != nil || w != n {
					if werr == nil {
						werr = io.ErrShortWrite
					}
					free <- buf
					return fmt.Errorf("payload: write at offset %d: %w", r.off, werr)
				}
			}
			work <- item{b: chunk[:n]}
			r.off += int64(n)
			if meter != nil {
				meter.observe(linkNow(), r.off)
			}
		} else {
			free <- buf
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return failed(&SourceError{Offset: r.off, Err: fmt.Errorf("%w: got %d of %d bytes", ErrTruncated, r.off, r.length)})
		}
		if err != nil {
			return failed(&SourceError{Offset: r.off, Err: fmt.Errorf("payload: read at offset %d: %w", r.off, err)})
		}
		if cp.Save == nil || r.off >= end {
			continue
		}
		busy, err := sv.busy()
		if err != nil {
			return err
		}
		lag := cp.MaxLag
		if meter != nil {
			lag = allowedLag(cp.MaxLag, cp.Window, meter, meter.last.t)
		}
		if cp.MaxLag > 0 && r.off-sv.persisted >= lag {
			// Too much at risk: wait for the running save, and if that
			// does not cover enough, save here and now.
			if err := sv.wait(); err != nil {
				return err
			}
			busy = false
			if r.off-sv.persisted >= lag {
				if err := checkpoint(false); err != nil {
					return err
				}
				continue
			}
		}
		every := cp.Bytes
		if every > 0 && lag > cp.MaxLag {
			every = max(every, lag/saveShare)
		}
		if !busy && ((every > 0 && r.off-sv.off >= every) || (cp.Interval > 0 && now().Sub(sv.at) >= cp.Interval)) {
			if err := checkpoint(cp.Background); err != nil {
				return err
			}
		}
	}
	stopHashing()
	return nil
}
