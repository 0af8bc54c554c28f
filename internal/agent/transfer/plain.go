package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// Plain streams j.Target, a payload that is the image, into j.Slot and
// returns nil once the slot holds the whole image, verified against the
// signed hashes and synced.
//
// It resumes from j.Saved when that is usable, plus what a process of this
// boot wrote after it (see hint.go), and records progress as it goes (see
// CheckpointBytes). A dropped connection is resumed from the exact offset
// reached, after the fetch client's jittered backoff, as long as it makes
// progress: MaxAttempts drops in a row without (see retry) return the
// error with the progress saved, for the next check. A server that cannot continue the
// download (it ignores Range, it answers with another range or 416) makes it start over from byte 0, after the reset is saved;
// one that announces or sends more than the signed length fails it. An
// image whose first bytes were restored from saved progress is read back
// from the slot and verified before Plain returns; if that, or the hash of
// the resumed stream, does not match, the payload is downloaded once more
// from byte 0.
func (d *Downloader) Plain(ctx context.Context, j Job) error {
	t, err := d.start(j, RouteSlot, "payload")
	if err != nil {
		return err
	}
	t.countAlways = true
	defer t.report()
	if s := t.saved; s != nil {
		err := fmt.Errorf("it is the progress of the %s route", s.Route)
		if s.Route == RouteSlot {
			err = t.r.Restore(s.Progress)
		}
		if err != nil {
			d.Log.Warn("saved download progress is unusable; starting over", "version", j.Version, "err", err)
			if err := t.startOverSlot(); err != nil {
				return err
			}
		}
	}
	t.absorbHint(ctx)
	err = t.plainRequests(ctx)
	if err == nil && t.r.Restored() {
		err = t.verifySlot(ctx)
	}
	// A prefix taken from saved progress, or from an earlier answer of
	// this check, makes a mismatch ambiguous: the slot, the saved hash
	// states or bytes changed on the server under the same name between
	// two answers may be what is wrong. Only a download from byte 0 tells.
	if err == nil || !t.r.Restored() && !t.pieced || !errors.Is(err, payload.ErrHashMismatch) {
		return err
	}
	d.Log.Warn("the resumed image does not verify; downloading the whole payload again",
		"version", j.Version, "slot", j.Slot.String(), "err", err)
	if err := t.startOverSlot(); err != nil {
		return err
	}
	return t.plainRequests(ctx)
}

// plainRequests runs requests until the slot has the whole image or a
// failure is final for this check (see retry).
func (t *run) plainRequests(ctx context.Context) error {
	err := t.retry(ctx, func() error { return t.plainRequest(ctx) })
	var de *dropsError
	if errors.As(err, &de) {
		return fmt.Errorf("payload download %w", err)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("payload download: %w", err)
	}
	return err
}

// plainRequest makes one request for the rest of the payload, from r's
// offset, and streams the answer into the slot.
func (t *run) plainRequest(ctx context.Context) error {
	d, r := t.d, t.r
	// Bytes received are reported while the copy stands still: in each
	// save and at the end.
	defer t.report()
	src, done, err := t.rest(ctx, t.startOverSlot)
	if err != nil {
		return err
	}
	defer done()
	w, err := t.openSlot(ctx, r.Offset())
	if err != nil {
		return err
	}
	jr, err := OpenJournal(d.Dir)
	if err != nil {
		w.Close()
		return err
	}
	defer jr.Close()
	// Progress is recorded on this goroutine (or the idle watchdog's, while
	// this one waits), and written (after the slot's sync) to the journal
	// in the background while the download goes on.
	cp := payload.Checkpoints{Bytes: CheckpointBytes, Interval: CheckpointInterval, Now: d.Now, Background: true, MaxLag: d.LossBudget,
		Window: d.LossWindow, Idle: checkpointIdle,
		Save: func(pr payload.Progress) (func() error, error) {
			return t.checkpoint(jr, Progress{Route: RouteSlot, Progress: pr})
		}}
	hw := t.openHint(ctx, payload.WritebackAt(w, r.Offset()), r.Offset())
	_, err = r.Install(ctx, src, powerWriter{hw, d, "mid-write"}, cp)
	hw.close()
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing slot %s: %w", t.j.Slot, cerr)
	}
	if err == nil {
		t.count.Complete = true
	}
	return err
}

// startOverSlot throws the progress away and saves that before anything is
// written again, so that a power loss cannot pair the old hash states with
// slot bytes that the new attempt rewrote.
func (t *run) startOverSlot() error {
	t.r.Reset()
	t.d.DropHint()
	if t.saved == nil {
		return nil
	}
	t.record(nil)
	t.count.Restarts++
	return t.save()
}

// verifySlot reads the image back from the slot and checks it against the
// signed hashes.
func (t *run) verifySlot(ctx context.Context) error {
	rd, err := t.j.Slot.OpenReader(ctx)
	if err != nil {
		return fmt.Errorf("reading back slot %s: %w", t.j.Slot, err)
	}
	defer rd.Close()
	if _, err := payload.Verify(ctx, rd, t.j.Target.Length, t.j.Target.Hashes); err != nil {
		return fmt.Errorf("reading back slot %s after a resumed download: %w", t.j.Slot, err)
	}
	return nil
}
