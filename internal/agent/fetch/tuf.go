package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

var _ fetcher.Fetcher = (*TUFFetcher)(nil)

// TUFFetcher adapts a Client to go-tuf v2's fetcher.Fetcher. go-tuf's
// interface has no context, so the adapter carries one: make a new
// TUFFetcher per update cycle with that cycle's ctx. Safe for concurrent use.
//
// Errors are translated to what go-tuf's updater inspects: a non-200 status
// becomes *metadata.ErrDownloadHTTP (a 404 for the next root version is how
// the updater learns it has the newest root), and a response longer than
// maxLength becomes *metadata.ErrDownloadLengthMismatch. Other errors keep
// this package's form.
type TUFFetcher struct {
	ctx context.Context
	c   *Client
}

// TUFFetcher returns an adapter bound to ctx.
func (c *Client) TUFFetcher(ctx context.Context) *TUFFetcher {
	return &TUFFetcher{ctx: ctx, c: c}
}

// DownloadFile fetches urlPath whole, accepting at most maxLength bytes. The
// timeout argument is ignored, as go-tuf documents: the Client's stall
// timeout and the adapter's ctx bound the download.
func (f *TUFFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	limit := f.c.cfg.MetadataTimeout
	ctx, cancel := context.WithTimeoutCause(f.ctx, limit, fmt.Errorf("%w: %s took longer than %v", ErrDeadline, urlPath, limit))
	defer cancel()
	body, err := f.c.Get(ctx, urlPath, maxLength)
	if err != nil {
		return nil, tufError(urlPath, maxLength, deadline(ctx, err))
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, tufError(urlPath, maxLength, deadline(ctx, err))
	}
	return data, nil
}

// deadline names the metadata deadline when it is what ended err.
func deadline(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrDeadline) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

func tufError(urlPath string, maxLength int64, err error) error {
	var se *StatusError
	if errors.As(err, &se) {
		return &metadata.ErrDownloadHTTP{StatusCode: se.StatusCode, URL: se.URL}
	}
	if errors.Is(err, ErrTooLong) {
		return &metadata.ErrDownloadLengthMismatch{
			Msg: fmt.Sprintf("download failed for %s, longer than the maximum of %d bytes", urlPath, maxLength),
		}
	}
	return err
}
