package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"
)

func TestPutStatRoundTrip(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("firmware"), 300000)
	info, err := s.Put(context.Background(), bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if info.SHA256 != hex.EncodeToString(want[:]) || info.Size != int64(len(data)) {
		t.Fatalf("info = %+v", info)
	}
	got, err := os.ReadFile(info.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	again, err := s.Put(context.Background(), bytes.NewReader(data), 0)
	if err != nil || again.Path != info.Path {
		t.Fatalf("second put: %+v %v", again, err)
	}
	st, err := s.Stat(context.Background(), info.SHA256)
	if err != nil || st.Size != info.Size {
		t.Fatalf("stat: %+v %v", st, err)
	}
}

func TestPutLimitAndBadNames(t *testing.T) {
	s, _ := New(t.TempDir())
	_, err := s.Put(context.Background(), bytes.NewReader(make([]byte, 11)), 10)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if _, err := s.Stat(context.Background(), "../../etc/passwd"); err == nil {
		t.Fatal("Stat accepted a path")
	}
	if _, err := s.Stat(context.Background(), hex.EncodeToString(make([]byte, 32))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing blob: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, bytes.NewReader(make([]byte, 10)), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put: %v", err)
	}
}
