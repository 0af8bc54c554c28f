package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a content-addressed store in an S3-compatible bucket. Objects are
// named like the filesystem layout: <prefix>sha256/<2 hex>/<64 hex>.
//
// Put uploads to a temporary key <prefix>tmp/<random> with a multipart
// upload of bounded parts (about three part buffers in memory), hashing while
// uploading; only when the upload is complete and hashed is the object
// copied server-side to its content address and the temporary object
// removed. A failed or interrupted Put removes the temporary object and
// aborts the multipart upload, so nothing appears under sha256/.
type S3 struct {
	cfg    S3Config
	client *minio.Client
	core   minio.Core
}

// s3PartSize is the multipart part size: 8 MiB parts allow objects up to
// 78 GiB (10,000 parts). s3Parallel parts are uploaded at once, so one
// upload holds about (s3Parallel+1) × s3PartSize bytes of buffers.
const (
	s3PartSize = 8 << 20
	s3Parallel = 2
)

func putOptions() minio.PutObjectOptions {
	return minio.PutObjectOptions{PartSize: s3PartSize, ConcurrentStreamParts: true, NumThreads: s3Parallel,
		ContentType: "application/octet-stream"}
}

// s3MaxCopy is the largest object a single server-side copy may create;
// larger blobs are copied part by part.
const s3MaxCopy = 5 << 30

// NewS3 connects to the bucket described by cfg. It does not contact the
// server; Check does.
func NewS3(cfg S3Config) (*S3, error) {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c, err := minio.New(cfg.host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.accessKey, cfg.secretKey, cfg.sessionToken),
		Secure:       cfg.secure,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    tr,
		// Few retries: a store that is down should give a prompt 503 and
		// a clear error, not a minute of backoff.
		MaxRetries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: %s: %w", cfg, err)
	}
	return &S3{cfg: cfg, client: c, core: minio.Core{Client: c}}, nil
}

// String names the bucket and endpoint, without credentials.
func (s *S3) String() string { return s.cfg.String() }

// Check reports whether the bucket exists and the credentials may read it.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("blob: object store %s unreachable: %w", s.cfg, err)
	}
	if !ok {
		return fmt.Errorf("blob: object store %s: bucket %q does not exist", s.cfg, s.cfg.Bucket)
	}
	return nil
}

func (s *S3) key(sha string) string {
	return s.cfg.Prefix + "sha256/" + sha[:2] + "/" + sha
}

// Put implements Storage.
func (s *S3) Put(ctx context.Context, r io.Reader, limit int64) (Info, error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Info{}, fmt.Errorf("blob: %w", err)
	}
	tmp := s.cfg.Prefix + "tmp/" + hex.EncodeToString(rnd[:])
	src := &hashingReader{r: ctxReader{ctx, r}, h: sha256.New(), limit: limit}
	ok := false
	defer func() {
		if !ok {
			s.cleanup(ctx, tmp)
		}
	}()
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, tmp, src, -1, putOptions())
	if src.tooLarge {
		return Info{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if src.err != nil {
		return Info{}, fmt.Errorf("blob: reading payload: %w", src.err)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob: uploading to %s: %w", s.cfg, err)
	}
	sha := hex.EncodeToString(src.h.Sum(nil))
	dst := s.key(sha)
	info := Info{SHA256: sha, Size: src.n}
	if st, err := s.client.StatObject(ctx, s.cfg.Bucket, dst, minio.StatObjectOptions{}); err == nil && st.Size == src.n {
		// Deduplicated: the content is there already.
		s.cleanup(ctx, tmp)
		ok = true
		return info, nil
	} else if err != nil && !isNotFound(err) {
		return Info{}, fmt.Errorf("blob: %s: %w", s.cfg, err)
	}
	dstOpts := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: dst}
	srcOpts := minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: tmp}
	if src.n <= s3MaxCopy {
		_, err = s.client.CopyObject(ctx, dstOpts, srcOpts)
	} else {
		_, err = s.client.ComposeObject(ctx, dstOpts, srcOpts)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob: %s: moving the upload to its content address: %w", s.cfg, err)
	}
	s.cleanup(ctx, tmp)
	ok = true
	return info, nil
}

