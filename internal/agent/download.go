package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
)

// When the download's progress is saved (see payload.Checkpoints): after
// CheckpointBytes or CheckpointInterval since the last save began,
// whichever comes first, and at once, at the exact offset reached, when the
// connection fails or the agent is stopped. Each save is an fsync of the
// slot and a write of the state into the checkpoint journal (transfer.Journal),
// in place with one fdatasync; it runs in the background while the
// download goes on, one at a time, so a save comes due only once the
// previous one is done.
//
// Config.PowerLossBudget bounds what a power loss can cost, however fast
// the link and however slow the slot's fsyncs (payload.Checkpoints.MaxLag):
// the download never has that many bytes written that no persisted save
// covers before it reads the next buffer (it waits for the running save
// instead). So a power loss costs less than the budget plus one buffer
// (payload.BufferSize/4) of slot bytes downloaded again, plus what was
// still in flight in the network; on a link slower than the fsyncs, about
// CheckpointBytes. A server that stalls gets a save after checkpointIdle,
// so a power loss during a stall costs at most a partly filled buffer. A
// dropped connection costs none, and so does the death of the agent's
// process alone (see hintFile).
const (
	CheckpointBytes    = 256 << 10
	CheckpointInterval = 2 * time.Second
	// DefaultPowerLossBudget is Config.PowerLossBudget's default: with one
	// buffer and what is in flight on loopback, under 1 MiB.
	DefaultPowerLossBudget = 512 << 10
)

// checkpointIdle: a download whose server has sent nothing for this long
// is saved at the offset reached (payload.Checkpoints.Idle), so that a
// stall followed by a power loss costs at most one partly filled buffer.
const checkpointIdle = 100 * time.Millisecond

// minProgress is how far one request must get for a dropped connection not
// to count against Config.MaxAttempts: a link that drops now and then but
// moves on is followed to the end; one that cannot deliver this much in
// MaxAttempts tries in a row waits for the next check.
const minProgress = 1 << 20

// errStartOver makes download request the payload again from byte 0 at
// once: the server could not continue the saved download.
var errStartOver = errors.New("agent: starting the download over")

// download streams the payload of s.Pending into its slot and returns nil
// once the slot holds the whole image, verified against the signed hashes
// of rel and synced.
//
// It resumes from s.Pending.Download when that is usable, plus what an
// agent process of this boot wrote after it (see hintFile), and saves
// progress there as it goes (persisting s). A dropped connection is resumed
// from the exact offset reached, after the fetch client's jittered backoff,
// up to Config.MaxAttempts times in a row without minProgress; then the
// error is returned with the progress saved, for the next check. A server
// that cannot continue the download (it ignores Range, its ETag changed,
// it answers with another range or 416) makes it start over from byte 0,
// after the reset is saved; one that announces or sends more than the
// signed length fails it. An image whose first bytes were restored from
// saved progress is read back from the slot and verified before download
// returns; if that, or the hash of the resumed stream, does not match, the
// payload is downloaded once more from byte 0.
func (a *Agent) download(ctx context.Context, s *State, rel *metadata.TargetFiles) error {
	p := s.Pending
	hashes := map[string][]byte{}
	for alg, h := range rel.Hashes {
		hashes[alg] = h
	}
	r, err := payload.NewResumable(p.Length, hashes)
	if err != nil {
		return err
	}
	if d := p.Download; d != nil {
		err := r.Restore(d.Progress)
		if err == nil && d.Image != 0 {
			err = errors.New("it is the progress of a compressed payload")
		}
		if err != nil {
			a.log.Warn("saved download progress is unusable; starting over", "version", p.Version, "err", err)
			if err := a.startOver(s, r); err != nil {
				return err
			}
		}
	}
	a.absorbHint(ctx, p, r)
	err = a.fetchInto(ctx, s, r)
	if err == nil && r.Restored() {
		err = a.verifySlot(ctx, p, hashes)
	}
	// A prefix taken from saved progress makes a mismatch ambiguous: the
	// slot or the saved hash states may be what is wrong. Only a download
	// from byte 0 tells.
	if err == nil || !r.Restored() || !errors.Is(err, payload.ErrHashMismatch) {
		return err
	}
	a.log.Warn("the resumed image does not verify; downloading the whole payload again",
		"version", p.Version, "slot", p.Slot, "err", err)
	if err := a.startOver(s, r); err != nil {
		return err
	}
	return a.fetchInto(ctx, s, r)
}

