package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
)

// content serves data with http.ServeContent (Range, If-Range) under a
// strong ETag, as the uptrust server does, and records request headers.
// A server may give each answer an ETag of its own (etag "unique"), to
// recognise the client when it comes back with it.
func content(t *testing.T, data []byte, etag string) (*httptest.Server, *[]http.Header) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		tag := etag
		if etag == "unique" {
			tag = fmt.Sprintf(`"device-%d"`, len(seen))
		}
		w.Header().Set("ETag", tag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func readResource(t *testing.T, r *fetch.Resource) ([]byte, error) {
	t.Helper()
	defer r.Close()
	return io.ReadAll(r)
}

func TestGetFromResumes(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	srv, seen := content(t, data, `"v1"`)
	c := newClient(t, fetch.Config{}, &recorder{})
	r, err := c.GetFrom(context.Background(), srv.URL, int64(len(data)), 4321)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readResource(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Offset != 4321 || r.Size != int64(len(data)) || !bytes.Equal(got, data[4321:]) {
		t.Fatalf("offset %d size %d, %d bytes (equal=%v)", r.Offset, r.Size, len(got), bytes.Equal(got, data[4321:]))
	}
	h := (*seen)[0]
	if h.Get("Range") != "bytes=4321-" || h.Get("If-Range") != "" {
		t.Fatalf("request headers %v", h)
	}
}

// TestGetFromSendsNothingTheServerChose: a server that gives every answer
// an ETag of its own never sees one come back, in If-Range or anywhere
// else, and a resume is served from the offset whatever the ETag (this
// replaces the If-Range tests: the client no longer takes an ETag).
func TestGetFromSendsNothingTheServerChose(t *testing.T) {
	data := bytes.Repeat([]byte("y"), 3000)
	srv, seen := content(t, data, "unique")
	c := newClient(t, fetch.Config{}, &recorder{})
	for _, off := range []int64{0, 10, 2000} {
		r, err := c.GetFrom(context.Background(), srv.URL, 3000, off)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readResource(t, r)
		if r.Offset != off || int64(len(got)) != 3000-off {
			t.Fatalf("from %d: offset %d, %d bytes", off, r.Offset, len(got))
		}
	}
	for i, h := range *seen {
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, "device-") || k == "If-Range" || k == "If-None-Match" || k == "If-Match" || k == "Cookie" {
					t.Fatalf("request %d carries %s: %s", i, k, v)
				}
			}
		}
	}
}

