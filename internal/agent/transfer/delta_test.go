package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/uptrust/uptrust/internal/delta"
)

// deltaFixture is a source image in the active slot, the image a release
// makes of it, and the delta between them served by srv.
type deltaFixture struct {
	src, img []byte
	body     []byte // the delta
	srv      *server
	active   fileSlot
}

func newDeltaFixture(t *testing.T) *deltaFixture {
	t.Helper()
	src := random(9, 1<<20)
	// Half the source kept, then new bytes: a delta of about a megabyte,
	// several checkpoints long.
	img := append(bytes.Clone(src[:512<<10]), random(10, 1<<20)...)
	var body bytes.Buffer
	if err := delta.Create(context.Background(), &body, src, img); err != nil {
		t.Fatal(err)
	}
	f := &deltaFixture{src: src, img: img, body: body.Bytes(), active: newSlot(t, "a")}
	if err := os.WriteFile(f.active.path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	f.srv = newServer(t, f.body)
	return f
}

func (f *deltaFixture) job(slot fileSlot, saved *Progress, rec *memRecorder) Job {
	return Job{Version: "1.1.0", Target: target(f.srv.URL, f.body), Slot: slot, Saved: saved, Rec: rec}
}

func (f *deltaFixture) source() Source {
	return Source{Slot: f.active, Version: "1.0.0", Length: int64(len(f.src)), SHA256: sha256.Sum256(f.src)}
}

// TestDeltaApplies: the delta is downloaded into the data directory,
// checked against the manifest's image and applied into the slot; its
// progress says it is complete.
func TestDeltaApplies(t *testing.T) {
	f := newDeltaFixture(t)
	d := newDownloader(t, t.TempDir())
	slot, rec := newSlot(t, "b"), &memRecorder{}
	if err := d.Delta(context.Background(), f.job(slot, nil, rec), f.source(), imageOf(f.img)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slot.bytes(t), f.img) {
		t.Fatal("the slot does not hold the image")
	}
	if p := rec.progress; p == nil || p.Route != RouteDelta || p.Offset != int64(len(f.body)) {
		t.Fatalf("progress %+v, want the complete delta's", p)
	}
	if c := rec.count; c != (Count{Bytes: int64(len(f.body)), Requests: 1, Complete: true}) {
		t.Fatalf("count %+v", c)
	}
}

// TestDeltaRefused: a delta is applied only to its own source and only if
// it makes the manifest's image.
func TestDeltaRefused(t *testing.T) {
	f := newDeltaFixture(t)
	other := random(11, len(f.src))
	for _, tc := range []struct {
		name string
		src  func(s *Source)
		img  Image
		want error
	}{
		// The caller read another image from the active slot.
		{"another source", func(s *Source) { s.SHA256 = sha256.Sum256(other) }, imageOf(f.img), delta.ErrSourceMismatch},
		// The slot's bytes are not those the caller hashed.
		{"source bytes changed", func(s *Source) {
			if err := os.WriteFile(s.Slot.(fileSlot).path, other, 0o600); err != nil {
				t.Fatal(err)
			}
		}, imageOf(f.img), delta.ErrTargetMismatch},
		{"another image", nil, imageOf(f.src), ErrDeltaTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := f.source()
			src.Slot = newSlot(t, "a")
			if err := os.WriteFile(src.Slot.(fileSlot).path, f.src, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.src != nil {
				tc.src(&src)
			}
			d := newDownloader(t, t.TempDir())
			err := d.Delta(context.Background(), f.job(newSlot(t, "b"), nil, &memRecorder{}), src, tc.img)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDeltaResumes: after a power loss during the download, the next call
// continues the delta from its saved progress; after one during the apply,
// it applies the complete delta again without downloading it.
func TestDeltaResumes(t *testing.T) {
	f := newDeltaFixture(t)
	for _, tc := range []struct {
		point string
		after int
	}{{"delta-write", 2}, {"mid-write", 1}} {
		t.Run(tc.point, func(t *testing.T) {
			dir := t.TempDir()
			f.srv = newServer(t, f.body)
			d := newDownloader(t, dir)
			d.Power = powerAfter(tc.point, tc.after)
			slot, rec := newSlot(t, "b"), &memRecorder{}
			if err := d.Delta(context.Background(), f.job(slot, nil, rec), f.source(), imageOf(f.img)); !errors.Is(err, errPower) {
				t.Fatalf("first call: %v, want the power loss", err)
			}
			saved := rec.persisted(t, dir)
			want := []string{"", fmt.Sprintf("bytes=%d-", saved.Offset)}
			if tc.point == "mid-write" {
				// Complete: no request, only the read-back.
				want = want[:1]
				if saved.Offset != int64(len(f.body)) {
					t.Fatalf("persisted %+v, want the complete delta", saved)
				}
			} else if saved.Route != RouteDelta || saved.Offset != 2*DeltaCheckpointBytes {
				t.Fatalf("persisted %+v, want the delta's at %d", saved, 2*DeltaCheckpointBytes)
			}
			d.Power = nil
			if err := d.Delta(context.Background(), f.job(slot, saved, &memRecorder{progress: saved}), f.source(), imageOf(f.img)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(slot.bytes(t), f.img) {
				t.Fatal("the slot does not hold the image")
			}
			if got := f.srv.requests(); !slices.Equal(got, want) {
				t.Fatalf("requests %q, want %q", got, want)
			}
		})
	}
}
