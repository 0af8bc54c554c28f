package transfer

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// flakyCut is where the flaky link of these tests drops every connection:
// far more than minProgress, far less than the payloads.
const flakyCut = 300_000

// cutEvery drops every answer of srv after n body bytes.
func cutEvery(srv *server, n int64) {
	for i := range 1000 {
		srv.cut[i] = n
	}
}

// TestRetryFollowsProgress: a link that drops every connection after
// 300 KB, more times than MaxAttempts, is followed to the end within one
// call by every route, as each attempt makes progress: the slot holds the
// image, every byte came once, each request resumed where the last one
// dropped.
func TestRetryFollowsProgress(t *testing.T) {
	img := random(21, 3_000_000)
	compressed := frames(t, img, len(img)) // one frame: no boundary to save
	for _, tc := range []struct {
		route Route
		body  []byte
		run   func(d *Downloader, j Job) error
	}{
		{RouteSlot, img, func(d *Downloader, j Job) error { return d.Plain(context.Background(), j) }},
		{RouteZstdStream, compressed, func(d *Downloader, j Job) error {
			return d.Compressed(context.Background(), j, imageOf(img), false)
		}},
		{RouteStaged, compressed, func(d *Downloader, j Job) error {
			return d.Compressed(context.Background(), j, imageOf(img), true)
		}},
	} {
		t.Run(string(tc.route), func(t *testing.T) {
			srv := newServer(t, tc.body)
			cutEvery(srv, flakyCut)
			d := newDownloader(t, t.TempDir())
			d.MaxAttempts = 3
			slot, rec := newSlot(t, "b"), &memRecorder{}
			if err := tc.run(d, Job{Version: "1.1.0", Target: target(srv.URL, tc.body), Slot: slot, Rec: rec}); err != nil {
				t.Fatalf("over a link that drops every %d bytes: %v", flakyCut, err)
			}
			if !bytes.Equal(slot.bytes(t), img) {
				t.Fatal("the slot does not hold the image")
			}
			n := (len(tc.body) + flakyCut - 1) / flakyCut
			if got := srv.requests(); len(got) != n || n <= d.MaxAttempts {
				t.Fatalf("%d requests, want %d (more than max attempts %d)", len(got), n, d.MaxAttempts)
			}
			if c := rec.count; c.Bytes != int64(len(tc.body)) || c.Resumed != n-1 || c.Restarts != 0 || !c.Complete {
				t.Fatalf("count %+v, want every byte once in %d requests", c, n)
			}
		})
	}
}

// TestRetryFollowsProgressDelta: the same for a delta.
func TestRetryFollowsProgressDelta(t *testing.T) {
	f := newDeltaFixture(t)
	const cut = 200_000
	d := newDownloader(t, t.TempDir())
	d.MaxAttempts = 3
	if len(f.body) <= (d.MaxAttempts+1)*cut {
		t.Fatalf("a delta of %d bytes is too small for this test", len(f.body))
	}
	cutEvery(f.srv, cut)
	slot, rec := newSlot(t, "b"), &memRecorder{}
	if err := d.Delta(context.Background(), f.job(slot, nil, rec), f.source(), imageOf(f.img)); err != nil {
		t.Fatalf("over a link that drops every %d bytes: %v", cut, err)
	}
	if !bytes.Equal(slot.bytes(t), f.img) {
		t.Fatal("the slot does not hold the image")
	}
	if got := len(f.srv.requests()); got <= d.MaxAttempts || rec.count.Bytes != int64(len(f.body)) {
		t.Fatalf("%d requests, %d bytes: want more than %d requests, every byte once", got, rec.count.Bytes, d.MaxAttempts)
	}
}

// TestRetryGivesUpWithoutProgress: attempts that each get a few bytes
// further do not count as progress until they add up to minProgress; a
// server that sends 1000 bytes per connection ends the call after
// MaxAttempts requests.
func TestRetryGivesUpWithoutProgress(t *testing.T) {
	data := random(22, 1<<20)
	srv := newServer(t, data)
	cutEvery(srv, 1000)
	d := newDownloader(t, t.TempDir())
	d.MaxAttempts = 4
	rec := &memRecorder{}
	err := d.Plain(context.Background(), plainJob(srv, newSlot(t, "b"), nil, rec))
	var de *dropsError
	if !errors.As(err, &de) || de.times != 4 || !isDrop(err) {
		t.Fatalf("err = %v, want four drops in a row", err)
	}
	if n := len(srv.requests()); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
	if p := rec.progress; p == nil || p.Offset != 4000 {
		t.Fatalf("recorded %+v, want the progress at the fourth drop", p)
	}
}

// TestRetryStartOverIsNoProgress: a server that answers every other
// resumed request with the whole target, cut like the others, throws the
// progress away as often as the link makes it: regaining lost ground is no
// progress, so the call ends after MaxAttempts attempts that did not pass
// the furthest offset reached, instead of going on for as long as the
// server likes.
func TestRetryStartOverIsNoProgress(t *testing.T) {
	data := random(23, 3<<20)
	srv := newServer(t, data)
	cutEvery(srv, 100<<10)
	srv.ignoreRangeAt = map[int]bool{}
	for i := 1; i < 1000; i += 2 {
		srv.ignoreRangeAt[i] = true
	}
	d := newDownloader(t, t.TempDir())
	d.MaxAttempts = 3
	err := d.Plain(context.Background(), plainJob(srv, newSlot(t, "b"), nil, &memRecorder{}))
	var de *dropsError
	if !errors.As(err, &de) || de.times != 3 {
		t.Fatalf("err = %v, want three drops in a row without progress", err)
	}
	// 0→100K (progress), back to 100K, 200K (progress), back to 100K,
	// 200K, back to 100K: three without getting past 200K.
	if n := len(srv.requests()); n != 6 {
		t.Fatalf("%d requests, want 6", n)
	}
}
