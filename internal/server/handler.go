package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
)

// Paths of the fixed routes other than deviceapi.RepoPrefix and
// deviceapi.ReportsPath.
const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
	metricsPath = "/metrics"
)

// Bodies of the short plain-text answers, allocated once.
var (
	bodyNotFound         = []byte("404 page not found\n")
	bodyMethodNotAllowed = []byte("405 method not allowed\n")
	bodyNoContent        = []byte("503 no content loaded\n")
	bodyInternal         = []byte("500 internal server error\n")
	bodyStoreDown        = []byte("503 payload storage unavailable\n")
	lenStoreDown         = []string{"32"}
	hdrRetryStore        = []string{"10"}
	bodyOK               = []byte("ok\n")
	lenNotFound          = []string{"19"}
	lenMethodNotAllowed  = []string{"23"}
	lenNoContent         = []string{"22"}
	lenInternal          = []string{"26"}
	lenOK                = []string{"3"}
)

// handler is the Server seen as an http.Handler. It dispatches on the exact
// path with a switch and one map lookup instead of a ServeMux: the routes
// are few and fixed, and /repo/ is the hot path.
//
// Privacy: no request is logged, and errors are logged without the client's
// address (DESIGN.md: anonymous mode keeps no client addresses).
type handler Server

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := (*Server)(h)
	start := s.clock.Now()
	p := r.URL.Path
	if len(p) > len(deviceapi.RepoPrefix) && p[:len(deviceapi.RepoPrefix)] == deviceapi.RepoPrefix {
		if s.deviceGate != nil && r.Header["Signature-Input"] != nil && !s.deviceGate(w, r) {
			return
		}
		s.serveRepo(w, r, p, start)
		return
	}
	if s.devices != nil && p != deviceapi.ReportsPath && strings.HasPrefix(p, deviceapi.DevicePrefix) {
		s.devices.ServeHTTP(w, r)
		return
	}
	switch p {
	case deviceapi.ReportsPath:
		if s.reports == nil {
			s.writeText(w, r, routeNotFound, http.StatusNotFound, bodyNotFound, lenNotFound, start)
			return
		}
		s.serveReport(w, r, start)
	case healthzPath:
		s.serveHealthz(w, r, start)
	case readyzPath:
		s.serveReadyz(w, r, start)
	case metricsPath:
		if s.noPublicMetrics {
			s.writeText(w, r, routeNotFound, http.StatusNotFound, bodyNotFound, lenNotFound, start)
			return
		}
		s.serveMetrics(w, r, start)
	default:
		s.writeText(w, r, routeNotFound, http.StatusNotFound, bodyNotFound, lenNotFound, start)
	}
}

// serveRepo answers GET and HEAD under /repo/ from the current snapshot.
func (s *Server) serveRepo(w http.ResponseWriter, r *http.Request, p string, start time.Time) {
	snap := s.snap.Load()
	if snap == nil {
		s.writeText(w, r, routeMetadata, http.StatusServiceUnavailable, bodyNoContent, lenNoContent, start)
		return
	}
	if e := snap.metadata[p]; e != nil {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header()["Allow"] = hdrAllowRepo
			s.writeText(w, r, routeMetadata, http.StatusMethodNotAllowed, bodyMethodNotAllowed, lenMethodNotAllowed, start)
			return
		}
		s.serveMetadata(w, r, e, start)
		return
	}
	if e := snap.payloads[p]; e != nil {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header()["Allow"] = hdrAllowRepo
			s.writeText(w, r, routePayload, http.StatusMethodNotAllowed, bodyMethodNotAllowed, lenMethodNotAllowed, start)
			return
		}
		s.servePayload(w, r, e, start)
		return
	}
	// A missing document is a normal answer under TUF: clients probe for
	// the next root version on every check. A CDN may absorb those probes
	// for a minute; a new root then reaches devices at most that much later.
	w.Header()["Cache-Control"] = hdrMissing
	s.writeText(w, r, routeNotFound, http.StatusNotFound, bodyNotFound, lenNotFound, start)
}

// serveMetadata is the hot path. It makes no allocation of its own: every
// header value is a slice precomputed in the snapshot and assigned directly
// into the header map under its canonical key.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, e *metaEntry, start time.Time) {
	h := w.Header()
	h["Etag"] = e.etagHdr
	h["Cache-Control"] = e.cacheHdr
	if inm, ok := r.Header["If-None-Match"]; ok && etagMatches(inm, e.etag) {
		// RFC 9110 §15.4.5: a 304 carries the validators and caching
		// headers but neither body nor content headers.
		w.WriteHeader(http.StatusNotModified)
		s.metrics.done(routeMetadata, http.StatusNotModified, s.clock.Now().Sub(start))
		return
	}
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = e.contentLength
	h["X-Content-Type-Options"] = hdrNosniff
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		n, err := w.Write(e.body)
		s.metrics.metadataBytes.Add(uint64(n))
		if err != nil {
			// The client went away; nothing to answer and nothing worth
			// logging per request.
			s.metrics.done(routeMetadata, http.StatusOK, s.clock.Now().Sub(start))
			return
		}
	}
	s.metrics.done(routeMetadata, http.StatusOK, s.clock.Now().Sub(start))
}

