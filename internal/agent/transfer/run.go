package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
)

// run is one call of a route: its job, the hashes of what it downloaded
// so far (r), the progress it recorded, and what it counted and has not
// reported yet.
type run struct {
	d     *Downloader
	j     Job
	route Route
	what  string // "payload", "compressed payload", "delta": for messages
	r     *payload.Resumable
	// saved is what the Recorder holds.
	saved *Progress
	// bytes received since the last report; added by the goroutine that
	// reads the answer (while an idle save may report), so atomically.
	bytes atomic.Int64
	// count holds the rest of the counters; touched only while the copy
	// stands still.
	count Count
	// countAlways reports even nothing (Plain: the release's counter
	// exists from the first request on, answered or not).
	countAlways bool
	// pieced is set once an answer continued from an offset in this
	// call: the target then came in pieces that nothing but the final
	// hash check ties together (see requestRest).
	pieced bool
}

// start begins a call of route for j, with the target's hashes in a
// Resumable at offset 0 and j.Saved as the progress recorded.
func (d *Downloader) start(j Job, route Route, what string) (*run, error) {
	r, err := payload.NewResumable(j.Target.Length, j.Target.Hashes)
	if err != nil {
		return nil, err
	}
	return &run{d: d, j: j, route: route, what: what, r: r, saved: j.Saved}, nil
}

// dropOther drops saved progress of another route, and saves that before
// anything is written.
func (t *run) dropOther() error {
	if t.saved == nil || t.saved.Route == t.route {
		return nil
	}
	t.record(nil)
	return t.save()
}

// report hands what was counted since the last report to the Recorder.
func (t *run) report() {
	c := t.count
	c.Bytes = t.bytes.Swap(0)
	t.count = Count{}
	if c != (Count{}) || t.countAlways {
		t.j.Rec.Count(c)
	}
}

// record makes p the saved progress (nil: none), in memory.
func (t *run) record(p *Progress) {
	t.saved = p
	t.j.Rec.Record(p)
}

// save persists everything recorded and counted, replacing the state file.
func (t *run) save() error {
	t.report()
	_, b, err := t.j.Rec.Encode()
	if err != nil {
		return err
	}
	return t.j.Rec.Replace(b)
}

// checkpoint records p with what was counted and returns the function that
// persists it: a record in jr, or, for a state too large for the journal,
// a new state file.
func (t *run) checkpoint(jr *Journal, p Progress) (func() error, error) {
	t.report()
	t.record(&p)
	seq, b, err := t.j.Rec.Encode()
	if err != nil {
		return nil, err
	}
	rec := t.j.Rec
	return func() error {
		err := jr.Write(seq, b)
		if errors.Is(err, ErrJournalFull) {
			return rec.Replace(b)
		}
		return err
	}, nil
}

// dropsError: the connection dropped Downloader.MaxAttempts times in a row
// without progress (see retry).
type dropsError struct {
	times          int
	offset, length int64
	err            error // the last drop
}

func (e *dropsError) Error() string {
	return fmt.Sprintf("interrupted %d times in a row without progress, at %d of %d bytes: %v", e.times, e.offset, e.length, e.err)
}
func (e *dropsError) Unwrap() error { return e.err }

// isDrop reports a download that failed on the wire (a dropped
// connection, a stall, a body that ended early): worth resuming, unlike a
// source that sent too much.
func isDrop(err error) bool {
	var se *payload.SourceError
	return errors.As(err, &se) && !errors.Is(err, fetch.ErrTooLong)
}

// errStartOver makes retry request the target again from byte 0 at once:
// the server could not continue the saved download.
var errStartOver = errors.New("transfer: starting the download over")

// retry calls request until it succeeds or fails for good. A dropped
// connection, or a server that made the download start over
// (errStartOver), is tried again after the fetch client's jittered
// backoff. Only attempts without progress count: progress is r's offset
// (the payload bytes received and hashed, for every route: for the
// streamed zstd route, the payload the decoder consumed) passing the mark
// of the last attempt that made progress by minProgress; that resets the
// count, so a link that drops every few hundred KiB is followed to the end
// within the call. MaxAttempts attempts in a row without progress give a
// *dropsError. Any other error of request, or ctx ending during a backoff,
// is returned as it is.
//
// Bound: the mark only grows, by minProgress at least each time, and
// never passes the signed length (a start-over lowers r's offset, not the
// mark), so a call makes at most MaxAttempts × (Length/minProgress + 1)
// attempts: a server that sends a few bytes per connection, or that makes
// the download start over again and again, cannot hold a check forever.
func (t *run) retry(ctx context.Context, request func() error) error {
	r := t.r
	mark, drops := r.Offset(), 0
	for {
		err := request()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errStartOver) && !isDrop(err) {
			return err
		}
		if off := r.Offset(); off-mark >= minProgress {
			mark, drops = off, 0
		} else if drops++; drops >= t.d.MaxAttempts {
			return &dropsError{times: drops, offset: off, length: r.Length(), err: err}
		}
		t.d.Log.Warn(t.what+" download interrupted; resuming", "version", t.j.Version, "offset", r.Offset(), "length", r.Length(),
			"attempts_without_progress", drops, "err", err)
		if err := t.d.HTTP.Backoff(ctx, max(drops, 1)); err != nil {
			return fmt.Errorf("waiting to resume: %w", err)
		}
	}
}

