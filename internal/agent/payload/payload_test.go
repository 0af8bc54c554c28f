package payload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// slot is an in-memory Writer that records Sync.
type slot struct {
	bytes.Buffer
	synced  bool
	syncErr error
}

func (s *slot) Sync() error {
	s.synced = true
	return s.syncErr
}

func image(t testing.TB, n int) ([]byte, map[string][]byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	return data, map[string][]byte{"sha256": s256[:], "sha512": s512[:]}
}

// size spans several copy buffers and ends mid-buffer.
const size = 2*payload.BufferSize + 12345

func TestInstallGood(t *testing.T) {
	data, hashes := image(t, size)
	for _, tc := range []struct {
		name   string
		hashes map[string][]byte
	}{
		{"both", hashes},
		{"sha256 only", map[string][]byte{"sha256": hashes["sha256"]}},
		{"sha512 only", map[string][]byte{"sha512": hashes["sha512"]}},
		{"sha256 and unknown", map[string][]byte{"sha256": hashes["sha256"], "md5": {1, 2, 3}}},
	} {
		dst := &slot{}
		res, err := payload.Install(context.Background(), bytes.NewReader(data), dst, size, tc.hashes)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Bytes != size || !bytes.Equal(res.SHA256, hashes["sha256"]) {
			t.Errorf("%s: result %d bytes, sha256 %x", tc.name, res.Bytes, res.SHA256)
		}
		if !bytes.Equal(dst.Bytes(), data) || !dst.synced {
			t.Errorf("%s: slot holds %d bytes (equal=%v), synced=%v", tc.name, dst.Len(), bytes.Equal(dst.Bytes(), data), dst.synced)
		}
	}
}

func TestInstallEmptyImage(t *testing.T) {
	sum := sha256.Sum256(nil)
	if _, err := payload.Install(context.Background(), strings.NewReader(""), &slot{}, 0, map[string][]byte{"sha256": sum[:]}); err != nil {
		t.Error(err)
	}
}

func TestInstallTamperedByte(t *testing.T) {
	data, hashes := image(t, size)
	for _, algo := range []string{"sha256", "sha512"} {
		bad := bytes.Clone(data)
		bad[payload.BufferSize+7] ^= 1
		dst := &slot{}
		_, err := payload.Install(context.Background(), bytes.NewReader(bad), dst, size, map[string][]byte{algo: hashes[algo]})
		if !errors.Is(err, payload.ErrHashMismatch) {
			t.Fatalf("%s: err = %v, want ErrHashMismatch", algo, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "payload:") || !strings.Contains(msg, algo) || !strings.Contains(msg, "expected "+hexPrefix(hashes[algo])) {
			t.Errorf("%s: message %q should name the algorithm and the expected digest", algo, msg)
		}
		if dst.synced {
			t.Errorf("%s: a mismatching image was synced", algo)
		}
	}
}

func TestInstallOneHashWrongIsEnough(t *testing.T) {
	data, hashes := image(t, size)
	other := sha512.Sum512([]byte("something else"))
	mixed := map[string][]byte{"sha256": hashes["sha256"], "sha512": other[:]}
	_, err := payload.Install(context.Background(), bytes.NewReader(data), &slot{}, size, mixed)
	if !errors.Is(err, payload.ErrHashMismatch) || !strings.Contains(err.Error(), "sha512") {
		t.Errorf("err = %v, want a sha512 mismatch", err)
	}
}

func TestInstallTruncated(t *testing.T) {
	data, hashes := image(t, size)
	for _, cut := range []int{0, 1, payload.BufferSize, size - 1} {
		_, err := payload.Install(context.Background(), bytes.NewReader(data[:cut]), &slot{}, size, hashes)
		if !errors.Is(err, payload.ErrTruncated) {
			t.Errorf("source of %d bytes: err = %v, want ErrTruncated", cut, err)
		}
	}
}

// endless returns 'A' forever and counts what it handed out.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestInstallLonger(t *testing.T) {
	data, hashes := image(t, size)
	longer := append(bytes.Clone(data), 0)
	if _, err := payload.Install(context.Background(), bytes.NewReader(longer), &slot{}, size, hashes); !errors.Is(err, payload.ErrTooLong) {
		t.Errorf("one extra byte: err = %v, want ErrTooLong", err)
	}
	src := &endless{}
	sum := sha256.Sum256(bytes.Repeat([]byte("A"), 1000))
	_, err := payload.Install(context.Background(), src, &slot{}, 1000, map[string][]byte{"sha256": sum[:]})
	if !errors.Is(err, payload.ErrTooLong) {
		t.Errorf("endless source: err = %v, want ErrTooLong", err)
	}
	if src.n != 1001 {
		t.Errorf("read %d bytes from an endless source, want 1001 (length + 1)", src.n)
	}
}

func TestInstallRefusesUnknownAlgorithms(t *testing.T) {
	src := &endless{}
	for _, hashes := range []map[string][]byte{nil, {"md5": make([]byte, 16)}, {"blake2b-256": make([]byte, 32)}} {
		_, err := payload.Install(context.Background(), src, &slot{}, 10, hashes)
		if !errors.Is(err, payload.ErrNoKnownHash) {
			t.Errorf("%v: err = %v, want ErrNoKnownHash", hashes, err)
		}
	}
	if _, err := payload.Install(context.Background(), src, &slot{}, 10, map[string][]byte{"sha256": make([]byte, 31)}); err == nil {
		t.Error("accepted a sha256 digest of 31 bytes")
	}
	if src.n != 0 {
		t.Errorf("read %d bytes before refusing", src.n)
	}
}

