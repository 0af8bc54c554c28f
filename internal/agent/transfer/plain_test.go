package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
)

// plainJob is the download of srv's target into slot, recorded in rec.
func plainJob(srv *server, slot fileSlot, saved *Progress, rec *memRecorder) Job {
	return Job{Version: "1.1.0", Target: target(srv.URL, srv.data), Slot: slot, Saved: saved, Rec: rec}
}

// TestPlainResumesAfterDrop: a dropped connection is resumed from the
// exact offset reached, and counted once as resumed. The server gives every
// answer an ETag of its own: the resume does not send it back (it used to,
// in If-Range), keeps none in the progress it records, and is not refused
// for a "changed" ETag.
func TestPlainResumesAfterDrop(t *testing.T) {
	data := random(1, 3<<20+123)
	const cut = 1<<20 + 4321
	srv := newServer(t, data)
	srv.cut[0] = cut
	slot, rec := newSlot(t, "b"), &memRecorder{}
	d := newDownloader(t, t.TempDir())
	if err := d.Plain(context.Background(), plainJob(srv, slot, nil, rec)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slot.bytes(t), data) {
		t.Fatal("the slot does not hold the image")
	}
	if got, want := srv.requests(), []string{"", fmt.Sprintf("bytes=%d-", cut)}; !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
	if c := rec.count; c != (Count{Bytes: int64(len(data)), Requests: 2, Resumed: 1, Complete: true}) {
		t.Fatalf("count %+v", c)
	}
	if p := rec.progress; p == nil || p.Route != RouteSlot || p.Offset < cut {
		t.Fatalf("recorded progress %+v, want the slot route's, past the drop", p)
	}
	if e := srv.echoes(); len(e) != 0 {
		t.Fatalf("requests sent back an ETag the server chose: %v", e)
	}
	if b, err := json.Marshal(rec.progress); err != nil || strings.Contains(string(b), "device-") || strings.Contains(string(b), "etag") {
		t.Fatalf("recorded progress %s keeps the server's ETag (%v)", b, err)
	}
}

// TestPlainStartsOver: a server that cannot continue the download makes
// it start over from byte 0, once, and the image still arrives whole.
func TestPlainStartsOver(t *testing.T) {
	data := random(2, 2<<20)
	const cut = 700 << 10
	resumed := fmt.Sprintf("bytes=%d-", cut)
	for _, tc := range []struct {
		name     string
		fault    func(s *server)
		requests []string
		answered int // requests answered with 200 or 206
		// resumed, for a resume that went through, makes the first
		// drop's rest count as received and resumed.
		resumed bool
	}{
		// The whole target instead of the rest: streamed from byte 0 in
		// the same request.
		{"range ignored", func(s *server) { s.ignoreRange = true }, []string{"", resumed}, 2, false},
		// The rest of other bytes under the same name (an ETag used to
		// tell; the agent no longer keeps one): the image's hash does not
		// match, and the payload is asked for from byte 0. This replaces
		// the two "etag changed" cases, which needed If-Range.
		{"bytes changed under the same name", func(s *server) { s.changedAt[1] = true }, []string{"", resumed, ""}, 3, true},
		{"416", func(s *server) { s.refuseRange = true }, []string{"", resumed, ""}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, data)
			srv.cut[0] = cut
			tc.fault(srv)
			slot, rec := newSlot(t, "b"), &memRecorder{}
			if err := newDownloader(t, t.TempDir()).Plain(context.Background(), plainJob(srv, slot, nil, rec)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(slot.bytes(t), data) {
				t.Fatal("the slot does not hold the image")
			}
			if got := srv.requests(); !slices.Equal(got, tc.requests) {
				t.Fatalf("requests %q, want %q", got, tc.requests)
			}
			want := Count{Bytes: cut + int64(len(data)), Requests: tc.answered, Restarts: 1, Complete: true}
			if tc.resumed {
				want.Bytes, want.Resumed = 2*int64(len(data)), 1
			}
			if rec.count != want {
				t.Fatalf("count %+v, want %+v", rec.count, want)
			}
		})
	}
}