// requestRest asks for the rest of the target from r's offset and returns
// the answer to stream from: at that offset, or at 0 after startOver when
// the server sent the whole target instead (it ignores Range). A server
// that cannot continue (Range refused, 416) gets startOver and an
// errStartOver, so that retry asks again from 0. An answer of another
// length than the signed one is payload.ErrTruncated.
//
// The request carries nothing the server chose (no If-Range, no ETag, no
// cookie), and no answer's ETag is kept or compared, within a check or
// across checks: a per-device ETag sent back later would let a server or
// CDN recognise the device from another address. A resume rests on the
// name and the hashes alone: target names are content-addressed (consistent
// snapshots carry the sha256 in the name), the resumed bytes go through the
// saved hash states, and a resumed target is read back and verified before
// it is used; bytes changed under the same name fail that check and the
// download starts over from byte 0.
func (t *run) requestRest(ctx context.Context, startOver func() error) (*fetch.Resource, error) {
	off, length, what, version := t.r.Offset(), t.j.Target.Length, t.what, t.j.Version
	log := t.d.Log
	res, err := t.d.HTTP.GetFrom(ctx, t.j.Target.URL, length, off)
	var se *fetch.StatusError
	if off > 0 && (errors.Is(err, fetch.ErrBadRange) || errors.As(err, &se) && se.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
		log.Warn("the server cannot continue the "+what+" download; starting over", "version", version, "offset", off, "err", err)
		if err := startOver(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errStartOver, err)
	}
	if err != nil {
		return nil, err
	}
	t.count.Requests++
	if res.Size >= 0 && res.Size != length {
		res.Close()
		return nil, fmt.Errorf("%w: the server says the %s has %d bytes, the signed metadata %d", payload.ErrTruncated, what, res.Size, length)
	}
	switch {
	case off > 0 && res.Offset == 0:
		log.Warn("the server sent the whole "+what+" instead of the rest (it ignores Range); starting over",
			"version", version, "offset", off)
		if err := startOver(); err != nil {
			res.Close()
			return nil, err
		}
	case off > 0:
		t.count.Resumed++
		t.pieced = true
	}
	return res, nil
}

// rest opens one request's source for the rest of the target: the answer
// from r's offset (see requestRest), counted; for a download saved at its
// very end, which needs no request, an empty source. done releases the
// answer.
func (t *run) rest(ctx context.Context, startOver func() error) (src io.Reader, done func(), err error) {
	if length := t.j.Target.Length; t.r.Offset() >= length && length != 0 {
		return eof{}, func() {}, nil
	}
	res, err := t.requestRest(ctx, startOver)
	if err != nil {
		return nil, nil, err
	}
	return t.source(res), func() { res.Close() }, nil
}

// source returns res counted into t's bytes.
func (t *run) source(res io.Reader) io.Reader {
	return &counter{r: res, n: &t.bytes, received: t.d.Received}
}

// counter passes reads through and adds how many bytes each returned.
type counter struct {
	r        io.Reader
	n        *atomic.Int64
	received func(int64)
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		if c.received != nil {
			c.received(int64(n))
		}
	}
	return n, err
}

// eof is an empty source.
type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

// openSlot opens the job's slot for writing at off.
func (t *run) openSlot(ctx context.Context, off int64) (Writer, error) {
	w, err := t.j.Slot.OpenWriter(ctx, off)
	if err != nil {
		return nil, fmt.Errorf("opening slot %s at offset %d: %w", t.j.Slot, off, err)
	}
	return w, nil
}

// power calls the power hook at point.
func (d *Downloader) power(point string) error {
	if d.Power == nil {
		return nil
	}
	return d.Power(point)
}

// powerWriter lets tests cut power before each write, at power point
// point.
type powerWriter struct {
	w interface {
		Write([]byte) (int, error)
		Sync() error
	}
	d     *Downloader
	point string
}

func (p powerWriter) Write(b []byte) (int, error) {
	if err := p.d.power(p.point); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

func (p powerWriter) Sync() error { return p.w.Sync() }
