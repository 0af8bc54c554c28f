package transfer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

type bufWriter struct {
	bytes.Buffer
	synced bool
}

func (b *bufWriter) Sync() error { b.synced = true; return nil }

func compress(t *testing.T, img []byte, window int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(img)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testSink is a sink decoding from the first byte of a payload, recording
// no frame boundaries.
func testSink(t *testing.T, dst payload.Writer, limit int64) *zstdSink {
	t.Helper()
	return newZstdSink(dst, limit, nil, 0)
}

// feed writes body into a sink in small pieces, as payload.Install does,
// and syncs it; it returns the first error.
func feed(z *zstdSink, body []byte) error {
	defer z.close()
	for len(body) > 0 {
		n := min(len(body), 4096)
		if _, err := z.Write(body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	return z.Sync()
}

func TestZstdSink(t *testing.T) {
	img := []byte(strings.Repeat("an image block; ", 64<<10)) // 1 MiB
	good := compress(t, img, 1<<20)

	var out bufWriter
	if err := feed(testSink(t, &out, int64(len(img))), good); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), img) || !out.synced {
		t.Fatalf("decoded %d bytes (synced %v), want the %d-byte image", out.Len(), out.synced, len(img))
	}

	// A frame that asks for more than release.MaxZstdWindow (8 MiB) fails
	// at the first write: the header is refused before any window is
	// allocated. 16 MiB is the next power of two: a limit raised to 32 MiB
	// fails this.
	for _, window := range []int{16 << 20, 64 << 20} {
		huge := compress(t, img, window)
		z := testSink(t, &bufWriter{}, int64(len(img)))
		_, err := z.Write(huge)
		if err == nil {
			err = z.Sync()
		}
		z.close()
		if !errors.Is(err, ErrWindowTooLarge) {
			t.Fatalf("window of %d MiB: %v", window>>20, err)
		}
	}

	// An image longer or shorter than the manifest says.
	for _, limit := range []int64{int64(len(img)) - 1, int64(len(img)) + 1} {
		err := feed(testSink(t, &bufWriter{}, limit), good)
		if !errors.Is(err, ErrImageMismatch) {
			t.Errorf("image_length %d for a %d-byte image: %v", limit, len(img), err)
		}
	}

	// Garbage fails only at Sync, after every write was accepted (so that
	// the payload's hashes are checked first).
	bad := append([]byte(nil), good...)
	for i := 16; i < len(bad); i += 7 {
		bad[i] ^= 0x5a
	}
	z := testSink(t, &bufWriter{}, int64(len(img)))
	for b := bad; len(b) > 0; b = b[min(len(b), 4096):] {
		if _, err := z.Write(b[:min(len(b), 4096)]); err != nil {
			t.Fatalf("write of a corrupt stream failed before Sync: %v", err)
		}
	}
	err := z.Sync()
	z.close()
	if !errors.Is(err, ErrDecode) {
		t.Fatalf("corrupt stream: %v", err)
	}
}

// A payload of independent frames: the sink records every boundary, with
// the compressed progress and the image bytes up to it, and a new sink
// started at a boundary decodes the rest.
func TestZstdSinkFrameBoundaries(t *testing.T) {
	// 768 KiB that compress a little: frames much larger than a write.
	img := make([]byte, 768<<10)
	for i := range img {
		img[i] = byte(i*i>>7) &^ byte(i%3)
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	var ends []int
	for off := 0; off < len(img); off += 256 << 10 {
		body = enc.EncodeAll(img[off:off+256<<10], body)
		ends = append(ends, len(body))
	}
	hashes := map[string][]byte{"sha256": sha(body)}
	hr, _ := payload.NewResumable(int64(len(body)), hashes)
	var out bufWriter
	z := newZstdSink(&out, int64(len(img)), hr, 0)
	var seen []frameBoundary
	for i := 0; i < len(body); i += 1000 {
		if _, err := z.Write(body[i:min(i+1000, len(body))]); err != nil {
			t.Fatal(err)
		}
		// The decoder runs behind the writes: wait for the frame that
		// just ended, so that every boundary is seen.
		for k, e := range ends {
			if i < e && e <= i+1000 {
				deadline := time.Now().Add(10 * time.Second)
				for z.boundary() == nil || z.boundary().image < int64(k+1)*256<<10 {
					if time.Now().After(deadline) {
						t.Fatalf("the decoder did not reach frame boundary %d", k)
					}
					time.Sleep(time.Millisecond)
				}
				seen = append(seen, *z.boundary())
			}
		}
	}
	if err := z.Sync(); err != nil || !bytes.Equal(out.Bytes(), img) {
		t.Fatalf("sync: %v; decoded %d bytes", err, out.Len())
	}
	z.close()
	if len(seen) != 3 {
		t.Fatalf("%d boundaries, want 3", len(seen))
	}
	for k, b := range seen {
		if b.progress.Offset != int64(ends[k]) || b.image != int64(k+1)*256<<10 {
			t.Fatalf("boundary %d at %d / image %d, want %d / %d", k, b.progress.Offset, b.image, ends[k], (k+1)*256<<10)
		}
	}
	// Resume at the first boundary: the rest decodes after the image
	// bytes the slot holds, and the hashes cover the whole payload.
	hr2, _ := payload.NewResumable(int64(len(body)), hashes)
	if err := hr2.Restore(seen[0].progress); err != nil {
		t.Fatal(err)
	}
	var rest bufWriter
	z2 := newZstdSink(&rest, int64(len(img)), hr2, seen[0].image)
	if err := feed(z2, body[ends[0]:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest.Bytes(), img[seen[0].image:]) {
		t.Fatalf("resumed sink decoded %d bytes, want the %d after the boundary", rest.Len(), len(img)-int(seen[0].image))
	}
	if p, _ := hr2.Progress(); p.Offset != int64(len(body)) {
		t.Fatalf("resumed hashes cover %d bytes, want %d", p.Offset, len(body))
	}
}

func sha(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
