package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Answer is a response read whole by Call.
type Answer struct {
	StatusCode  int
	ContentType string
	Body        []byte
}

// ErrAnswerTooLong: a Call's answer was longer than its limit.
var ErrAnswerTooLong = errors.New("fetch: answer too long")

// Call sends one request (body nil for none; JSON otherwise) and returns
// the answer whatever its status, read whole up to maxLength bytes. It
// follows the same rules as Get (URL check, no cookies, constant
// User-Agent, the stall timeout bounding the whole exchange) and does not
// retry: its callers (enrolment) act again at their next check. Only a
// failure to get an answer is an error.
func (c *Client) Call(ctx context.Context, method, rawURL string, body []byte, maxLength int64) (*Answer, error) {
	return c.CallHeader(ctx, method, rawURL, body, maxLength, nil)
}

// CallHeader is Call with the request header fields hdr added (such as
// If-None-Match); it cannot replace User-Agent, Accept or Content-Type.
func (c *Client) CallHeader(ctx context.Context, method, rawURL string, body []byte, maxLength int64, hdr http.Header) (*Answer, error) {
	if err := c.CheckURL(rawURL); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StallTimeout+c.cfg.ConnectTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("fetch: %s %s: %w", method, rawURL, err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch: %s %s: %w", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, fmt.Errorf("fetch: %s %s: reading the answer: %w", method, rawURL, err)
	}
	if int64(len(b)) > maxLength {
		return nil, fmt.Errorf("%w: %s %s: more than %d bytes", ErrAnswerTooLong, method, rawURL, maxLength)
	}
	return &Answer{StatusCode: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, nil
}
