package project

import (
	"bufio"
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

// MinZstdFrame is the smallest image length per frame ReleaseSpec.ZstdFrame
// accepts: smaller frames cost too much compression.
const MinZstdFrame = 256 << 10

// image is the length and SHA-256 (hex) of an uncompressed image.
type image struct {
	length int64
	sha256 string
}

// putCompressed streams src through a zstd encoder into the blob store and
// hashes the uncompressed image on the way. Neither the image nor the
// compressed payload is held in memory: the encoder writes into a pipe that
// blob.Store.Put reads. limit bounds the compressed size as in Put.
//
// With frame > 0 every frame bytes of the image become an independent zstd
// frame (the last one shorter): a device streaming the payload into its
// slot can then resume after a power loss at the last frame boundary it
// saved, at the cost of matches across frames (about +3 % with 8 MiB
// frames, +6 % with 4 MiB on a root file system tar). With frame 0 the
// image is one frame.
func putCompressed(ctx context.Context, blobs blob.Storage, src io.Reader, limit, frame int64) (blob.Info, image, error) {
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
		n, err = encodeFrames(enc, pw, io.TeeReader(src, h), frame)
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

// encodeFrames compresses src with enc (writing to dst), starting a new
// frame after every frame bytes (0: never), and returns the bytes read.
// The caller closes enc after it, which ends the last frame.
func encodeFrames(enc *zstd.Encoder, dst io.Writer, src io.Reader, frame int64) (int64, error) {
	if frame <= 0 {
		return io.Copy(enc, src)
	}
	br := bufio.NewReaderSize(src, 1<<16)
	var total int64
	for {
		n, err := io.CopyN(enc, br, frame)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		// Only start another frame if more of the image follows.
		if _, err := br.Peek(1); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
		if err := enc.Close(); err != nil {
			return total, err
		}
		enc.Reset(dst)
	}
}