// TestPlainResumesSavedProgress: after a power loss, the next call
// continues from the progress persisted, reads the slot's prefix back, and
// downloads only the rest; a prefix that rotted in the slot makes it
// download the whole payload again.
func TestPlainResumesSavedProgress(t *testing.T) {
	data := random(3, 4<<20)
	for _, rot := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotten=%v", rot), func(t *testing.T) {
			dir := t.TempDir()
			srv := newServer(t, data)
			slot, rec := newSlot(t, "b"), &memRecorder{}
			d := newDownloader(t, dir)
			d.Power = powerAfter("mid-write", 8)
			if err := d.Plain(context.Background(), plainJob(srv, slot, nil, rec)); !errors.Is(err, errPower) {
				t.Fatalf("first call: %v, want the power loss", err)
			}
			saved := rec.persisted(t, dir)
			written := int64(8 * payload.BufferSize / 4)
			if saved == nil || saved.Route != RouteSlot || saved.Offset < CheckpointBytes || saved.Offset > written ||
				written-saved.Offset >= d.LossBudget+payload.BufferSize/4 {
				t.Fatalf("persisted %+v after %d bytes written", saved, written)
			}
			if rot {
				f, err := os.OpenFile(slot.path, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt([]byte("rot"), saved.Offset/2)
				f.Close()
			}
			d.Power = nil
			rec = &memRecorder{}
			if err := d.Plain(context.Background(), plainJob(srv, slot, saved, rec)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(slot.bytes(t), data) {
				t.Fatal("the slot does not hold the image")
			}
			want := []string{"", fmt.Sprintf("bytes=%d-", saved.Offset)}
			c := Count{Bytes: int64(len(data)) - saved.Offset, Requests: 1, Resumed: 1, Complete: true}
			if rot {
				want = append(want, "")
				c.Bytes += int64(len(data))
				c.Requests++
				c.Restarts++
			}
			if got := srv.requests(); !slices.Equal(got, want) {
				t.Fatalf("requests %q, want %q", got, want)
			}
			if rec.count != c {
				t.Fatalf("count %+v, want %+v", rec.count, c)
			}
		})
	}
}

// TestPlainRefusesOversize: a server that announces or sends more than the
// signed length fails the download; nothing is retried.
func TestPlainRefusesOversize(t *testing.T) {
	data := random(4, 1<<20)
	for _, announce := range []bool{true, false} {
		t.Run(fmt.Sprintf("announced=%v", announce), func(t *testing.T) {
			srv := newServer(t, data)
			srv.extra, srv.announce = []byte("and then some"), announce
			err := newDownloader(t, t.TempDir()).Plain(context.Background(), plainJob(srv, newSlot(t, "b"), nil, &memRecorder{}))
			if !errors.Is(err, fetch.ErrTooLong) && !errors.Is(err, payload.ErrTooLong) {
				t.Fatalf("err = %v, want too long", err)
			}
			if isDrop(err) || len(srv.requests()) != 1 {
				t.Fatalf("err %v after %d requests: want one, not a drop", err, len(srv.requests()))
			}
		})
	}
}

// TestPlainDropsInARow: a link that drops MaxAttempts times in a row
// without progress ends the call with the progress recorded, as a drop.
func TestPlainDropsInARow(t *testing.T) {
	data := random(5, 2<<20)
	srv := newServer(t, data)
	for i := range 10 {
		srv.cut[i] = int64(i+1) * 1000
	}
	d := newDownloader(t, t.TempDir())
	d.MaxAttempts = 3
	rec := &memRecorder{}
	err := d.Plain(context.Background(), plainJob(srv, newSlot(t, "b"), nil, rec))
	var de *dropsError
	if !errors.As(err, &de) || de.times != 3 || !isDrop(err) {
		t.Fatalf("err = %v, want three drops in a row", err)
	}
	if p := rec.progress; p == nil || p.Offset != 6000 {
		t.Fatalf("recorded %+v, want the progress at the third drop", p)
	}
}
