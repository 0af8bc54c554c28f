package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/project"
)

// Blob routes: payloads uploaded by uptrust push and read back by uptrust
// pull, addressed by their SHA-256. They stream (no MaxBody limit, no
// mutation mutex: an upload changes nothing devices see until a push
// references the blob) and are resumable: HEAD tells how many bytes of an
// unfinished upload the storage holds (Upload-Offset), PUT continues at
// that offset.

// BlobInfo is a stored blob.
type BlobInfo struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Upload headers.
const (
	// HeaderUploadOffset is the offset at which a PUT's body starts, and
	// in answers the offset the upload continues at.
	HeaderUploadOffset = "Upload-Offset"
	// HeaderUploadLength is the blob's full size.
	HeaderUploadLength = "Upload-Length"
)

// blobIdle is how long a blob transfer may stall: the server's overall
// read and write timeouts are lifted for these routes, and each read or
// write moves the deadline this far ahead instead.
const blobIdle = 30 * time.Second

var shaPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// blobSHA returns the route's {sha256}, answering 400 when malformed.
func blobSHA(w http.ResponseWriter, r *http.Request) (string, bool) {
	sha := r.PathValue("sha256")
	if !shaPattern.MatchString(sha) {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a SHA-256 in lower-case hex (64 digits)", sha))
		return "", false
	}
	return sha, true
}

func (a *API) uploader(w http.ResponseWriter, r *http.Request) (blob.Uploader, bool) {
	u, ok := a.p.Blobs.(blob.Uploader)
	if !ok {
		writeProblem(w, r, http.StatusNotImplemented, fmt.Sprintf("the blob storage %s does not take uploads", a.p.Blobs))
		return nil, false
	}
	return u, true
}

func (a *API) headBlob(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	sha, ok := blobSHA(w, r)
	if !ok {
		return
	}
	info, err := a.p.Blobs.Stat(r.Context(), sha)
	if err == nil {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.Header().Set("ETag", `"`+sha+`"`)
		w.WriteHeader(http.StatusOK)
		return
	}
	if !errors.Is(err, os.ErrNotExist) {
		a.blobStorageFailed(w, r, err)
		return
	}
	u, ok := a.uploader(w, r)
	if !ok {
		return
	}
	off, err := u.UploadOffset(r.Context(), sha)
	if err != nil {
		a.blobStorageFailed(w, r, err)
		return
	}
	w.Header().Set(HeaderUploadOffset, strconv.FormatInt(off, 10))
	writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no blob %s (an unfinished upload holds %d bytes)", sha, off))
}

func (a *API) getBlob(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	sha, ok := blobSHA(w, r)
	if !ok {
		return
	}
	o, err := a.p.Blobs.Open(r.Context(), sha)
	if errors.Is(err, os.ErrNotExist) {
		writeProblem(w, r, http.StatusNotFound, "no blob "+sha)
		return
	}
	if err != nil {
		a.blobStorageFailed(w, r, err)
		return
	}
	defer o.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(blobIdle))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+sha+`"`)
	http.ServeContent(idleWriter{w, rc}, r, "", time.Time{}, o)
}

func (a *API) putBlob(w http.ResponseWriter, r *http.Request, _ project.Principal) {
	sha, ok := blobSHA(w, r)
	if !ok {
		return
	}
	size, err := uploadHeader(r, HeaderUploadLength, -1)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	offset, err := uploadHeader(r, HeaderUploadOffset, 0)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if offset > size {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("%s %d is past %s %d", HeaderUploadOffset, offset, HeaderUploadLength, size))
		return
	}
	if r.ContentLength >= 0 && offset+r.ContentLength > size {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("a body of %d bytes at offset %d goes past %s %d", r.ContentLength, offset, HeaderUploadLength, size))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("a blob upload must be application/octet-stream, not %q", r.Header.Get("Content-Type")))
		return
	}
	limit := a.p.Config.MaxPayloadBytes
	if limit > 0 && size > limit {
		writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("a blob of %d bytes is larger than this project's max_payload_bytes %d", size, limit))
		return
	}
	u, ok := a.uploader(w, r)
	if !ok {
		return
	}
	if info, err := a.p.Blobs.Stat(r.Context(), sha); err == nil {
		if info.Size != size {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("blob %s is stored with %d bytes, not %s %d", sha, info.Size, HeaderUploadLength, size))
			return
		}
		writeJSON(w, r, http.StatusOK, BlobInfo{SHA256: sha, Size: info.Size})
		return
	} else if !errors.Is(err, os.ErrNotExist) {
		a.blobStorageFailed(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(blobIdle))
	info, err := u.Upload(r.Context(), sha, size, offset, limit, idleReader{r.Body, rc})
	// The server's write timeout ran from the request's start: an upload
	// may have taken longer.
	_ = rc.SetWriteDeadline(time.Now().Add(blobIdle))
	if err == nil {
		writeJSON(w, r, http.StatusCreated, BlobInfo{SHA256: info.SHA256, Size: info.Size})
		return
	}
	var oe *blob.OffsetError
	switch {
	case errors.As(err, &oe):
		w.Header().Set(HeaderUploadOffset, strconv.FormatInt(oe.Expected, 10))
		writeProblem(w, r, http.StatusConflict, err.Error())
	case errors.Is(err, blob.ErrBusy):
		writeProblem(w, r, http.StatusConflict, err.Error())
	case errors.Is(err, blob.ErrHashMismatch):
		writeProblem(w, r, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, blob.ErrTooLarge):
		writeProblem(w, r, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, blob.ErrIncomplete), errors.Is(err, blob.ErrTooLong):
		// The upload is kept at its checkpoint; the client (if it is
		// still there) continues from the offset HEAD gives.
		if off, oerr := u.UploadOffset(r.Context(), sha); oerr == nil {
			w.Header().Set(HeaderUploadOffset, strconv.FormatInt(off, 10))
		}
		writeProblem(w, r, http.StatusBadRequest, err.Error())
	default:
		a.blobStorageFailed(w, r, err)
	}
}

// uploadHeader parses a non-negative integer header; def is its value when
// absent (-1: required).
func uploadHeader(r *http.Request, name string, def int64) (int64, error) {
	v := r.Header.Get(name)
	if v == "" {
		if def < 0 {
			return 0, fmt.Errorf("header %s (the blob's size in bytes) is required", name)
		}
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("header %s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

// blobStorageFailed answers 503: the storage could not be read or written.
func (a *API) blobStorageFailed(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, r, http.StatusServiceUnavailable, "the blob storage failed: "+err.Error())
}

// idleReader moves the read deadline ahead on every read, so that a
// transfer may take as long as it needs while it makes progress.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (i idleReader) Read(p []byte) (int, error) {
	_ = i.rc.SetReadDeadline(time.Now().Add(blobIdle))
	return i.r.Read(p)
}

// idleWriter moves the write deadline ahead on every write.
type idleWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (i idleWriter) Write(p []byte) (int, error) {
	_ = i.rc.SetWriteDeadline(time.Now().Add(blobIdle))
	return i.ResponseWriter.Write(p)
}
