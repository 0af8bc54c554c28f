package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
)

// server serves one target as the uptrust server does (http.ServeContent:
// Range, If-Range), but with a strong ETag of its own on every answer, as a
// server or CDN that wants to recognise a device would; with faults a test
// switches on.
type server struct {
	URL  string
	data []byte

	mu     sync.Mutex
	ranges []string // the Range header of every request
	// echoed are the request headers of every request that carried a
	// value the server chose (an ETag it sent, in any header).
	echoed []http.Header
	// changedAt serves the n-th answer (from 0) from other bytes under the
	// same name: the target changed on the server, for that answer.
	changedAt map[int]bool
	// cut drops the connection of the n-th answer (from 0) after that many
	// body bytes; absent or negative: no drop.
	cut map[int]int64
	// ignoreRange answers resumed requests with the whole target;
	// refuseRange answers them with 416.
	ignoreRange, refuseRange bool
	// ignoreRangeAt answers the n-th request (from 0) with the whole
	// target, whatever it asked for.
	ignoreRangeAt map[int]bool
	// extra bytes are served after the target, announced or not.
	extra    []byte
	announce bool
}

func newServer(t *testing.T, data []byte) *server {
	s := &server{data: data, cut: map[int]int64{}, changedAt: map[int]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/repo/release/targets/thermostat/x.1.1.0"
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.ranges)
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	for _, vs := range r.Header {
		if slices.ContainsFunc(vs, func(v string) bool { return strings.Contains(v, "device-") }) {
			s.echoed = append(s.echoed, r.Header.Clone())
			break
		}
	}
	etag, cut := fmt.Sprintf(`"device-%d"`, n), int64(-1)
	if c, ok := s.cut[n]; ok {
		cut = c
	}
	data := s.data
	if s.changedAt[n] {
		data = bytes.Clone(data)
		for i := range data {
			data[i] ^= 0x5a
		}
	}
	ignoreRange, refuseRange, extra, announce := s.ignoreRange || s.ignoreRangeAt[n], s.refuseRange, s.extra, s.announce
	s.mu.Unlock()
	if extra != nil {
		if announce {
			w.Header().Set("Content-Length", fmt.Sprint(len(s.data)+len(extra)))
		}
		w.Write(s.data)
		w.(http.Flusher).Flush()
		w.Write(extra)
		return
	}
	if r.Header.Get("Range") != "" {
		switch {
		case refuseRange:
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		case ignoreRange:
			r.Header.Del("Range")
		}
	}
	w.Header().Set("ETag", etag)
	var dst io.Writer = w
	if cut >= 0 {
		dst = &cutWriter{ResponseWriter: w, left: cut}
	}
	http.ServeContent(dst.(http.ResponseWriter), r, "", time.Time{}, bytes.NewReader(data))
}

// echoes returns the headers of the requests that sent back a value the
// server chose.
func (s *server) echoes() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.echoed...)
}

// requests returns the Range header of every request so far.
func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// cutWriter sends left body bytes, then drops the connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	c.ResponseWriter.Write(p[:c.left])
	c.ResponseWriter.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// target is data as a signed target served at url.
func target(url string, data []byte) Target {
	sum := sha256.Sum256(data)
	return Target{Name: "thermostat/1.1.0", URL: url, Length: int64(len(data)), Hashes: map[string][]byte{"sha256": sum[:]}}
}

// fileSlot is a slot backed by one file.
type fileSlot struct{ path string }

func newSlot(t *testing.T, name string) fileSlot {
	return fileSlot{path: filepath.Join(t.TempDir(), name)}
}

func (s fileSlot) OpenWriter(_ context.Context, off int64) (Writer, error) {
	flag := os.O_WRONLY | os.O_CREATE
	if off == 0 {
		flag |= os.O_TRUNC
	}
	f, err := os.OpenFile(s.path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || fi.Size() < off {
		f.Close()
		return nil, fmt.Errorf("slot %s holds fewer than %d bytes", s.path, off)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (s fileSlot) OpenReader(context.Context) (io.ReadCloser, error) { return os.Open(s.path) }
func (s fileSlot) String() string                                    { return filepath.Base(s.path) }

func (s fileSlot) bytes(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memRecorder is a Recorder whose state is the progress and the counters;
// its state file is a byte slice.
type memRecorder struct {
	progress *Progress
	count    Count
	seq      uint64

	mu    sync.Mutex // Replace runs in the background
	state []byte     // the state file
}

// memState is what memRecorder encodes.
type memState struct {
	Seq      uint64    `json:"seq"`
	Progress *Progress `json:"progress"`
}

func (r *memRecorder) Record(p *Progress) { r.progress = p }

func (r *memRecorder) Count(c Count) {
	r.count.Bytes += c.Bytes
	r.count.Requests += c.Requests
	r.count.Resumed += c.Resumed
	r.count.Restarts += c.Restarts
	r.count.Complete = r.count.Complete || c.Complete
}

func (r *memRecorder) Encode() (uint64, []byte, error) {
	r.seq++
	b, err := json.Marshal(memState{Seq: r.seq, Progress: r.progress})
	return r.seq, b, err
}

func (r *memRecorder) Replace(b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = bytes.Clone(b)
	return nil
}

// persisted returns the progress a new process would find after a power
// loss: the newer of the state file and the journal record in dir.
func (r *memRecorder) persisted(t *testing.T, dir string) *Progress {
	t.Helper()
	var s memState
	r.mu.Lock()
	if r.state != nil {
		if err := json.Unmarshal(r.state, &s); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Unlock()
	seq, b, ok, err := readJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ok && seq > s.Seq {
		s = memState{}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
	}
	return s.Progress
}

// newDownloader returns a Downloader for dir whose retries do not wait.
func newDownloader(t *testing.T, dir string) *Downloader {
	t.Helper()
	hc, err := fetch.New(fetch.Config{Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		StallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &Downloader{HTTP: hc, Dir: dir, MaxAttempts: 5, LossBudget: 512 << 10, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// errPower is the tests' power loss.
var errPower = errors.New("test: power lost")

// powerAfter cuts power at point after n writes there.
func powerAfter(point string, n int) func(string) error {
	writes := 0
	return func(p string) error {
		if p != point {
			return nil
		}
		if writes++; writes > n {
			return errPower
		}
		return nil
	}
}

// random returns n bytes that do not compress, the same for each seed.
func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readJournal returns the newest intact record of the journal in dir; ok
// is false when there is none.
func readJournal(dir string) (seq uint64, b []byte, ok bool, err error) {
	recs, err := JournalRecords(dir)
	if err != nil || len(recs) == 0 {
		return 0, nil, false, err
	}
	return recs[0].Seq, recs[0].State, true, nil
}
