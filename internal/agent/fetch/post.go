package fetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// PostJSON sends body to rawURL once, with the same transport rules as Get
// (no cookies, constant User-Agent, URL check, stall timeout for the
// answer). A non-2xx answer is a *StatusError. It does not retry: callers
// that queue (reports) retry at their next cycle.
func (c *Client) PostJSON(ctx context.Context, rawURL string, body []byte) error {
	if err := c.CheckURL(rawURL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StallTimeout+c.cfg.ConnectTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fetch: POST %s: %w", rawURL, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetch: POST %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &StatusError{Method: http.MethodPost, URL: rawURL, StatusCode: resp.StatusCode}
	}
	return nil
}
