// Package upload moves payload blobs between an offline project and a
// running server's management API (uptrust push and pull): Blob uploads
// one blob through HEAD and PUT /api/v1/blobs/{sha256}, Download fetches
// one through GET with Range.
//
// Invariants:
//   - A blob is never held whole in memory: it streams from open (upload)
//     or to a file (download).
//   - Uploads are deduplicated (a blob the server stores is not sent) and
//     resumable: after a dropped connection, a 5xx answer or a timeout,
//     Blob asks the server where its upload stands (HEAD, Upload-Offset)
//     and continues from there. Downloads continue from the bytes already
//     in the partial file (Range).
//   - Retries are bounded: at most Client.Retries consecutive failed
//     attempts that made no progress, with exponential backoff, and none
//     once ctx is done. A 4xx answer is not retried: it says the request
//     is wrong (bad token, hash mismatch, too large).
//   - A downloaded file appears under its name only complete and with its
//     SHA-256 verified (fsync'd, then renamed from NAME.part).
package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client reaches a server's management API.
type Client struct {
	// BaseURL is the admin listener, such as http://127.0.0.1:9090.
	BaseURL string
	// Token is a bearer token whose role may push (release-manager).
	Token string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Retries bounds consecutive attempts without progress (0: 6).
	Retries int
	// Backoff is the first pause between attempts, doubled each time up
	// to 10 s (0: 500 ms).
	Backoff time.Duration
}

// ErrHashMismatch is returned when the server (upload) or Download found
// that the content does not hash to the expected SHA-256.
var ErrHashMismatch = errors.New("upload: content does not match its SHA-256")

// StatusError is an answer the server gave that is not retried.
type StatusError struct {
	Method, URL string
	Status      int
	// Detail is the problem document's detail, or the body's start.
	Detail string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("upload: %s %s: %d %s: %s", e.Method, e.URL, e.Status, http.StatusText(e.Status), e.Detail)
}

// Unwrap makes a 422 match ErrHashMismatch.
func (e *StatusError) Unwrap() error {
	if e.Status == http.StatusUnprocessableEntity {
		return ErrHashMismatch
	}
	return nil
}

// retryable is a failure worth another attempt: the connection, a
// timeout, a 5xx answer.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func (c Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c Client) blobURL(sha string) string {
	return strings.TrimRight(c.BaseURL, "/") + "/api/v1/blobs/" + sha
}

func (c Client) request(ctx context.Context, method, sha string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.blobURL(sha), body)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	return req, nil
}

// do sends req; a transport error or a 5xx answer is retryable, another
// answer >= 400 but those in ok is a *StatusError. The caller closes the
// body of the answer it gets.
func (c Client) do(req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.http().Do(req)
	if err != nil {
		if req.Context().Err() != nil {
			return nil, req.Context().Err()
		}
		return nil, retryable{fmt.Errorf("upload: %s %s: %w", req.Method, req.URL, err)}
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	se := &StatusError{Method: req.Method, URL: req.URL.String(), Status: resp.StatusCode, Detail: problemDetail(resp)}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return nil, retryable{se}
	}
	return nil, se
}

func problemDetail(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &p) == nil && p.Detail != "" {
		return p.Detail
	}
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return "(no body)"
	}
	return strings.TrimSpace(string(b))
}

// retrier counts attempts without progress and pauses between them.
type retrier struct {
	c        Client
	failures int
	progress int64
}

// again reports whether err (from an attempt that reached done bytes) is
// worth another attempt, after the backoff pause; it returns the error to
// give up with otherwise.
func (r *retrier) again(ctx context.Context, done int64, err error) error {
	var re retryable
	if !errors.As(err, &re) {
		return err
	}
	if done > r.progress {
		r.progress, r.failures = done, 0
	}
	r.failures++
	max := r.c.Retries
	if max <= 0 {
		max = 6
	}
	if r.failures > max {
		return fmt.Errorf("upload: giving up after %d attempts without progress: %w", r.failures, re.err)
	}
	pause := r.c.Backoff
	if pause <= 0 {
		pause = 500 * time.Millisecond
	}
	for i := 1; i < r.failures && pause < 10*time.Second; i++ {
		pause *= 2
	}
	pause = min(pause, 10*time.Second)
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("upload: %w (after: %v)", ctx.Err(), re.err)
	case <-t.C:
		return nil
	}
}

