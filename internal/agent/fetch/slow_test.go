package fetch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// drip serves an endless body one byte every interval, each byte in time
// to beat any stall timeout, until the client goes away.
func drip(interval time.Duration) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(interval):
			}
		}
	}))
}

// TestDripIsCutByTheMinimumRate: a server that sends a byte now and then,
// always before the stall timeout, is cut once a window of waiting brought
// less than the minimum rate.
func TestDripIsCutByTheMinimumRate(t *testing.T) {
	srv := drip(20 * time.Millisecond)
	defer srv.Close()
	c, err := New(Config{StallTimeout: time.Second, MinRate: 10000, MinRateWindow: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	body, err := c.Get(context.Background(), srv.URL, 100000)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	n, err := io.Copy(io.Discard, body)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("read %d bytes, then %v; want ErrTooSlow", n, err)
	}
	if n == 0 || n >= 100000 {
		t.Fatalf("read %d bytes before the cut", n)
	}
}

// TestMinimumRateLetsAFastServerThrough: a body that arrives at full speed
// is never cut, and the check can be turned off.
func TestMinimumRateLetsAFastServerThrough(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1<<20))
	}))
	defer srv.Close()
	for _, rate := range []int64{1, -1} {
		c, err := New(Config{MinRate: rate, MinRateWindow: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		body, err := c.Get(context.Background(), srv.URL, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, body)
		body.Close()
		if err != nil || n != 1<<20 {
			t.Fatalf("min rate %d: read %d bytes, %v", rate, n, err)
		}
	}
}

// TestMetadataDeadline: one metadata file that trickles in faster than the
// stall timeout and the minimum rate still ends at the metadata deadline.
func TestMetadataDeadline(t *testing.T) {
	srv := drip(10 * time.Millisecond)
	defer srv.Close()
	c, err := New(Config{StallTimeout: time.Second, MinRate: -1, MetadataTimeout: 300 * time.Millisecond, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.TUFFetcher(context.Background()).DownloadFile(srv.URL+"/timestamp.json", 100000, 0)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("download: %v; want ErrDeadline", err)
	}
}
