package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// S3 uploads (Uploader): a multipart upload straight at the content
// address <prefix>sha256/<2>/<sha>, so completing it is the publication
// (no server-side copy), and beside it the checkpoint object
// <prefix>uploads/<sha>.json holding the upload id, the parts completed in
// order, the offset they reach and the SHA-256 state there. The checkpoint
// is rewritten after each part, so the offset is always a multiple of the
// part size (a part cut short by the reader is dropped and sent again).
// The upload is completed only after the hash of all bytes matched; on a
// mismatch it is aborted and the checkpoint removed.
//
// Two uploads of one blob at the same time (say on two replicas) are not
// excluded: both send the same bytes as the same part numbers, the later
// checkpoint wins, and the one that completes second fails and finds the
// blob stored when it asks again.

// s3UploadParallel is how many parts of one Upload go up at once; with the
// part being filled, an Upload holds at most (s3UploadParallel+1) ×
// s3PartSize bytes of buffers.
const s3UploadParallel = 2

// s3Bufs keeps part buffers between uploads, so that one upload after
// another does not leave buffers for the collector each time.
var s3Bufs = sync.Pool{New: func() any { b := make([]byte, s3PartSize); return &b }}

func (s *S3) stateKey(sha string) string { return s.cfg.Prefix + "uploads/" + sha + ".json" }

// readState returns sha's checkpoint, a zero one when there is none.
func (s *S3) readState(ctx context.Context, sha string) (uploadState, error) {
	o, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, s.stateKey(sha), minio.GetObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return uploadState{}, nil
		}
		return uploadState{}, fmt.Errorf("blob: %s: upload checkpoint of %s: %w", s.cfg, sha, err)
	}
	defer o.Close()
	var st uploadState
	if err := json.NewDecoder(io.LimitReader(o, 4<<20)).Decode(&st); err != nil {
		return uploadState{}, fmt.Errorf("blob: %s: upload checkpoint of %s: %w", s.cfg, sha, err)
	}
	return st, nil
}

func (s *S3) writeState(ctx context.Context, sha string, st uploadState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	_, err = s.client.PutObject(ctx, s.cfg.Bucket, s.stateKey(sha), bytes.NewReader(b), int64(len(b)),
		minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("blob: %s: writing the upload checkpoint of %s: %w", s.cfg, sha, err)
	}
	return nil
}

// discard aborts sha's multipart upload and removes its checkpoint.
func (s *S3) discard(ctx context.Context, sha string, st uploadState) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if st.UploadID != "" {
		_ = s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, s.key(sha), st.UploadID)
	}
	_ = s.client.RemoveObject(ctx, s.cfg.Bucket, s.stateKey(sha), minio.RemoveObjectOptions{})
}

// UploadOffset implements Uploader.
func (s *S3) UploadOffset(ctx context.Context, sha string) (int64, error) {
	if !hexRE.MatchString(sha) {
		return 0, fmt.Errorf("blob: invalid sha256 %q", sha)
	}
	st, err := s.readState(ctx, sha)
	return st.Offset, err
}