// cancelAfter cancels ctx once it has handed out limit bytes.
type cancelAfter struct {
	r      io.Reader
	n      int64
	limit  int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.limit {
		c.cancel()
	}
	return n, err
}

func TestInstallContextCancelled(t *testing.T) {
	data, hashes := image(t, size)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &cancelAfter{r: bytes.NewReader(data), limit: payload.BufferSize, cancel: cancel}
	dst := &slot{}
	res, err := payload.Install(ctx, src, dst, size, hashes)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Bytes >= size || dst.synced {
		t.Errorf("copied %d of %d bytes and synced=%v after cancel", res.Bytes, size, dst.synced)
	}
}

func TestInstallSyncFails(t *testing.T) {
	data, hashes := image(t, 1000)
	syncErr := errors.New("disk on fire")
	_, err := payload.Install(context.Background(), bytes.NewReader(data), &slot{syncErr: syncErr}, 1000, hashes)
	if !errors.Is(err, syncErr) || !strings.HasPrefix(err.Error(), "payload: sync") {
		t.Errorf("err = %v, want a wrapped sync error", err)
	}
}

type failingWriter struct{ slot }

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("no space left") }

func TestInstallWriteFails(t *testing.T) {
	data, hashes := image(t, 1000)
	dst := &failingWriter{}
	_, err := payload.Install(context.Background(), bytes.NewReader(data), dst, 1000, hashes)
	if err == nil || !strings.Contains(err.Error(), "no space left") || dst.synced {
		t.Errorf("err = %v, synced = %v", err, dst.synced)
	}
}

func TestVerify(t *testing.T) {
	data, hashes := image(t, size)
	// A slot is larger than its image: trailing bytes are ignored.
	slotData := append(bytes.Clone(data), make([]byte, 4096)...)
	res, err := payload.Verify(context.Background(), bytes.NewReader(slotData), size, hashes)
	if err != nil || res.Bytes != size || !bytes.Equal(res.SHA256, hashes["sha256"]) {
		t.Errorf("good slot: %+v, %v", res, err)
	}
	slotData[17] ^= 0x80
	if _, err := payload.Verify(context.Background(), bytes.NewReader(slotData), size, hashes); !errors.Is(err, payload.ErrHashMismatch) {
		t.Errorf("corrupted slot: err = %v, want ErrHashMismatch", err)
	}
	if _, err := payload.Verify(context.Background(), bytes.NewReader(data[:10]), size, hashes); !errors.Is(err, payload.ErrTruncated) {
		t.Errorf("short slot: err = %v, want ErrTruncated", err)
	}
}

func hexPrefix(d []byte) string { return hex.EncodeToString(d[:8]) }

// discardSlot is a Writer that drops everything: the benchmark measures the
// copy and hashing, not a disk.
type discardSlot struct{}

func (discardSlot) Write(p []byte) (int, error) { return len(p), nil }
func (discardSlot) Sync() error                 { return nil }

func BenchmarkInstall(b *testing.B) {
	const n = 64 << 20
	data, hashes := image(b, n)
	for _, tc := range []struct {
		name   string
		hashes map[string][]byte
	}{
		{"sha256", map[string][]byte{"sha256": hashes["sha256"]}},
		{"sha256+sha512", hashes},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				if _, err := payload.Install(context.Background(), bytes.NewReader(data), discardSlot{}, n, tc.hashes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestWritebackFile(t *testing.T) {
	n := 2*payload.WritebackWindow + 12345
	data, hashes := image(t, n)
	path := filepath.Join(t.TempDir(), "slot")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := payload.Writeback(f)
	if w == payload.Writer(f) {
		t.Fatal("Writeback did not wrap an *os.File")
	}
	if _, err := payload.Install(context.Background(), bytes.NewReader(data), w, int64(n), hashes); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("slot file holds %d bytes (equal=%v), %v", len(got), bytes.Equal(got, data), err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := payload.Verify(context.Background(), r, int64(n), hashes); err != nil {
		t.Errorf("Verify after Writeback: %v", err)
	}
}

// A pipe has a descriptor but no page cache: the hints must switch
// themselves off and the data still arrive.
func TestWritebackPipe(t *testing.T) {
	n := 2*payload.WritebackWindow + 1
	data, hashes := image(t, n)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(pr)
		got <- b
	}()
	_, err = payload.Install(context.Background(), bytes.NewReader(data), pipeSlot{payload.Writeback(pw)}, int64(n), hashes)
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Errorf("pipe carried %d bytes, want the %d-byte image", len(b), n)
	}
}

// pipeSlot ignores Sync, which a pipe does not support.
type pipeSlot struct{ payload.Writer }

func (pipeSlot) Sync() error { return nil }

func TestWritebackLeavesOtherWritersAlone(t *testing.T) {
	s := &slot{}
	if w := payload.Writeback(s); w != payload.Writer(s) {
		t.Errorf("Writeback wrapped a writer without a descriptor: %T", w)
	}
}