// Blob uploads the blob sha of size bytes unless the server has it.
// open returns the blob's content from offset on (the caller's file,
// seeked); it is called once per attempt and its reader is closed.
// progress, when non-nil, is called with the bytes the server holds or
// has been sent so far.
func Blob(ctx context.Context, c Client, sha string, size int64, open func(offset int64) (io.ReadCloser, error), progress func(done int64)) error {
	if progress == nil {
		progress = func(int64) {}
	}
	r := retrier{c: c, progress: -1}
	for {
		off, stored, err := c.offset(ctx, sha, size)
		if err == nil && stored {
			progress(size)
			return nil
		}
		if err == nil {
			progress(off)
			err = c.put(ctx, sha, size, off, open, progress)
			if err == nil {
				progress(size)
				return nil
			}
		}
		if err := r.again(ctx, off, err); err != nil {
			return err
		}
	}
}

// offset asks where the upload of sha stands: stored, or the bytes of
// its unfinished upload.
func (c Client) offset(ctx context.Context, sha string, size int64) (int64, bool, error) {
	req, err := c.request(ctx, http.MethodHead, sha, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := c.do(req, http.StatusNotFound)
	if err != nil {
		return 0, false, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if resp.ContentLength != size {
			return 0, false, fmt.Errorf("upload: the server stores %s with %d bytes, not %d", sha, resp.ContentLength, size)
		}
		return size, true, nil
	}
	v := resp.Header.Get("Upload-Offset")
	off, err := strconv.ParseInt(v, 10, 64)
	if err != nil || off < 0 || off > size {
		return 0, false, fmt.Errorf("upload: HEAD %s: 404 with Upload-Offset %q (for %d bytes)", c.blobURL(sha), v, size)
	}
	return off, false, nil
}

// put sends bytes off..size-1; a 409 (the server's offset moved) is
// retryable, the next attempt asks again.
func (c Client) put(ctx context.Context, sha string, size, off int64, open func(int64) (io.ReadCloser, error), progress func(int64)) error {
	body, err := open(off)
	if err != nil {
		return fmt.Errorf("upload: opening %s at %d: %w", sha, off, err)
	}
	req, err := c.request(ctx, http.MethodPut, sha, nil)
	if err != nil {
		body.Close()
		return err
	}
	req.ContentLength = size - off
	if f, ok := body.(*os.File); ok && req.ContentLength > 0 {
		// A file goes to the socket as it is, so that the kernel copies
		// it (sendfile); its offset, which that advances, tells the
		// progress.
		req.Body = f
		stop := watchOffset(f, progress)
		defer stop()
	} else if req.ContentLength > 0 {
		// The transport closes the body; GetBody is nil, so net/http
		// never re-reads it.
		req.Body = readCloser{&progressReader{r: body, done: off, progress: progress}, body}
	} else {
		req.Body = http.NoBody
		body.Close()
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
	resp, err := c.do(req)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusConflict {
		return retryable{se}
	}
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload: PUT %s: unexpected %s", c.blobURL(sha), resp.Status)
	}
	return nil
}

// watchOffset reports f's offset to progress every 100 ms until stop.
func watchOffset(f *os.File, progress func(int64)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
					progress(pos)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

type progressReader struct {
	r        io.Reader
	done     int64
	progress func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.progress(p.done)
	}
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Stored reports whether the server holds the blob sha of size bytes
// already (uptrust push counts what it skips).
func Stored(ctx context.Context, c Client, sha string, size int64) (bool, error) {
	_, stored, err := c.offset(ctx, sha, size)
	return stored, err
}