// Upload implements Uploader.
func (s *S3) Upload(ctx context.Context, sha string, size, offset, limit int64, r io.Reader) (Info, error) {
	if err := checkUpload(sha, size, offset, limit); err != nil {
		return Info{}, err
	}
	if info, err := s.Stat(ctx, sha); err == nil {
		return info, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Info{}, err
	}
	// Storage calls go on when the client goes away (ctx is the request's):
	// the parts in flight finish and the checkpoint is written.
	sctx := context.WithoutCancel(ctx)
	st, err := s.readState(ctx, sha)
	if err != nil {
		return Info{}, err
	}
	if st.UploadID != "" && (st.Size != size || st.PartSize != s3PartSize) {
		s.discard(ctx, sha, st)
		st = uploadState{}
	}
	if offset != st.Offset {
		return Info{}, &OffsetError{SHA256: sha, Got: offset, Expected: st.Offset}
	}
	if size == 0 {
		return s.putEmpty(ctx, sha)
	}
	if st.UploadID == "" {
		id, err := s.core.NewMultipartUpload(ctx, s.cfg.Bucket, s.key(sha), minio.PutObjectOptions{ContentType: "application/octet-stream"})
		if err != nil {
			return Info{}, fmt.Errorf("blob: %s: starting the upload of %s: %w", s.cfg, sha, err)
		}
		st = uploadState{Size: size, PartSize: s3PartSize, UploadID: id}
		// Written at once so that RemoveUploads finds the upload even if
		// no part ever completes.
		if err := s.writeState(sctx, sha, st); err != nil {
			_ = s.core.AbortMultipartUpload(sctx, s.cfg.Bucket, s.key(sha), id)
			return Info{}, err
		}
	}
	h, err := st.resumeHash()
	if err != nil {
		return Info{}, err
	}

	// Parts go up s3UploadParallel at a time while the next one is read;
	// the checkpoint advances over the parts completed in order.
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		upErr    error
		finished = map[int]partDone{}
	)
	free := make(chan []byte, s3UploadParallel+1)
	for range s3UploadParallel + 1 {
		free <- nil
	}
	commit := func() error { // with mu held
		advanced := false
		for {
			d, ok := finished[len(st.Parts)+1]
			if !ok {
				break
			}
			delete(finished, d.n)
			st.Parts = append(st.Parts, s3Part{N: d.n, ETag: d.etag})
			st.Offset, st.Hash = d.end, d.hash
			advanced = true
		}
		if advanced && st.Offset < size {
			return s.writeState(sctx, sha, st)
		}
		return nil
	}
	off := st.Offset
	n := len(st.Parts)
	src := ctxReader{ctx, r}
	var rerr error
	for off < size {
		mu.Lock()
		failed := upErr != nil
		mu.Unlock()
		if failed {
			break
		}
		buf := <-free
		if buf == nil {
			buf = *(s3Bufs.Get().(*[]byte))
		}
		want := min(int64(s3PartSize), size-off)
		got, err := io.ReadFull(src, buf[:want])
		if int64(got) < want {
			// The part is cut short: dropped, sent again on resume.
			free <- buf
			rerr = err
			break
		}
		h.Write(buf[:got])
		off += int64(got)
		n++
		d := partDone{n: n, len: int64(got), end: off, hash: marshalHash(h)}
		wg.Add(1)
		go func(buf []byte, d partDone) {
			defer wg.Done()
			p, err := s.core.PutObjectPart(sctx, s.cfg.Bucket, s.key(sha), st.UploadID, d.n,
				bytes.NewReader(buf[:d.len]), d.len,
				minio.PutObjectPartOptions{DisableContentSha256: true})
			free <- buf
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if upErr == nil {
					upErr = fmt.Errorf("blob: %s: uploading part %d of %s: %w", s.cfg, d.n, sha, err)
				}
				return
			}
			d.etag = p.ETag
			finished[d.n] = d
			if err := commit(); err != nil && upErr == nil {
				upErr = err
			}
		}(buf, d)
	}
	wg.Wait()
	// Every buffer is back in free: keep them for the next upload.
	for range s3UploadParallel + 1 {
		if b := <-free; b != nil {
			s3Bufs.Put(&b)
		}
	}
	if upErr != nil {
		return Info{}, upErr
	}
	if off < size {
		if rerr == nil || rerr == io.EOF {
			rerr = io.ErrUnexpectedEOF
		}
		return Info{}, fmt.Errorf("%w: %s has %d of %d bytes: %w", ErrIncomplete, sha, st.Offset, size, rerr)
	}
	if extra(r) {
		return Info{}, fmt.Errorf("%w: %s is %d bytes", ErrTooLong, sha, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		s.discard(ctx, sha, st)
		return Info{}, fmt.Errorf("blob: uploaded content of %s hashes to %s: %w", sha, got, ErrHashMismatch)
	}
	parts := make([]minio.CompletePart, len(st.Parts))
	for i, p := range st.Parts {
		parts[i] = minio.CompletePart{PartNumber: p.N, ETag: p.ETag}
	}
	if _, err := s.core.CompleteMultipartUpload(sctx, s.cfg.Bucket, s.key(sha), st.UploadID, parts, minio.PutObjectOptions{}); err != nil {
		if info, serr := s.Stat(sctx, sha); serr == nil {
			return info, nil // completed by a concurrent upload
		}
		return Info{}, fmt.Errorf("blob: %s: completing the upload of %s: %w", s.cfg, sha, err)
	}
	_ = s.client.RemoveObject(sctx, s.cfg.Bucket, s.stateKey(sha), minio.RemoveObjectOptions{})
	return Info{SHA256: sha, Size: size}, nil
}

type partDone struct {
	n    int
	len  int64
	end  int64
	hash []byte
	etag string
}

var emptySHA256 = hex.EncodeToString(sha256.New().Sum(nil))

func (s *S3) putEmpty(ctx context.Context, sha string) (Info, error) {
	if sha != emptySHA256 {
		return Info{}, fmt.Errorf("blob: uploaded content of %s hashes to %s: %w", sha, emptySHA256, ErrHashMismatch)
	}
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(sha), bytes.NewReader(nil), 0, minio.PutObjectOptions{}); err != nil {
		return Info{}, fmt.Errorf("blob: %s: %w", s.cfg, err)
	}
	return Info{SHA256: sha, Size: 0}, nil
}

// RemoveUploads implements Uploader: it aborts the multipart upload and
// removes the checkpoint of every upload whose checkpoint was last written
// before cutoff.
func (s *S3) RemoveUploads(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	for o := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.cfg.Prefix + "uploads/"}) {
		if o.Err != nil {
			return n, fmt.Errorf("blob: %s: listing uploads: %w", s.cfg, o.Err)
		}
		sha, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, s.cfg.Prefix+"uploads/"), ".json")
		if !ok || !hexRE.MatchString(sha) || !o.LastModified.Before(cutoff) {
			continue
		}
		st, err := s.readState(ctx, sha)
		if err != nil {
			return n, err
		}
		s.discard(ctx, sha, st)
		n++
	}
	return n, nil
}