// TestGetFromServerIgnoresRange: a 200 answer is the whole resource.
func TestGetFromServerIgnoresRange(t *testing.T) {
	data := bytes.Repeat([]byte("z"), 2000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer srv.Close()
	c := newClient(t, fetch.Config{}, &recorder{})
	r, err := c.GetFrom(context.Background(), srv.URL, 2000, 500)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readResource(t, r)
	if r.Offset != 0 || len(got) != 2000 {
		t.Fatalf("offset %d, %d bytes", r.Offset, len(got))
	}
}

// partial answers every request with a 206 carrying the given headers and
// body, for lying servers.
func partial(t *testing.T, contentRange string, body []byte, chunked bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", contentRange)
		if !chunked {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
		if chunked {
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestGetFromRefusesBadPartialResponses(t *testing.T) {
	rec := &recorder{}
	c := newClient(t, fetch.Config{}, rec)
	for _, tc := range []struct {
		name         string
		contentRange string
		body         []byte
		want         error
	}{
		{"other start", "bytes 0-99/100", make([]byte, 100), fetch.ErrBadRange},
		{"later start", "bytes 60-99/100", make([]byte, 40), fetch.ErrBadRange},
		{"no content-range", "", make([]byte, 50), fetch.ErrBadRange},
		{"garbage", "bytes fifty-99/100", make([]byte, 50), fetch.ErrBadRange},
		{"last beyond size", "bytes 50-100/100", make([]byte, 51), fetch.ErrBadRange},
		{"length disagrees", "bytes 50-99/100", make([]byte, 49), fetch.ErrBadRange},
		{"multipart", "", []byte("--sep\r\n"), fetch.ErrBadRange},
		{"larger resource", "bytes 50-149/150", make([]byte, 100), fetch.ErrTooLong},
		{"unknown size beyond maximum", "bytes 50-149/*", make([]byte, 100), fetch.ErrTooLong},
	} {
		url := partial(t, tc.contentRange, tc.body, false)
		_, err := c.GetFrom(context.Background(), url, 100, 50)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if len(rec.sleeps) != 0 {
		t.Errorf("retried a bad partial response: sleeps %v", rec.sleeps)
	}
}

// TestGetFromPartialBodyLongerThanRange: a chunked 206 that sends more
// than its Content-Range announces fails with ErrTooLong at the first
// extra byte.
func TestGetFromPartialBodyLongerThanRange(t *testing.T) {
	url := partial(t, "bytes 50-99/100", make([]byte, 50+1000), true)
	c := newClient(t, fetch.Config{}, &recorder{})
	r, err := c.GetFrom(context.Background(), url, 100, 50)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readResource(t, r)
	if !errors.Is(err, fetch.ErrTooLong) || len(got) != 50 {
		t.Fatalf("read %d bytes, err %v; want 50 and ErrTooLong", len(got), err)
	}
}

func TestGetFromRangeNotSatisfiable(t *testing.T) {
	data := bytes.Repeat([]byte("q"), 100)
	srv, _ := content(t, data, `"v1"`)
	c := newClient(t, fetch.Config{}, &recorder{})
	// The resource is shorter than the caller thinks.
	_, err := c.GetFrom(context.Background(), srv.URL, 500, 200)
	var se *fetch.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("err = %v, want status 416", err)
	}
	for _, off := range []int64{-1, 501} {
		if _, err := c.GetFrom(context.Background(), srv.URL, 500, off); err == nil {
			t.Errorf("offset %d accepted", off)
		}
	}
}

// fakeTime is a clock that only moves when the limiter sleeps.
type fakeTime struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.slept += d
	return ctx.Err()
}

// TestRateLimitThroughClient reads 1 MiB at 64 KiB/s with a fake clock:
// the body must wait (1 MiB − one burst) / rate in total, and never ask
// for more than a burst at a time.
func TestRateLimitThroughClient(t *testing.T) {
	const size, rate = 1 << 20, 64 << 10
	data := bytes.Repeat([]byte("r"), size)
	srv, _ := content(t, data, `"v1"`)
	ft := &fakeTime{now: time.Unix(1000, 0)}
	c := newClient(t, fetch.Config{RateLimit: rate, Now: ft.Now, Sleep: ft.Sleep}, nil)
	r, err := c.GetFrom(context.Background(), srv.URL, size, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	burst := fetch.NewRateLimiter(rate, nil).Burst()
	buf := make([]byte, 4*burst)
	total := 0
	for {
		n, err := r.Read(buf)
		if n > burst {
			t.Fatalf("one read returned %d bytes, more than a burst of %d", n, burst)
		}
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := time.Duration(float64(size-burst) / rate * float64(time.Second))
	if total != size || absDiff(ft.slept, want) > time.Millisecond {
		t.Fatalf("read %d bytes, slept %v, want %v", total, ft.slept, want)
	}
}

func TestRateLimiterBucket(t *testing.T) {
	ft := &fakeTime{now: time.Unix(0, 0)}
	l := fetch.NewRateLimiter(1000, ft.Now)
	if l.Burst() != 4096 {
		t.Fatalf("burst %d, want the 4 KiB minimum", l.Burst())
	}
	var waited time.Duration
	read := func(n int) {
		d := fetch.Take(l, n)
		waited += d
		ft.Sleep(context.Background(), d)
	}
	// 10 000 bytes at 1000 B/s: the first 4096 are free (the bucket starts
	// full), the rest take 5.904 s.
	for range 10 {
		read(1000)
	}
	if absDiff(waited, 5904*time.Millisecond) > time.Microsecond {
		t.Fatalf("waited %v, want 5.904s", waited)
	}
	// Idle for an hour: the bucket refills to one burst, no more.
	ft.Sleep(context.Background(), time.Hour)
	waited = 0
	read(4096)
	if waited != 0 {
		t.Fatalf("waited %v after a refill", waited)
	}
	read(1000)
	if absDiff(waited, time.Second) > time.Microsecond {
		t.Fatalf("waited %v, want 1s once the burst is spent", waited)
	}
	if b := fetch.NewRateLimiter(2<<20, nil).Burst(); b != 256<<10 {
		t.Fatalf("burst at 2 MiB/s = %d, want an eighth of a second (256 KiB)", b)
	}
}

func TestNegativeRateLimitRefused(t *testing.T) {
	if _, err := fetch.New(fetch.Config{RateLimit: -1}); err == nil || !strings.Contains(err.Error(), "rate") {
		t.Fatalf("err = %v", err)
	}
}

func absDiff(a, b time.Duration) time.Duration {
	return time.Duration(math.Abs(float64(a - b)))
}
