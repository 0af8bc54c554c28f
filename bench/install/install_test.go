package install_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
)

// source is the payload both benchmarks read: a random file written once
// per process, so it sits in the page cache for both sides alike.
var source struct {
	once   sync.Once
	dir    string
	path   string
	size   int64
	sha256 []byte
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if source.dir != "" {
		os.RemoveAll(source.dir)
	}
	os.Exit(code)
}

func benchSize() (int64, error) {
	mib := int64(64)
	if v := os.Getenv("UPTRUST_BENCH_SIZE_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("UPTRUST_BENCH_SIZE_MIB=%q: want a positive integer", v)
		}
		mib = n
	}
	return mib << 20, nil
}

// sourceFile returns the payload's path, writing it on first use. The
// destination files go in the same directory, hence the same filesystem.
func sourceFile(b *testing.B) (path string, size int64, sum []byte) {
	b.Helper()
	source.once.Do(func() {
		source.size, source.err = benchSize()
		if source.err != nil {
			return
		}
		source.dir, source.err = os.MkdirTemp("", "uptrust-bench-install-")
		if source.err != nil {
			return
		}
		source.path = filepath.Join(source.dir, "payload.bin")
		source.sha256, source.err = writeRandom(source.path, source.size)
	})
	if source.err != nil {
		b.Fatal(source.err)
	}
	return source.path, source.size, source.sha256
}

func writeRandom(path string, size int64) ([]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'u', 'p', 't', 'r', 'u', 's', 't'})
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rng, size); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// newSlot creates an empty destination file next to the source.
func newSlot(b *testing.B, src string) (*os.File, string) {
	b.Helper()
	path := src + ".slot"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	return f, path
}

// removeUntimed deletes a destination file outside the measured time.
func removeUntimed(b *testing.B, path string) {
	b.StopTimer()
	if err := os.Remove(path); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

// BenchmarkInstallHTTP: loopback HTTP server → fetch.Client.Get →
// payload.Install (sha256) → slot file → fsync. "writeback" wraps the slot
// in payload.Writeback as the agent does; "no-writeback" shows what that
// buys.
func BenchmarkInstallHTTP(b *testing.B) {
	src, size, sum := sourceFile(b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(src)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, "payload.bin", fi.ModTime(), f)
	}))
	defer srv.Close()
	client, err := fetch.New(fetch.Config{})
	if err != nil {
		b.Fatal(err)
	}
	hashes := map[string][]byte{"sha256": sum}
	ctx := context.Background()
	for _, writeback := range []bool{true, false} {
		name := "writeback"
		if !writeback {
			name = "no-writeback"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				f, dstPath := newSlot(b, src)
				var dst payload.Writer = f
				if writeback {
					dst = payload.Writeback(f)
				}
				body, err := client.Get(ctx, srv.URL+"/payload.bin", size)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := payload.Install(ctx, body, dst, size, hashes); err != nil {
					b.Fatal(err)
				}
				body.Close()
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				removeUntimed(b, dstPath)
			}
		})
	}
}

// BenchmarkPlainCopy: the same bytes copied from the source file into a new
// file with io.Copy, then fsync: the ceiling for BenchmarkInstallHTTP.
func BenchmarkPlainCopy(b *testing.B) {
	src, size, _ := sourceFile(b)
	b.SetBytes(size)
	for b.Loop() {
		dst, dstPath := newSlot(b, src)
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(dst, in)
		if err != nil || n != size {
			b.Fatalf("copied %d of %d bytes: %v", n, size, err)
		}
		in.Close()
		if err := dst.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := dst.Close(); err != nil {
			b.Fatal(err)
		}
		removeUntimed(b, dstPath)
	}
}
