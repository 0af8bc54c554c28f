package project

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/delta"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
)

// readImage reads the new release's image into memory (delta.Create needs
// both images), bounded by limit (0: no limit).
func readImage(r io.Reader, limit int64) ([]byte, error) {
	if limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	var hint int64
	if st, ok := r.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() {
			hint = fi.Size()
		}
	}
	b, err := readSized(r, hint)
	if err != nil {
		return nil, fmt.Errorf("project: reading the payload: %w", err)
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, fmt.Errorf("project: the payload is larger than the limit of %d bytes", limit)
	}
	return b, nil
}

// readSized reads r to its end into one buffer sized for hint bytes, so a
// large image costs its own size in memory instead of io.ReadAll's doubling
// (which leaves up to twice the image as garbage while the delta is built).
func readSized(r io.Reader, hint int64) ([]byte, error) {
	b := make([]byte, 0, hint+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// releaseImage returns the image an earlier release writes into a slot:
// its blob, decompressed if the release is zstd-compressed, checked
// against the signed length and SHA-256.
func (p *Project) releaseImage(ctx context.Context, r store.Release) ([]byte, int64, string, error) {
	m, err := manifestOf(r)
	if err != nil {
		return nil, 0, "", err
	}
	f, err := p.Blobs.Open(ctx, r.SHA256)
	if err != nil {
		return nil, 0, "", fmt.Errorf("project: payload of %s %s: %w", r.Product, r.Version, err)
	}
	defer f.Close()
	length, sum := m.Image(r.Length, r.SHA256)
	var src io.Reader = f
	if m.Payload.Compression == release.CompressionZstd {
		dec, err := zstd.NewReader(f, zstd.WithDecoderMaxWindow(release.MaxZstdWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, 0, "", err
		}
		defer dec.Close()
		src = dec
	}
	img, err := readSized(io.LimitReader(src, length+1), length)
	if err != nil {
		return nil, 0, "", fmt.Errorf("project: image of %s %s: %w", r.Product, r.Version, err)
	}
	if int64(len(img)) != length || sha256Hex(img) != sum {
		return nil, 0, "", fmt.Errorf("project: the stored image of %s %s does not match its signed length and hash", r.Product, r.Version)
	}
	return img, length, sum, nil
}

// buildDeltas creates, for each earlier version in from, a delta from that
// release's image to img and stores it in the blob store.
func (p *Project) buildDeltas(ctx context.Context, product, version string, from []string, img []byte) ([]release.Delta, error) {
	var out []release.Delta
	for _, f := range from {
		if err := release.ValidVersion(f); err != nil {
			return nil, err
		}
		src, err := p.Store.Release(ctx, product, f)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("project: --delta-from %s: %s has no release %s", f, product, f)
			}
			return nil, err
		}
		p.Progress.Start("reading "+f+" for the delta", -1)
		srcImg, srcLen, srcSum, err := p.releaseImage(ctx, src)
		if err != nil {
			return nil, err
		}
		p.Progress.Set(srcLen)
		p.Progress.Start("indexing "+f+" for the delta", int64(len(srcImg)))
		var buf bytes.Buffer
		o := delta.Options{}
		if p.Progress != nil {
			o.Indexed = func() { p.Progress.Set(int64(len(srcImg))) }
			o.Progress = p.Progress.Func("building the delta from " + f)
		}
		if err := delta.CreateWith(ctx, &buf, srcImg, img, o); err != nil {
			return nil, fmt.Errorf("project: delta from %s: %w", f, err)
		}
		b, err := p.Blobs.Put(ctx, &buf, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, release.Delta{From: f, Target: release.DeltaTargetName(product, version, f), Length: b.Size, SHA256: b.SHA256,
			SourceLength: srcLen, SourceSHA256: srcSum})
	}
	return out, nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
