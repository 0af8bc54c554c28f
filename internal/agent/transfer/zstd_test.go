package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// frames compresses img into independent zstd frames of frame image
// bytes each, as `release add --zstd-frame` does.
func frames(t *testing.T, img []byte, frame int) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var body []byte
	for off := 0; off < len(img); off += frame {
		body = enc.EncodeAll(img[off:min(off+frame, len(img))], body)
	}
	return body
}

// imageOf is img as the manifest describes it.
func imageOf(img []byte) Image {
	sum := sha256.Sum256(img)
	return Image{Length: int64(len(img)), SHA256: hex.EncodeToString(sum[:])}
}

// halfRandom is an image that compresses to about half.
func halfRandom(seed uint64, n int) []byte {
	img := random(seed, n)
	for i := 0; i < n; i += 8192 {
		clear(img[i:min(i+4096, n)])
	}
	return img
}

// resumed runs job again, with power on, from the progress saved before a
// power loss, and checks that the slot then holds img after one request
// for the rest of body, counted in rec.
func resumed(t *testing.T, d *Downloader, srv *server, slot fileSlot, job Job, rec *memRecorder, saved *Progress, img, body []byte, staging bool) {
	t.Helper()
	d.Power = nil
	job.Saved, job.Rec = saved, rec
	if err := d.Compressed(context.Background(), job, imageOf(img), staging); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slot.bytes(t), img) {
		t.Fatal("the slot does not hold the image")
	}
	if got, want := srv.requests(), []string{"", fmt.Sprintf("bytes=%d-", saved.Offset)}; !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
	if c := rec.count; c != (Count{Bytes: int64(len(body)) - saved.Offset, Requests: 1, Resumed: 1, Complete: true}) {
		t.Fatalf("count %+v", c)
	}
}

// TestStreamResumesAtFrameBoundary: a compressed payload of frames,
// streamed into the slot, saves frame boundaries; after a power loss the
// next call asks for the rest from the last one saved and decodes it with
// a new decoder after the image bytes the slot holds.
func TestStreamResumesAtFrameBoundary(t *testing.T) {
	const frame = 256 << 10
	img := halfRandom(6, 3<<20)
	body := frames(t, img, frame)
	dir := t.TempDir()
	srv := newServer(t, body)
	slot, rec := newSlot(t, "b"), &memRecorder{}
	d := newDownloader(t, dir)
	d.Power = func(point string) error {
		if fi, err := os.Stat(slot.path); point == "mid-write" && err == nil && fi.Size() >= 2<<20 {
			return errPower
		}
		return nil
	}
	job := Job{Version: "1.1.0", Target: target(srv.URL, body), Slot: slot, Rec: rec}
	if err := d.Compressed(context.Background(), job, imageOf(img), false); !errors.Is(err, errPower) {
		t.Fatalf("first call: %v, want the power loss", err)
	}
	saved := rec.persisted(t, dir)
	if saved == nil || saved.Route != RouteZstdStream || saved.Image%frame != 0 || saved.Image < frame || saved.Image > 2<<20 ||
		saved.Offset <= 0 || saved.Offset >= int64(len(body)) {
		t.Fatalf("persisted %+v: want a frame boundary", saved)
	}
	rec = &memRecorder{}
	resumed(t, d, srv, slot, job, rec, saved, img, body, false)
	if _, err := os.Stat(d.StagedFile()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a streamed payload was staged: %v", err)
	}
}

// TestStreamStartsOverWithoutBoundary: progress that is not a frame
// boundary of this route (a staged payload's) does not apply; the payload
// streams from byte 0, and a wrong image is refused after decoding.
func TestStreamStartsOverWithoutBoundary(t *testing.T) {
	img := halfRandom(7, 1<<20)
	body := frames(t, img, 1<<20)
	srv := newServer(t, body)
	slot, rec := newSlot(t, "b"), &memRecorder{}
	d := newDownloader(t, t.TempDir())
	staged := &Progress{Route: RouteStaged, Progress: payload.Progress{Offset: 1000}}
	job := Job{Version: "1.1.0", Target: target(srv.URL, body), Slot: slot, Saved: staged, Rec: rec}
	if err := d.Compressed(context.Background(), job, imageOf(img), false); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests(); !slices.Equal(got, []string{""}) || !bytes.Equal(slot.bytes(t), img) || rec.count.Restarts != 0 {
		t.Fatalf("requests %q, count %+v", got, rec.count)
	}
	wrong := imageOf(img)
	wrong.SHA256 = hex.EncodeToString(make([]byte, 32))
	job.Saved = nil
	if err := d.Compressed(context.Background(), job, wrong, false); !errors.Is(err, ErrImageMismatch) {
		t.Fatalf("wrong image: %v, want ErrImageMismatch", err)
	}
}

// TestStagedResumes: a staged compressed payload saves its progress as it
// goes; after a power loss the next call continues the staged file from
// there, then decompresses it into the slot and removes it.
func TestStagedResumes(t *testing.T) {
	img := random(8, 3<<20) // compresses to about its size
	body := frames(t, img, 4<<20)
	dir := t.TempDir()
	srv := newServer(t, body)
	slot, rec := newSlot(t, "b"), &memRecorder{}
	d := newDownloader(t, dir)
	d.Power = powerAfter("stage-write", 6)
	job := Job{Version: "1.1.0", Target: target(srv.URL, body), Slot: slot, Rec: rec}
	if err := d.Compressed(context.Background(), job, imageOf(img), true); !errors.Is(err, errPower) {
		t.Fatalf("first call: %v, want the power loss", err)
	}
	saved := rec.persisted(t, dir)
	written := int64(6 * payload.BufferSize / 4)
	if saved == nil || saved.Route != RouteStaged || saved.Offset < CheckpointBytes || saved.Offset > written {
		t.Fatalf("persisted %+v after %d bytes staged", saved, written)
	}
	if _, err := os.Stat(slot.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the slot was written while staging: %v", err)
	}
	rec = &memRecorder{progress: saved}
	resumed(t, d, srv, slot, job, rec, saved, img, body, true)
	if _, err := os.Stat(d.StagedFile()); !errors.Is(err, os.ErrNotExist) || rec.progress != nil {
		t.Fatalf("after the install: staged file %v, progress %+v; want both gone", err, rec.progress)
	}
}

// TestCanStage checks when a compressed payload is staged: only with room
// for it, what is staged already counting.
func TestCanStage(t *testing.T) {
	dir := t.TempDir()
	free, err := freeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &Downloader{Dir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range []struct {
		name   string
		length int64
		staged int64 // bytes in payload.tmp with saved progress (-1: none)
		route  Route // of the saved progress
		want   bool
	}{
		{"small payload", 1 << 20, -1, "", true},
		{"larger than the free space", free, -1, "", false},
		{"what is staged counts", free, free - 1<<20, RouteStaged, true},
		{"progress of another route does not count", free, free - 1<<20, RouteZstdStream, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(d.StagedFile())
			j := Job{Version: "1.1.0", Target: Target{Length: tc.length}}
			if tc.staged >= 0 {
				f, err := os.Create(d.StagedFile())
				if err != nil {
					t.Fatal(err)
				}
				// A sparse file: its size, not its blocks, is what counts.
				if err := f.Truncate(tc.staged); err != nil {
					t.Fatal(err)
				}
				f.Close()
				j.Saved = &Progress{Route: tc.route}
			}
			if got := d.canStage(j); got != tc.want {
				t.Fatalf("canStage = %v, want %v (free %d)", got, tc.want, free)
			}
		})
	}
}
