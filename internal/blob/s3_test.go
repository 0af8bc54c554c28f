package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/uptrust/uptrust/internal/blob/s3test"
)

func openS3(t *testing.T, srv *s3test.Server) *S3 {
	t.Helper()
	st, err := OpenURL(t.Context(), srv.URL(), s3test.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*S3)
}

// objects lists every key in the bucket.
func objects(t *testing.T, srv *s3test.Server) []string {
	t.Helper()
	var keys []string
	for o := range srv.Client().ListObjects(t.Context(), srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// A payload larger than one part goes up in a multipart upload, lands under
// its content address with content that hashes to that address, reads back
// whole and from an offset, and a second Put deduplicates.
func TestS3PutOpenDedup(t *testing.T) {
	srv := s3test.Start(t)
	s := openS3(t, srv)
	ctx := t.Context()
	data := randomBytes(s3PartSize*2+12345, 1)
	info, err := s.Put(ctx, bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if info.SHA256 != want || info.Size != int64(len(data)) {
		t.Fatalf("info = %+v, want %s %d", info, want, len(data))
	}
	keys := objects(t, srv)
	if len(keys) != 1 || keys[0] != "sha256/"+want[:2]+"/"+want {
		t.Fatalf("bucket holds %v, want only the content address", keys)
	}
	// What the bucket holds under the address hashes to it.
	o, err := srv.Client().GetObject(ctx, srv.Bucket, keys[0], minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, o); err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatal("the object under the content address does not hash to it")
	}

	obj, err := s.Open(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if obj.Size() != int64(len(data)) {
		t.Fatalf("size %d", obj.Size())
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
	off := int64(s3PartSize + 7)
	if _, err := obj.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 1000)
	if _, err := io.ReadFull(obj, part); err != nil || !bytes.Equal(part, data[off:off+1000]) {
		t.Fatalf("read at %d: %v", off, err)
	}

	again, err := s.Put(ctx, bytes.NewReader(data), 0)
	if err != nil || again != info {
		t.Fatalf("second put: %+v %v", again, err)
	}
	if keys := objects(t, srv); len(keys) != 1 {
		t.Fatalf("after dedup the bucket holds %v", keys)
	}
	if st, err := s.Stat(ctx, want); err != nil || st.Size != info.Size {
		t.Fatalf("stat: %+v %v", st, err)
	}
	if _, err := s.Stat(ctx, strings.Repeat("0", 64)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing blob: %v", err)
	}
	if _, err := s.Open(ctx, strings.Repeat("0", 64)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a missing blob: %v", err)
	}
	if _, err := s.Stat(ctx, "../x"); err == nil {
		t.Fatal("Stat accepted a bad name")
	}
}

// failingReader yields n bytes, then calls fail and returns err.
type failingReader struct {
	r    io.Reader
	n    int64
	fail func()
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		if f.fail != nil {
			f.fail()
		}
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// A payload over the limit, a source that fails and an upload cancelled in
// the middle (after whole parts went up) leave nothing in the bucket: no
// object, no temporary object, no unfinished multipart upload.
func TestS3FailedPutsLeaveNothing(t *testing.T) {
	srv := s3test.Start(t)
	s := openS3(t, srv)
	data := randomBytes(s3PartSize*2+100, 2)

	if _, err := s.Put(t.Context(), bytes.NewReader(data), int64(len(data)-1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v, want ErrTooLarge", err)
	}
	if info, err := s.Put(t.Context(), bytes.NewReader(data[:1000]), 1000); err != nil || info.Size != 1000 {
		t.Fatalf("at the limit: %+v %v", info, err)
	}
	if err := s.client.RemoveObject(t.Context(), srv.Bucket, s.key(sha256Hex(data[:1000])), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	boom := errors.New("disk read error")
	_, err := s.Put(t.Context(), &failingReader{r: bytes.NewReader(data), n: s3PartSize + 10, err: boom}, 0)
	if !errors.Is(err, boom) {
		t.Fatalf("failing source: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	_, err = s.Put(ctx, &failingReader{r: bytes.NewReader(data), n: s3PartSize*2 + 10, fail: cancel, err: io.ErrNoProgress}, 0)
	if err == nil {
		t.Fatal("a cancelled upload succeeded")
	}

	// Content that does not hash to the address it is uploaded to: the
	// multipart upload is never completed.
	wrong := sha256Hex([]byte("something else"))
	if _, err := s.PutVerified(t.Context(), bytes.NewReader(data), wrong, 0); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("PutVerified with the wrong hash: %v", err)
	}
	if _, err := s.PutVerified(t.Context(), bytes.NewReader(data), sha256Hex(data), int64(len(data)-1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("PutVerified over the limit: %v", err)
	}

	if keys := objects(t, srv); len(keys) != 0 {
		t.Fatalf("failed uploads left objects: %v", keys)
	}
	for u := range srv.Client().ListIncompleteUploads(t.Context(), srv.Bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("failed uploads left an unfinished multipart upload of %s", u.Key)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// blobs copy: every filesystem blob arrives under the same address; a
// second copy finds them all there.
func TestCopyToS3(t *testing.T) {
	srv := s3test.Start(t)
	dst := openS3(t, srv)
	src, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var shas []string
	for i := range 3 {
		info, err := src.Put(t.Context(), bytes.NewReader(randomBytes(100000+i, uint64(10+i))), 0)
		if err != nil {
			t.Fatal(err)
		}
		shas = append(shas, info.SHA256)
	}
	n, skipped, err := Copy(t.Context(), dst, src)
	if err != nil || n != 3 || skipped != 0 {
		t.Fatalf("copy: %d copied, %d skipped, %v", n, skipped, err)
	}
	for _, sha := range shas {
		if _, err := dst.Stat(t.Context(), sha); err != nil {
			t.Errorf("%s not in the bucket: %v", sha, err)
		}
	}
	n, skipped, err = Copy(t.Context(), dst, src)
	if err != nil || n != 0 || skipped != 3 {
		t.Fatalf("second copy: %d copied, %d skipped, %v", n, skipped, err)
	}
	// A blob file changed on disk is refused, not copied under its name.
	bad, err := src.Put(t.Context(), bytes.NewReader(randomBytes(s3PartSize+5, 20)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad.Path, randomBytes(s3PartSize+5, 21), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Copy(t.Context(), dst, src); err == nil || !strings.Contains(err.Error(), bad.SHA256+" is corrupt") {
		t.Fatalf("copy of a corrupt blob: %v", err)
	}
	if _, err := dst.Stat(t.Context(), bad.SHA256); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the corrupt blob reached the bucket: %v", err)
	}
}

// A bucket that does not exist and an endpoint nobody answers are clear
// errors when the store is opened.
func TestOpenURLUnreachable(t *testing.T) {
	srv := s3test.Start(t)
	_, err := OpenURL(t.Context(), "s3://nosuchbucket?endpoint="+srv.Endpoint, s3test.Getenv)
	if err == nil || !strings.Contains(err.Error(), `bucket "nosuchbucket" does not exist`) {
		t.Errorf("missing bucket: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = OpenURL(t.Context(), "s3://b?endpoint=http://"+addr, s3test.Getenv)
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), addr) {
		t.Errorf("closed endpoint: %v", err)
	}
	if strings.Contains(err.Error(), s3test.SecretKey) || strings.Contains(err.Error(), s3test.AccessKey) {
		t.Errorf("the error shows credentials: %v", err)
	}
}

func TestParseS3URL(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}[k]
	}
	c, err := ParseS3URL("s3://fw?endpoint=http://127.0.0.1:9000/&region=eu-west-1&prefix=/a/b/", env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "fw" || c.Endpoint != "http://127.0.0.1:9000" || c.Region != "eu-west-1" || c.Prefix != "a/b/" || c.secure || c.accessKey != "AK" {
		t.Fatalf("%+v", c)
	}
	if s := c.String(); strings.Contains(s, "SK") || strings.Contains(s, "AK") {
		t.Fatalf("String shows credentials: %s", s)
	}
	d, err := ParseS3URL("s3://fw", env)
	if err != nil || d.Endpoint != "https://s3.amazonaws.com" || !d.secure || d.Region != "us-east-1" {
		t.Fatalf("defaults: %+v %v", d, err)
	}
	for _, tc := range []struct{ url, want string }{
		{"http://fw", "want s3://"},
		{"s3://", "names no bucket"},
		{"s3://AK:SK@fw", "credentials do not belong"},
		{"s3://fw/path", "?prefix="},
		{"s3://fw?endpint=http://x", `unknown parameter "endpint"`},
		{"s3://fw?endpoint=ftp://x", "want http(s)://HOST"},
		{"s3://fw?endpoint=http://u:p@x", "credentials do not belong"},
		{"s3://fw?region=a&region=b", "region given 2 times"},
	} {
		if _, err := ParseS3URL(tc.url, env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.url, err, tc.want)
		}
	}
	if _, err := ParseS3URL("s3://fw", func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("no credentials: %v", err)
	}
	if _, err := OpenURL(context.Background(), "/srv/blobs", env); err == nil || !strings.Contains(err.Error(), "want s3://") {
		t.Errorf("a path for --blobs: %v", err)
	}
}