// servePayload streams a payload file with http.ServeContent, which handles
// Range, If-Range and the conditional headers against the ETag set here.
// The file path comes from the snapshot, never from the URL, so no request
// can reach a file outside the content.
func (s *Server) servePayload(w http.ResponseWriter, r *http.Request, e *payloadEntry, start time.Time) {
	var f io.ReadSeeker
	var size int64
	if e.file.Path == "" {
		// In an object store: streamed through with bounded memory, never
		// redirected, so that devices talk to this server only.
		obj, err := e.store.OpenPayload(r.Context(), e.file.SHA256)
		if err != nil {
			s.logger.Error("payload unavailable", "path", r.URL.Path, "err", err)
			if errors.Is(err, os.ErrNotExist) {
				s.writeText(w, r, routePayload, http.StatusInternalServerError, bodyInternal, lenInternal, start)
				return
			}
			w.Header()["Retry-After"] = hdrRetryStore
			s.writeText(w, r, routePayload, http.StatusServiceUnavailable, bodyStoreDown, lenStoreDown, start)
			return
		}
		defer obj.Close()
		f, size = obj, obj.Size()
	} else {
		file, err := os.Open(e.file.Path)
		if err != nil {
			s.logger.Error("payload unavailable", "path", r.URL.Path, "err", err)
			s.writeText(w, r, routePayload, http.StatusInternalServerError, bodyInternal, lenInternal, start)
			return
		}
		defer file.Close()
		fi, err := file.Stat()
		if err != nil {
			s.logger.Error("payload unavailable", "path", r.URL.Path, "err", err)
			s.writeText(w, r, routePayload, http.StatusInternalServerError, bodyInternal, lenInternal, start)
			return
		}
		f, size = file, fi.Size()
	}
	if size != e.file.Size {
		// Never serve a blob that does not match what the metadata
		// promises; clients would reject it anyway after the download.
		s.logger.Error("payload size mismatch", "path", r.URL.Path, "file", e.file.Path,
			"want", e.file.Size, "have", size)
		s.writeText(w, r, routePayload, http.StatusInternalServerError, bodyInternal, lenInternal, start)
		return
	}
	h := w.Header()
	h["Etag"] = e.etagHdr
	h["Cache-Control"] = e.cacheHdr
	h["Content-Type"] = hdrOctetStream
	h["X-Content-Type-Options"] = hdrNosniff
	cw := countingWriter{ResponseWriter: w}
	http.ServeContent(&cw, r, "", time.Time{}, f)
	s.metrics.payloadBytes.Add(uint64(cw.n))
	s.metrics.done(routePayload, cw.status(), s.clock.Now().Sub(start))
}

func (s *Server) serveHealthz(w http.ResponseWriter, r *http.Request, start time.Time) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = hdrAllowRepo
		s.writeText(w, r, routeHealthz, http.StatusMethodNotAllowed, bodyMethodNotAllowed, lenMethodNotAllowed, start)
		return
	}
	w.Header()["Cache-Control"] = hdrNoStore
	s.writeText(w, r, routeHealthz, http.StatusOK, bodyOK, lenOK, start)
}

// serveReadyz answers 200 when the loaded content is a servable
// repository, else 503 with the reason.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request, start time.Time) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = hdrAllowRepo
		s.writeText(w, r, routeHealthz, http.StatusMethodNotAllowed, bodyMethodNotAllowed, lenMethodNotAllowed, start)
		return
	}
	w.Header()["Cache-Control"] = hdrNoStore
	switch why := s.notReady(); {
	case why == "no content loaded":
		s.writeText(w, r, routeHealthz, http.StatusServiceUnavailable, bodyNoContent, lenNoContent, start)
	case why != "":
		body := []byte("503 " + why + "\n")
		s.writeText(w, r, routeHealthz, http.StatusServiceUnavailable, body, []string{strconv.Itoa(len(body))}, start)
	default:
		s.writeText(w, r, routeHealthz, http.StatusOK, bodyOK, lenOK, start)
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, start time.Time) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = hdrAllowRepo
		s.writeText(w, r, routeMetrics, http.StatusMethodNotAllowed, bodyMethodNotAllowed, lenMethodNotAllowed, start)
		return
	}
	var gen int64
	snap := s.snap.Load()
	if snap != nil {
		gen = snap.generation
	}
	b := s.metrics.appendExposition(make([]byte, 0, 16<<10), gen, snap != nil)
	h := w.Header()
	h.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	h["Cache-Control"] = hdrNoStore
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	s.metrics.done(routeMetrics, http.StatusOK, s.clock.Now().Sub(start))
}

// writeText writes a short constant plain-text answer and counts it.
func (s *Server) writeText(w http.ResponseWriter, r *http.Request, rt route, code int, body []byte, length []string, start time.Time) {
	h := w.Header()
	h["Content-Type"] = hdrTextPlain
	h["Content-Length"] = length
	h["X-Content-Type-Options"] = hdrNosniff
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	s.metrics.done(rt, code, s.clock.Now().Sub(start))
}

// countingWriter records the status code and body bytes of a response. It
// forwards io.ReaderFrom so that payloads still go out with sendfile.
type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, src)
	}
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}