// fetchInto runs requests until r has the whole image or a failure is
// final for this check (see retryDrops).
func (a *Agent) fetchInto(ctx context.Context, s *State, r *payload.Resumable) error {
	p := s.Pending
	err := a.retryDrops(ctx, r, func() error { return a.transfer(ctx, s, r) }, func(err error) {
		a.log.Warn("payload download interrupted; resuming", "version", p.Version, "offset", r.Offset(), "length", p.Length, "err", err)
	})
	var de *dropsError
	if errors.As(err, &de) {
		return fmt.Errorf("payload download %w", err)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("payload download: %w", err)
	}
	return err
}

// dropsError: the connection dropped Config.MaxAttempts times in a row
// without minProgress bytes of progress in between.
type dropsError struct {
	times          int
	offset, length int64
	err            error // the last drop
}

func (e *dropsError) Error() string {
	return fmt.Sprintf("interrupted %d times in a row, at %d of %d bytes: %v", e.times, e.offset, e.length, e.err)
}
func (e *dropsError) Unwrap() error { return e.err }

// retryDrops calls transfer until it succeeds or fails for good. A
// dropped connection, or a server that made the download start over
// (errStartOver), is tried again after a backoff, with warn called first;
// a request that got minProgress bytes further than the one before resets
// the count, and Config.MaxAttempts drops in a row give a *dropsError.
// Any other error of transfer, or ctx ending during a backoff, is
// returned as it is.
func (a *Agent) retryDrops(ctx context.Context, r *payload.Resumable, transfer func() error, warn func(error)) error {
	drops := 0
	for {
		from := r.Offset()
		err := transfer()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errStartOver) && !isDrop(err) {
			return err
		}
		if r.Offset()-from >= minProgress {
			drops = 0
		}
		drops++
		if drops >= a.cfg.MaxAttempts {
			return &dropsError{times: drops, offset: r.Offset(), length: r.Length(), err: err}
		}
		warn(err)
		if err := a.http.Backoff(ctx, drops); err != nil {
			return fmt.Errorf("waiting to resume: %w", err)
		}
	}
}

// transfer makes one request for the rest of the payload, from r's offset,
// and streams the answer into the slot.
func (a *Agent) transfer(ctx context.Context, s *State, r *payload.Resumable) error {
	p := s.Pending
	etag := ""
	if p.Download != nil {
		etag = p.Download.ETag
	}
	var src io.Reader = eof{}
	// Bytes received, counted in src.Read and added to s only while the
	// copy stands still (in Save and at the end): an idle save may encode
	// s while src.Read runs.
	var received atomic.Int64
	fold := func() { s.downloadCount(p).Bytes += received.Swap(0) }
	defer fold()
	// A download saved at its very end needs no request: only the final
	// checks remain.
	if off := r.Offset(); off < p.Length || p.Length == 0 {
		url := a.cfg.Server + "/repo/release/targets/" + targetFileName(p.Target, p.SHA256)
		res, err := a.requestRest(ctx, restRequest{what: "payload", version: p.Version, url: url, length: p.Length, off: off, etag: etag,
			count: func() *DownloadCount { return s.downloadCount(p) }, startOver: func() error { return a.startOver(s, r) }})
		if err != nil {
			return err
		}
		defer res.Close()
		etag = res.ETag
		src = &counter{r: res, add: func(n int) { received.Add(int64(n)) }}
	}
	w, err := a.openSlot(ctx, p.Slot, r.Offset())
	if err != nil {
		return err
	}
	jr, err := transfer.OpenJournal(a.cfg.DataDir)
	if err != nil {
		w.Close()
		return err
	}
	defer jr.Close()
	// Progress is recorded in s on this goroutine, and written (after the
	// slot's sync) to the checkpoint journal in the background while the
	// download goes on.
	cp := payload.Checkpoints{Bytes: CheckpointBytes, Interval: CheckpointInterval, Now: a.clock.Now, Background: true, MaxLag: a.cfg.lossBudget(),
		Idle: checkpointIdle,
		Save: func(pr payload.Progress) (func() error, error) {
			fold()
			p.Download = &Download{Progress: pr, ETag: etag}
			b, err := encodeState(s)
			if err != nil {
				return nil, err
			}
			return a.checkpointPersist(jr, s.Seq, b), nil
		}}
	hw := a.openHint(ctx, payload.WritebackAt(w, r.Offset()), p, r.Offset())
	_, err = r.Install(ctx, src, powerWriter{hw, a.power, "mid-write"}, cp)
	hw.close()
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing slot %s: %w", p.Slot, cerr)
	}
	if err == nil {
		s.downloadCount(p).Complete = true
	}
	return err
}

