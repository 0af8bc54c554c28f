package project_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/zstdframe"
)

func TestAddReleaseZstd(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	addProduct(t, p, thermostat())
	img := strings.Repeat("firmware block ", 100_000) // 1.5 MB
	spec := releaseSpec("thermostat", "1.1.0", 2, img)
	spec.Compression = release.CompressionZstd
	rel := addRelease(t, p, spec)
	if rel.Length >= int64(len(img))/10 {
		t.Errorf("compressed payload has %d bytes for a %d-byte repetitive image", rel.Length, len(img))
	}
	// The target covers the compressed bytes on the wire.
	tf := loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Signed.Targets["thermostat/1.1.0"]
	if tf == nil {
		t.Fatal("no target")
	}
	path, err := p.Blobs.(*blob.Store).Path(hex.EncodeToString(tf.Hashes["sha256"]))
	if err != nil {
		t.Fatal(err)
	}
	body := readFile(t, path)
	if err := tf.VerifyLengthHashes(body); err != nil {
		t.Fatalf("target vs blob: %v", err)
	}
	m, err := release.ManifestFromCustom(tf.Custom)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(img))
	if m.Payload.Compression != "zstd" || m.Payload.ImageLength != int64(len(img)) || m.Payload.ImageSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest payload %+v", m.Payload)
	}
	// A device with an 8 MiB window decodes it to the image.
	var fh zstd.Header
	if err := fh.Decode(body); err != nil {
		t.Fatal(err)
	}
	if fh.WindowSize > release.MaxZstdWindow {
		t.Errorf("frame window %d, above %d", fh.WindowSize, release.MaxZstdWindow)
	}
	dec, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderMaxWindow(release.MaxZstdWindow), zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(dec); err != nil {
		t.Fatal(err)
	}
	if out.String() != img {
		t.Error("the payload does not decode to the image")
	}

	// Refusals: an unknown compression, an empty image, a compressed
	// payload above the size limit.
	spec = releaseSpec("thermostat", "1.2.0", 3, "x")
	spec.Compression = "gzip"
	if _, err := p.AddRelease(t.Context(), spec); err == nil {
		t.Error("compression gzip accepted")
	}
	spec = releaseSpec("thermostat", "1.2.0", 3, "")
	spec.Compression = release.CompressionZstd
	if _, err := p.AddRelease(t.Context(), spec); err == nil {
		t.Error("empty compressed image accepted")
	}
	p.Config.MaxPayloadBytes = 16
	spec = releaseSpec("thermostat", "1.2.0", 3, img)
	spec.Compression = release.CompressionZstd
	if _, err := p.AddRelease(t.Context(), spec); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("compressed payload above MaxPayloadBytes: %v, want blob.ErrTooLarge", err)
	}
}

// ZstdFrame makes the payload a sequence of independent frames, one per
// ZstdFrame bytes of the image, that together decode to the image.
func TestAddReleaseZstdFrames(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	addProduct(t, p, thermostat())
	for _, tc := range []struct {
		size   int
		frames int
	}{{2 << 20, 2}, {3<<20 + 5, 4}} {
		img := strings.Repeat("firmware block ", tc.size/15+1)[:tc.size]
		version := fmt.Sprintf("1.%d.0", tc.frames)
		spec := releaseSpec("thermostat", version, uint64(tc.frames), img)
		spec.Compression, spec.ZstdFrame = release.CompressionZstd, 1<<20
		rel := addRelease(t, p, spec)
		tf := loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Signed.Targets["thermostat/"+version]
		path, err := p.Blobs.(*blob.Store).Path(hex.EncodeToString(tf.Hashes["sha256"]))
		if err != nil {
			t.Fatal(err)
		}
		body := readFile(t, path)
		if int64(len(body)) != rel.Length {
			t.Fatalf("blob %d bytes, release %d", len(body), rel.Length)
		}
		dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxWindow(release.MaxZstdWindow))
		if err != nil {
			t.Fatal(err)
		}
		s := zstdframe.New(bytes.NewReader(body), 0)
		var out bytes.Buffer
		n := 0
		for {
			fr, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(fr)
			if err != nil {
				t.Fatal(err)
			}
			part, err := dec.DecodeAll(b, nil)
			if err != nil {
				t.Fatalf("frame %d does not decode alone: %v", n, err)
			}
			if n < tc.frames-1 && len(part) != 1<<20 {
				t.Fatalf("frame %d holds %d image bytes, want %d", n, len(part), 1<<20)
			}
			out.Write(part)
			n++
		}
		dec.Close()
		if n != tc.frames || out.String() != img {
			t.Fatalf("%d frames decoding to %d bytes, want %d frames decoding to the %d-byte image", n, out.Len(), tc.frames, len(img))
		}
	}
	spec := releaseSpec("thermostat", "2.0.0", 9, "x")
	spec.ZstdFrame = 1 << 20
	if _, err := p.AddRelease(t.Context(), spec); err == nil {
		t.Error("zstd frames without compression accepted")
	}
	spec.Compression, spec.ZstdFrame = release.CompressionZstd, 4096
	if _, err := p.AddRelease(t.Context(), spec); err == nil {
		t.Error("4 KiB zstd frames accepted")
	}
}
