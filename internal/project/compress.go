package project

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/release"
)

// zstdLevel is the encoder level for compressed payloads: klauspost's
// SpeedBestCompression, with the window capped at release.MaxZstdWindow so
// that devices decode within bounded memory.
const zstdLevel = zstd.SpeedBestCompression

// image is the length and SHA-256 (hex) of an uncompressed image.
type image struct {
	length int64
	sha256 string
}

// putCompressed streams src through a zstd encoder into the blob store and
// hashes the uncompressed image on the way. Neither the image nor the
// compressed payload is held in memory: the encoder writes into a pipe that
// blob.Store.Put reads. limit bounds the compressed size as in Put.
func putCompressed(ctx context.Context, blobs *blob.Store, src io.Reader, limit int64) (blob.Info, image, error) {
	pr, pw := io.Pipe()
	h := sha256.New()
	var n int64
	done := make(chan error, 1)
	go func() {
		enc, err := zstd.NewWriter(pw, zstd.WithEncoderLevel(zstdLevel), zstd.WithWindowSize(release.MaxZstdWindow),
			zstd.WithEncoderConcurrency(1))
		if err != nil {
			pw.CloseWithError(err)
			done <- err
			return
		}
		n, err = io.Copy(enc, io.TeeReader(src, h))
		if cerr := enc.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err) // nil: EOF for Put
		done <- err
	}()
	info, err := blobs.Put(ctx, pr, limit)
	// Put may stop early (limit, ctx, disk): unblock the encoder.
	pr.CloseWithError(errors.New("project: compressed payload not consumed"))
	encErr := <-done
	if err != nil {
		return blob.Info{}, image{}, err
	}
	if encErr != nil {
		return blob.Info{}, image{}, fmt.Errorf("project: compressing the payload: %w", encErr)
	}
	return info, image{length: n, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}
