package project_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
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
	tf := loadTargets(t, p, repo.Release, repo.ProductRole("thermostat")).Signed.Targets["thermostat/1.1.0"]
	if tf == nil {
		t.Fatal("no target")
	}
	path, err := p.Blobs.Path(hex.EncodeToString(tf.Hashes["sha256"]))
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
