package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// progressAfter returns the progress of a download of data cut after n
// bytes.
func progressAfter(t *testing.T, data []byte, n int) payload.Progress {
	t.Helper()
	sum := sha256.Sum256(data)
	r, err := payload.NewResumable(int64(len(data)), map[string][]byte{"sha256": sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	var sink bytes.Buffer
	_, err = r.Install(context.Background(), bytes.NewReader(data[:n]), nopSync{&sink}, payload.Checkpoints{})
	var se *payload.SourceError
	if n < len(data) && !errors.As(err, &se) || n == len(data) && err != nil {
		t.Fatalf("install of %d bytes: %v", n, err)
	}
	p, err := r.Progress()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type nopSync struct{ io.Writer }

func (nopSync) Sync() error { return nil }

func TestResumeFile(t *testing.T) {
	data := bytes.Repeat([]byte("delta bytes "), 10000)
	sum := sha256.Sum256(data)
	hashes := map[string][]byte{"sha256": sum[:]}
	const saved = 50000
	pr := progressAfter(t, data, saved)
	for _, tc := range []struct {
		name   string
		file   []byte // nil: no file
		pr     payload.Progress
		resume bool
	}{
		{"exactly the checkpoint", data[:saved], pr, true},
		{"bytes after the checkpoint are cut off", append(bytes.Clone(data[:saved+1000]), "junk"...), pr, true},
		{"shorter than the checkpoint", data[:saved-1], pr, false},
		{"missing", nil, pr, false},
		{"hash state for another offset", data[:saved+10], payload.Progress{Offset: saved + 10, States: pr.States}, false},
		{"no hash state", data[:saved], payload.Progress{Offset: saved}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "delta.tmp")
			if tc.file != nil {
				if err := os.WriteFile(path, tc.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r, err := payload.NewResumable(int64(len(data)), hashes)
			if err != nil {
				t.Fatal(err)
			}
			f, err := resumeFile(path, r, tc.pr)
			if !tc.resume {
				if err == nil {
					f.Close()
					t.Fatal("resumed, want an error")
				}
				if r.Offset() != 0 || r.Restored() {
					t.Fatalf("failed resume changed the Resumable: offset %d", r.Offset())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if fi, err := f.Stat(); err != nil || fi.Size() != saved {
				t.Fatalf("file size %v (%v), want cut back to %d", fi.Size(), err, saved)
			}
			if r.Offset() != saved || !r.Restored() {
				t.Fatalf("offset %d restored %v, want %d restored", r.Offset(), r.Restored(), saved)
			}
			// The rest completes the delta with the restored hash states.
			if _, err := f.Seek(saved, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Install(context.Background(), bytes.NewReader(data[saved:]), f, payload.Checkpoints{}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("file after resume differs from the delta (%v)", err)
			}
		})
	}
}
