package upload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// Download fetches the blob sha of size bytes into the file dst. It writes
// dst+".part" first and continues from the bytes a partial file holds
// (after an interrupted Download, or a dropped connection in this one)
// with a Range request; dst appears only complete, fsync'd and with its
// SHA-256 verified. A partial file that does not hash right at the end is
// removed and the error is ErrHashMismatch. progress, when non-nil, is
// called with the bytes in the file so far.
func Download(ctx context.Context, c Client, sha string, size int64, dst string, progress func(done int64)) error {
	if progress == nil {
		progress = func(int64) {}
	}
	part := dst + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	// Hash what a former attempt left (one read of the partial file).
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("upload: reading %s: %w", part, err)
	}
	if have > size {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		h.Reset()
		have = 0
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
	}
	r := retrier{c: c, progress: -1}
	for have < size {
		progress(have)
		n, err := c.get(ctx, sha, size, have, f, h, progress)
		have += n
		if err == nil {
			continue
		}
		if errors.Is(err, errRestart) {
			// The server answered the whole blob: start the file over.
			if terr := f.Truncate(0); terr != nil {
				return fmt.Errorf("upload: %w", terr)
			}
			if _, serr := f.Seek(0, io.SeekStart); serr != nil {
				return fmt.Errorf("upload: %w", serr)
			}
			h.Reset()
			have = 0
			continue
		}
		if err := r.again(ctx, have, err); err != nil {
			return err
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		f.Close()
		os.Remove(part)
		return fmt.Errorf("upload: downloaded %s hashes to %s: %w", sha, got, ErrHashMismatch)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("upload: fsync %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if err := os.Rename(part, dst); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	progress(size)
	return nil
}

var errRestart = errors.New("upload: the server ignored the range")

// get appends the blob from offset have to f (positioned at have) and h;
// it returns how many bytes it appended.
func (c Client) get(ctx context.Context, sha string, size, have int64, f *os.File, h hash.Hash, progress func(int64)) (int64, error) {
	req, err := c.request(ctx, http.MethodGet, sha, nil)
	if err != nil {
		return 0, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case have > 0 && resp.StatusCode == http.StatusOK:
		return 0, errRestart
	case have > 0 && resp.StatusCode != http.StatusPartialContent, have == 0 && resp.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("upload: GET %s: unexpected %s", req.URL, resp.Status)
	}
	if resp.ContentLength >= 0 && have+resp.ContentLength != size {
		return 0, fmt.Errorf("upload: GET %s: the server has %d bytes from %d, want %d in all", req.URL, resp.ContentLength, have, size)
	}
	pw := &progressWriter{done: have, progress: progress}
	n, err := io.CopyBuffer(io.MultiWriter(f, h, pw), io.LimitReader(resp.Body, size-have), make([]byte, 256<<10))
	if err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		// A write error to f is not the server's: give up.
		var pe *os.PathError
		if errors.As(err, &pe) {
			return n, fmt.Errorf("upload: %w", err)
		}
		return n, retryable{fmt.Errorf("upload: GET %s: %w", req.URL, err)}
	}
	if have+n < size {
		return n, retryable{fmt.Errorf("upload: GET %s: %w after %d bytes", req.URL, io.ErrUnexpectedEOF, have+n)}
	}
	return n, nil
}

type progressWriter struct {
	done     int64
	progress func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	p.progress(p.done)
	return len(b), nil
}
