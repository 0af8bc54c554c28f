package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/blob/s3test"
)

// uploadTarget is one storage under the Uploader tests.
type uploadTarget struct {
	st Storage
	u  Uploader
	// other is a second handle on the same storage (another replica).
	other func() Uploader
	// leftovers lists what unfinished uploads left in the storage.
	leftovers func(t *testing.T) []string
	// checkpoint is the offset an upload cut after n bytes resumes at.
	checkpoint func(n int64) int64
}

func fsTarget(t *testing.T) uploadTarget {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return uploadTarget{st: s, u: s,
		other: func() Uploader {
			s2, err := New(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s2
		},
		leftovers: func(t *testing.T) []string {
			ents, _ := os.ReadDir(filepath.Join(dir, "uploads"))
			var out []string
			for _, e := range ents {
				out = append(out, e.Name())
			}
			return out
		},
		checkpoint: func(n int64) int64 { return n },
	}
}

func s3Target(t *testing.T) uploadTarget {
	srv := s3test.Start(t)
	s := openS3(t, srv)
	return uploadTarget{st: s, u: s,
		other: func() Uploader { return openS3(t, srv) },
		leftovers: func(t *testing.T) []string {
			var out []string
			for _, k := range objects(t, srv) {
				if !strings.HasPrefix(k, "sha256/") {
					out = append(out, k)
				}
			}
			for u := range srv.Client().ListIncompleteUploads(t.Context(), srv.Bucket, "", true) {
				if u.Err != nil {
					t.Fatal(u.Err)
				}
				out = append(out, "multipart:"+u.Key)
			}
			return out
		},
		checkpoint: func(n int64) int64 { return n / s3PartSize * s3PartSize },
	}
}

// failAfter yields r's bytes, then fails after n of them.
type failAfter struct {
	r io.Reader
	n int64
}

var errCut = errors.New("connection cut")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errCut
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readBlob(t *testing.T, st Storage, sha string) []byte {
	t.Helper()
	o, err := st.Open(t.Context(), sha)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadFilesystem(t *testing.T) { testUploader(t, fsTarget) }

func TestUploadS3(t *testing.T) { testUploader(t, s3Target) }

func testUploader(t *testing.T, target func(*testing.T) uploadTarget) {
	data := randomBytes(2*s3PartSize+12345, 7)
	sha := shaOf(data)
	size := int64(len(data))

	t.Run("whole then dedup", func(t *testing.T) {
		tg := target(t)
		ctx := t.Context()
		info, err := tg.u.Upload(ctx, sha, size, 0, 0, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if info.SHA256 != sha || info.Size != size {
			t.Fatalf("info = %+v", info)
		}
		if got := readBlob(t, tg.st, sha); !bytes.Equal(got, data) {
			t.Fatal("stored content differs from the upload")
		}
		if l := tg.leftovers(t); len(l) != 0 {
			t.Fatalf("a finished upload left %v", l)
		}
		// Dedup: stored already, nothing is read, even at a wrong offset.
		cr := &countReader{r: bytes.NewReader(data)}
		if info, err := tg.other().Upload(ctx, sha, size, 0, 0, cr); err != nil || info.Size != size {
			t.Fatalf("second upload: %+v, %v", info, err)
		}
		if cr.n != 0 {
			t.Fatalf("dedup read %d bytes", cr.n)
		}
	})

	t.Run("interrupted and resumed by another handle", func(t *testing.T) {
		tg := target(t)
		ctx := t.Context()
		cut := int64(s3PartSize + 4321)
		_, err := tg.u.Upload(ctx, sha, size, 0, 0, &failAfter{r: bytes.NewReader(data), n: cut})
		if !errors.Is(err, ErrIncomplete) || !errors.Is(err, errCut) {
			t.Fatalf("cut upload: %v, want ErrIncomplete wrapping the reader's error", err)
		}
		if _, err := tg.st.Stat(ctx, sha); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("an unfinished blob is visible: %v", err)
		}
		other := tg.other()
		off, err := other.UploadOffset(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		if want := tg.checkpoint(cut); off != want || off == 0 {
			t.Fatalf("UploadOffset = %d, want %d", off, want)
		}
		// A wrong offset reads nothing and names the right one.
		cr := &countReader{r: bytes.NewReader(data)}
		_, err = other.Upload(ctx, sha, size, 0, 0, cr)
		var oe *OffsetError
		if !errors.As(err, &oe) || !errors.Is(err, ErrOffset) || oe.Expected != off || cr.n != 0 {
			t.Fatalf("upload at 0: %v (read %d), want ErrOffset expecting %d", err, cr.n, off)
		}
		// A reader that ends cleanly too early keeps the upload.
		_, err = other.Upload(ctx, sha, size, off, 0, bytes.NewReader(data[off:off+10]))
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("short upload: %v, want ErrIncomplete", err)
		}
		off, err = other.UploadOffset(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		info, err := other.Upload(ctx, sha, size, off, 0, bytes.NewReader(data[off:]))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != size {
			t.Fatalf("info = %+v", info)
		}
		if got := readBlob(t, tg.st, sha); !bytes.Equal(got, data) {
			t.Fatal("resumed upload stored other content")
		}
		if l := tg.leftovers(t); len(l) != 0 {
			t.Fatalf("a finished upload left %v", l)
		}
	})

	t.Run("hash mismatch leaves nothing", func(t *testing.T) {
		tg := target(t)
		ctx := t.Context()
		bad := bytes.Clone(data)
		bad[len(bad)-1] ^= 1
		// Interrupted first, so that there is a checkpoint to discard.
		_, err := tg.u.Upload(ctx, sha, size, 0, 0, &failAfter{r: bytes.NewReader(bad), n: s3PartSize + 1})
		if !errors.Is(err, ErrIncomplete) {
			t.Fatal(err)
		}
		off, _ := tg.u.UploadOffset(ctx, sha)
		_, err = tg.u.Upload(ctx, sha, size, off, 0, bytes.NewReader(bad[off:]))
		if !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("mismatch: %v, want ErrHashMismatch", err)
		}
		if _, err := tg.st.Stat(ctx, sha); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("wrong content is visible: %v", err)
		}
		if off, err := tg.u.UploadOffset(ctx, sha); off != 0 || err != nil {
			t.Fatalf("UploadOffset after mismatch = %d, %v", off, err)
		}
		if l := tg.leftovers(t); len(l) != 0 {
			t.Fatalf("a refused upload left %v", l)
		}
	})

	t.Run("too large or too long or bad arguments", func(t *testing.T) {
		tg := target(t)
		ctx := t.Context()
		cr := &countReader{r: bytes.NewReader(data)}
		if _, err := tg.u.Upload(ctx, sha, size, 0, size-1, cr); !errors.Is(err, ErrTooLarge) || cr.n != 0 {
			t.Fatalf("above the limit: %v (read %d), want ErrTooLarge before reading", err, cr.n)
		}
		small := data[:1000]
		if _, err := tg.u.Upload(ctx, shaOf(small), 999, 0, 0, bytes.NewReader(small)); !errors.Is(err, ErrTooLong) {
			t.Fatalf("content past its size: %v, want ErrTooLong", err)
		}
		if _, err := tg.u.Upload(ctx, "ABC", 1, 0, 0, bytes.NewReader(small)); err == nil {
			t.Fatal("a malformed sha was taken")
		}
		if _, err := tg.u.Upload(ctx, sha, size, size+1, 0, bytes.NewReader(small)); err == nil {
			t.Fatal("an offset past the size was taken")
		}
	})

	t.Run("old uploads are removed", func(t *testing.T) {
		tg := target(t)
		ctx := t.Context()
		_, err := tg.u.Upload(ctx, sha, size, 0, 0, &failAfter{r: bytes.NewReader(data), n: s3PartSize + 1})
		if !errors.Is(err, ErrIncomplete) {
			t.Fatal(err)
		}
		if n, err := tg.u.RemoveUploads(ctx, time.Now().Add(-time.Hour)); n != 0 || err != nil {
			t.Fatalf("RemoveUploads(an hour ago) = %d, %v; want 0", n, err)
		}
		if n, err := tg.u.RemoveUploads(ctx, time.Now().Add(time.Minute)); n != 1 || err != nil {
			t.Fatalf("RemoveUploads(now) = %d, %v; want 1", n, err)
		}
		if off, err := tg.u.UploadOffset(ctx, sha); off != 0 || err != nil {
			t.Fatalf("UploadOffset after removal = %d, %v", off, err)
		}
		if l := tg.leftovers(t); len(l) != 0 {
			t.Fatalf("removal left %v", l)
		}
	})
}
