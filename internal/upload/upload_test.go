package upload_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/blob/s3test"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/upload"
)

// server is the real API over a development project, behind a wrapper
// that can cut connections.
type server struct {
	p      *project.Project
	client upload.Client

	mu sync.Mutex
	// cutPut, when > 0, makes the next PUT's connection drop after that
	// many body bytes reached the API; cutGet likewise for a GET's answer.
	cutPut, cutGet int64
	puts           []string // Upload-Offset of every PUT
	gets           []string // Range of every GET
}

func newServer(t *testing.T, blobs blob.Storage) *server {
	t.Helper()
	p, err := project.Init(t.Context(), t.TempDir(), project.InitOptions{Dev: true, Options: project.Options{Blobs: blobs}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tok, err := p.CreateToken(t.Context(), project.TokenSpec{Name: "push", Role: access.ReleaseManager, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Project: p})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{p: p}
	srv := httptest.NewServer(s.wrap(api.AdminHandler(a, nil)))
	t.Cleanup(srv.Close)
	s.client = upload.Client{BaseURL: srv.URL, Token: tok.Text, Backoff: time.Millisecond}
	return s
}

// wrap records requests and, when asked, cuts the connection mid-body: the
// API reads the body until the cut (and keeps its checkpoint), then the
// connection is closed without an answer.
func (s *server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		var cut int64
		switch r.Method {
		case "PUT":
			s.puts = append(s.puts, r.Header.Get("Upload-Offset"))
			cut, s.cutPut = s.cutPut, 0
		case "GET":
			s.gets = append(s.gets, r.Header.Get("Range"))
			cut, s.cutGet = s.cutGet, 0
		}
		s.mu.Unlock()
		if cut == 0 {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method == "PUT" {
			r.Body = io.NopCloser(&failAfter{r: r.Body, n: cut})
			h.ServeHTTP(discard{header: http.Header{}}, r)
		} else {
			h.ServeHTTP(&cutWriter{ResponseWriter: w, n: cut}, r)
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
}

type failAfter struct {
	r io.Reader
	n int64
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("cut")
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// discard is an answer nobody receives.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// cutWriter passes n bytes of the answer's body, then fails.
type cutWriter struct {
	http.ResponseWriter
	n int64
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.n <= 0 {
		return 0, errors.New("cut")
	}
	if int64(len(b)) > c.n {
		b = b[:c.n]
	}
	n, err := c.ResponseWriter.Write(b)
	c.n -= int64(n)
	if err == nil && c.n <= 0 {
		err = errors.New("cut")
	}
	return n, err
}

func randomData(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// opener serves data from a file, as the CLI will, counting the opens.
func opener(t *testing.T, data []byte) (func(int64) (io.ReadCloser, error), *[]int64) {
	name := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var opens []int64
	return func(off int64) (io.ReadCloser, error) {
		opens = append(opens, off)
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}, &opens
}

func TestBlobFilesystem(t *testing.T) {
	testBlob(t, func(t *testing.T) blob.Storage { return nil }, func(n int64) int64 { return n })
}

func TestBlobS3(t *testing.T) {
	testBlob(t, func(t *testing.T) blob.Storage {
		srv := s3test.Start(t)
		st, err := blob.OpenURL(t.Context(), srv.URL(), s3test.Getenv)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}, func(n int64) int64 { return n / (8 << 20) * (8 << 20) })
}

// testBlob: an upload whose connection drops mid-body resumes from the
// server's checkpoint (checkpoint(cut)) and completes with the right
// hash; a second upload is deduplicated (no PUT); content that does not
// match its hash is refused without retries; Download fetches the blob,
// resuming with Range after a dropped connection.
func testBlob(t *testing.T, blobs func(*testing.T) blob.Storage, checkpoint func(int64) int64) {
	s := newServer(t, blobs(t))
	ctx := t.Context()
	data := randomData(20<<20 + 999)
	sha, size := shaHex(data), int64(len(data))
	open, opens := opener(t, data)

	cut := int64(9<<20 + 12345)
	s.cutPut = cut
	var last int64
	err := upload.Blob(ctx, s.client, sha, size, open, func(done int64) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	if last != size {
		t.Errorf("last progress %d, want %d", last, size)
	}
	want := checkpoint(cut)
	t.Logf("PUTs at offsets %v after a cut at %d", s.puts, cut)
	if len(s.puts) != 2 || s.puts[0] != "0" || s.puts[1] != itoa(want) {
		t.Errorf("PUTs at offsets %v, want [0 %d]", s.puts, want)
	}
	if len(*opens) != 2 || (*opens)[1] != want {
		t.Errorf("opened at %v, want [0 %d]", *opens, want)
	}
	o, err := s.p.Blobs.Open(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, o); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		t.Fatalf("the server stores content hashing to %s, want %s", got, sha)
	}

	// Dedup: no PUT.
	s.puts = nil
	if err := upload.Blob(ctx, s.client, sha, size, open, nil); err != nil {
		t.Fatal(err)
	}
	if len(s.puts) != 0 {
		t.Errorf("a stored blob was sent again: PUTs %v", s.puts)
	}

	// Content that is not what its hash says: refused once, not retried.
	bad := bytes.Clone(data[:1<<20])
	badOpen, _ := opener(t, bad)
	bad[0] ^= 1
	err = upload.Blob(ctx, s.client, shaHex(bad), int64(len(bad)), badOpen, nil)
	if !errors.Is(err, upload.ErrHashMismatch) {
		t.Fatalf("mismatching upload: %v, want ErrHashMismatch", err)
	}
	if len(s.puts) != 1 {
		t.Errorf("a mismatching upload was sent %d times", len(s.puts))
	}
	var se *upload.StatusError
	err = upload.Blob(ctx, upload.Client{BaseURL: s.client.BaseURL, Token: "wrong"}, sha, size, open, nil)
	if !errors.As(err, &se) || se.Status != 401 {
		t.Fatalf("a wrong token: %v, want a 401 StatusError", err)
	}

	// Download, cut after 5 MiB: resumed by Range.
	dst := filepath.Join(t.TempDir(), "blob")
	s.cutGet = 5 << 20
	if err := upload.Download(ctx, s.client, sha, size, dst, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("GETs with Range %q", s.gets)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%v), equal %v", len(got), err, bytes.Equal(got, data))
	}
	if len(s.gets) < 2 || s.gets[0] != "" || !strings.HasPrefix(s.gets[1], "bytes=") || s.gets[1] == "bytes=0-" {
		t.Errorf("GETs with Range %q, want a first whole one and a resumed one", s.gets)
	}
	if _, err := os.Stat(dst + ".part"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is left: %v", err)
	}
	// A download of a wrong hash leaves nothing.
	other := filepath.Join(t.TempDir(), "other")
	if err := upload.Download(ctx, s.client, shaHex(bad), 5, other, nil); err == nil {
		t.Fatal("a download of an unknown blob succeeded")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
