package agent

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
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
	if err := feed(newZstdSink(&out, int64(len(img))), good); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), img) || !out.synced {
		t.Fatalf("decoded %d bytes (synced %v), want the %d-byte image", out.Len(), out.synced, len(img))
	}

	// A frame that asks for 64 MiB fails at the first write: the header
	// is refused before any window is allocated.
	huge := compress(t, img, 64<<20)
	z := newZstdSink(&bufWriter{}, int64(len(img)))
	_, err := z.Write(huge)
	if err == nil {
		err = z.Sync()
	}
	z.close()
	if !errors.Is(err, errWindowTooLarge) || classify(err) != ClassPayloadWindow {
		t.Fatalf("huge window: %v (class %s)", err, classify(err))
	}

	// An image longer or shorter than the manifest says.
	for _, limit := range []int64{int64(len(img)) - 1, int64(len(img)) + 1} {
		err := feed(newZstdSink(&bufWriter{}, limit), good)
		if !errors.Is(err, errImageMismatch) || classify(err) != ClassImageHash {
			t.Errorf("image_length %d for a %d-byte image: %v", limit, len(img), err)
		}
	}

	// Garbage fails only at Sync, after every write was accepted (so that
	// the payload's hashes are checked first).
	bad := append([]byte(nil), good...)
	for i := 16; i < len(bad); i += 7 {
		bad[i] ^= 0x5a
	}
	z = newZstdSink(&bufWriter{}, int64(len(img)))
	for b := bad; len(b) > 0; b = b[min(len(b), 4096):] {
		if _, err := z.Write(b[:min(len(b), 4096)]); err != nil {
			t.Fatalf("write of a corrupt stream failed before Sync: %v", err)
		}
	}
	err = z.Sync()
	z.close()
	if !errors.Is(err, errDecode) || classify(err) != ClassPayloadDecode {
		t.Fatalf("corrupt stream: %v (class %s)", err, classify(err))
	}
}