// openSlot opens the slot for writing at off: from the start (truncating a
// file slot) at 0, else resuming without truncating.
func (a *Agent) openSlot(ctx context.Context, n slot.Name, off int64) (slot.Writer, error) {
	var w slot.Writer
	var err error
	if off == 0 {
		w, err = a.slots.OpenWriter(ctx, n)
	} else {
		w, err = a.slots.OpenWriterAt(ctx, n, off)
	}
	if err != nil {
		return nil, fmt.Errorf("opening slot %s at offset %d: %w", n, off, err)
	}
	return w, nil
}

// startOver throws the progress away and saves that before anything is
// written again, so that a power loss cannot pair the old hash states with
// slot bytes that the new attempt rewrote.
func (a *Agent) startOver(s *State, r *payload.Resumable) error {
	r.Reset()
	a.dropHint()
	if s.Pending.Download == nil {
		return nil
	}
	s.Pending.Download = nil
	s.downloadCount(s.Pending).Restarts++
	return saveState(a.cfg.DataDir, s)
}

// verifySlot reads the image back from the slot and checks it against the
// signed hashes.
func (a *Agent) verifySlot(ctx context.Context, p *Pending, hashes map[string][]byte) error {
	rd, err := a.slots.OpenReader(ctx, p.Slot)
	if err != nil {
		return fmt.Errorf("reading back slot %s: %w", p.Slot, err)
	}
	defer rd.Close()
	if _, err := payload.Verify(ctx, rd, p.Length, hashes); err != nil {
		return fmt.Errorf("reading back slot %s after a resumed download: %w", p.Slot, err)
	}
	return nil
}

// restRequest is a request for the rest of a target, from off, that
// continues an earlier download only if the server still has the same
// bytes (ETag etag).
type restRequest struct {
	what, version string // for messages: "payload", "delta", ...
	url           string
	length, off   int64
	etag          string
	count         func() *DownloadCount // where Requests and Resumed are counted, once there is an answer
	startOver     func() error          // drops the progress: the next byte written is byte 0
}

// requestRest asks for the rest of a target and returns the answer to
// stream from: at q.off, or at 0 after q.startOver when the server sent the
// whole target instead (it ignores Range, or the target changed). A server
// that cannot continue (Range refused, 416) or whose ETag changed gets
// q.startOver and an errStartOver, so that retryDrops asks again from 0. An
// answer of another length than the signed one is ErrTruncated.
func (a *Agent) requestRest(ctx context.Context, q restRequest) (*fetch.Resource, error) {
	res, err := a.http.GetFrom(ctx, q.url, q.length, q.off, q.etag)
	var se *fetch.StatusError
	if q.off > 0 && (errors.Is(err, fetch.ErrBadRange) || errors.As(err, &se) && se.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
		a.log.Warn("the server cannot continue the "+q.what+" download; starting over", "version", q.version, "offset", q.off, "err", err)
		if err := q.startOver(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errStartOver, err)
	}
	if err != nil {
		return nil, err
	}
	c := q.count()
	c.Requests++
	if res.Size >= 0 && res.Size != q.length {
		res.Close()
		return nil, fmt.Errorf("%w: the server says the %s has %d bytes, the signed metadata %d", payload.ErrTruncated, q.what, res.Size, q.length)
	}
	switch {
	case q.off > 0 && res.Offset == 0:
		a.log.Warn("the server sent the whole "+q.what+" instead of the rest (it ignores Range, or the "+q.what+"'s ETag changed); starting over",
			"version", q.version, "offset", q.off, "etag", q.etag, "server_etag", res.ETag)
		if err := q.startOver(); err != nil {
			res.Close()
			return nil, err
		}
	case q.off > 0 && q.etag != "" && res.ETag != q.etag:
		// A server that honoured the Range but not the If-Range: the
		// rest may belong to another file.
		a.log.Warn("the "+q.what+"'s ETag changed; starting over", "version", q.version, "offset", q.off, "etag", q.etag, "server_etag", res.ETag)
		res.Close()
		if err := q.startOver(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: ETag %s instead of %s", errStartOver, res.ETag, q.etag)
	case q.off > 0:
		c.Resumed++
	}
	return res, nil
}

// counter passes reads through and reports how many bytes each returned.
type counter struct {
	r   io.Reader
	add func(n int)
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(n)
	}
	return n, err
}

// eof is an empty source.
type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

// checkpointPersist returns the persist function of a download checkpoint
// for the state encoded as b (whose Seq is seq): it writes the record into
// j, or replaces state.json when the state is too large for a slot.
func (a *Agent) checkpointPersist(j *transfer.Journal, seq uint64, b []byte) func() error {
	return func() error {
		err := j.Write(seq, b)
		if errors.Is(err, transfer.ErrJournalFull) {
			return writeState(a.cfg.DataDir, b)
		}
		return err
	}
}