// PutVerified stores content whose SHA-256 is known beforehand (copying
// from another store): it uploads straight to the content address, hashing
// on the way, and the reader fails instead of ending when the hash differs,
// so the multipart upload is aborted, never completed, and nothing appears
// under the address. It saves Put's server-side copy.
func (s *S3) PutVerified(ctx context.Context, r io.Reader, sha string, limit int64) (Info, error) {
	if !hexRE.MatchString(sha) {
		return Info{}, fmt.Errorf("blob: invalid sha256 %q", sha)
	}
	if info, err := s.Stat(ctx, sha); err == nil {
		return info, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Info{}, err
	}
	dst := s.key(sha)
	src := &hashingReader{r: ctxReader{ctx, r}, h: sha256.New(), limit: limit, want: sha}
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, dst, src, -1, putOptions())
	if src.tooLarge {
		err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	} else if src.mismatch != "" {
		err = fmt.Errorf("blob: content of %s hashes to %s: %w", sha, src.mismatch, ErrHashMismatch)
	} else if src.err != nil {
		err = fmt.Errorf("blob: reading payload: %w", src.err)
	} else if err != nil {
		err = fmt.Errorf("blob: uploading to %s: %w", s.cfg, err)
	}
	if err != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.client.RemoveIncompleteUpload(ctx, s.cfg.Bucket, dst)
		return Info{}, err
	}
	return Info{SHA256: sha, Size: src.n}, nil
}

// ErrHashMismatch is returned by PutVerified when the content does not hash
// to the expected SHA-256.
var ErrHashMismatch = errors.New("blob: content does not match its SHA-256")

// cleanup removes a temporary object and any unfinished multipart upload
// of it, even when ctx is already cancelled.
func (s *S3) cleanup(ctx context.Context, tmp string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = s.client.RemoveIncompleteUpload(ctx, s.cfg.Bucket, tmp)
	_ = s.client.RemoveObject(ctx, s.cfg.Bucket, tmp, minio.RemoveObjectOptions{})
}

// Stat implements Storage.
func (s *S3) Stat(ctx context.Context, sha string) (Info, error) {
	if !hexRE.MatchString(sha) {
		return Info{}, fmt.Errorf("blob: invalid sha256 %q", sha)
	}
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(sha), minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return Info{}, fmt.Errorf("blob: %s: %s: %w", s.cfg, sha, os.ErrNotExist)
		}
		return Info{}, fmt.Errorf("blob: %s: %w", s.cfg, err)
	}
	return Info{SHA256: sha, Size: st.Size}, nil
}

// Open implements Storage. The object is read lazily: each read after a
// seek issues one ranged GET that streams from the offset, so memory stays
// bounded whatever the object's size.
func (s *S3) Open(ctx context.Context, sha string) (Object, error) {
	info, err := s.Stat(ctx, sha)
	if err != nil {
		return nil, err
	}
	return &s3Object{ctx: ctx, s: s, key: s.key(sha), size: info.Size}, nil
}

type s3Object struct {
	ctx  context.Context
	s    *S3
	key  string
	size int64
	off  int64
	body io.ReadCloser
}

func (o *s3Object) Size() int64 { return o.size }

func (o *s3Object) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		opts := minio.GetObjectOptions{}
		if o.off > 0 {
			if err := opts.SetRange(o.off, 0); err != nil {
				return 0, fmt.Errorf("blob: %w", err)
			}
		}
		body, _, _, err := o.s.core.GetObject(o.ctx, o.s.cfg.Bucket, o.key, opts)
		if err != nil {
			return 0, fmt.Errorf("blob: %s: reading %s: %w", o.s.cfg, o.key, err)
		}
		o.body = body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if err == io.EOF && o.off < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, errors.New("blob: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("blob: negative position")
	}
	if abs != o.off && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.off = abs
	return abs, nil
}

func (o *s3Object) Close() error {
	if o.body != nil {
		err := o.body.Close()
		o.body = nil
		return err
	}
	return nil
}

func isNotFound(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, "NotFound":
		return true
	}
	return false
}

// hashingReader hashes and counts what it reads, and fails once more than
// limit bytes (when limit > 0) came through. It records the source's own
// error so that it is reported as such, not as an upload failure.
type hashingReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	limit    int64
	tooLarge bool
	err      error
	// want, when set, is the expected hex SHA-256: at the end of the
	// source, a different hash is returned as an error instead of io.EOF
	// (and recorded in mismatch).
	want     string
	mismatch string
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if h.limit > 0 && h.n > h.limit {
		h.tooLarge = true
		return n, ErrTooLarge
	}
	if err == io.EOF && h.want != "" {
		if got := hex.EncodeToString(h.h.Sum(nil)); got != h.want {
			h.mismatch = got
			return n, ErrHashMismatch
		}
	}
	if err != nil && err != io.EOF {
		h.err = err
	}
	return n, err
}
