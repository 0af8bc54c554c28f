package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/report"
)

// MaxReportBytes is the largest report body accepted. A valid report is
// well under 300 bytes.
const MaxReportBytes = 4 << 10

// ErrReportsFull is returned (wrapped) by a ReportSink that refuses a
// report because the day's counters reached their cap; the client is told
// to retry the next UTC day.
var ErrReportsFull = errors.New("server: report counters full for today")

// serveReport accepts one anonymous report. Order of checks: method, rate
// limit by client address and in total (so a flood costs no parsing),
// media type, body size, JSON shape, field validation, product and version
// against the release repository (snapshot.countable; 422 when unknown),
// then the sink.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request, start time.Time) {
	code := s.handleReport(w, r)
	s.metrics.done(routeReports, code, s.clock.Now().Sub(start))
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = hdrAllowPost
		return writeProblem(w, http.StatusMethodNotAllowed, "reports are sent with POST")
	}
	if !s.limiter.allow(clientAddr(r, s.reportProxies), s.clock.Now()) {
		w.Header().Set("Retry-After", "1")
		return writeProblem(w, http.StatusTooManyRequests, "too many reports; retry later")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return writeProblem(w, http.StatusUnsupportedMediaType, "body must be application/json")
		}
	}
	rep, err := decodeReport(http.MaxBytesReader(w, r.Body, MaxReportBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return writeProblem(w, http.StatusRequestEntityTooLarge,
				"report body exceeds "+strconv.Itoa(MaxReportBytes)+" bytes")
		}
		return writeProblem(w, http.StatusBadRequest, err.Error())
	}
	if err := rep.Validate(); err != nil {
		return writeProblem(w, http.StatusBadRequest, err.Error())
	}
	snap := s.snap.Load()
	if snap == nil {
		w.Header().Set("Retry-After", "10")
		return writeProblem(w, http.StatusServiceUnavailable, "no content loaded yet; retry later")
	}
	rep, err = snap.countable(rep)
	if err != nil {
		return writeProblem(w, http.StatusUnprocessableEntity, err.Error())
	}
	now := s.clock.Now().UTC()
	if err := s.reports.AddReport(r.Context(), rep, now); err != nil {
		if errors.Is(err, ErrReportsFull) {
			next := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
			w.Header().Set("Retry-After", strconv.Itoa(int(next.Sub(now).Seconds())+1))
			return writeProblem(w, http.StatusServiceUnavailable, "the report counters are full for today; retry tomorrow")
		}
		// The detail stays in the log; the client learns only that it
		// should retry.
		s.logger.Error("report sink failed", "err", err)
		return writeProblem(w, http.StatusInternalServerError, "report not stored; retry later")
	}
	if i := outcomeIndex(rep.Outcome); i >= 0 {
		s.metrics.reports[i].Add(1)
	}
	w.Header()["Cache-Control"] = hdrNoStore
	w.WriteHeader(http.StatusAccepted)
	return http.StatusAccepted
}

// decodeReport reads exactly one JSON object with only report.Report's
// fields.
func decodeReport(body io.Reader) (report.Report, error) {
	var rep report.Report
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return report.Report{}, err
		}
		return report.Report{}, fmt.Errorf("malformed report: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return report.Report{}, err
		}
		return report.Report{}, errors.New("malformed report: data after the JSON object")
	}
	return rep, nil
}

// problem is an RFC 9457 problem details object. Type is always
// "about:blank", so Title is the status phrase; Detail is meant for the
// client and never carries internal error text.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// writeProblem writes an application/problem+json answer and returns code.
func writeProblem(w http.ResponseWriter, code int, detail string) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(problem{Type: "about:blank", Title: http.StatusText(code), Status: code, Detail: detail})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNosniff
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
	return code
}

// tokenBucket is the total rate limit of reports: it holds up to burst
// tokens and gains rate tokens per second. Safe for concurrent use.
type tokenBucket struct {
	mu    sync.Mutex
	rate  float64
	burst float64
	b     bucket
	begun bool
}

func newTokenBucket(rate float64, burst int) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), b: bucket{tokens: float64(burst)}}
}

// allow takes one token at time now and reports whether there was one. A
// clock that goes backwards adds no tokens.
func (t *tokenBucket) allow(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.begun {
		t.b.last, t.begun = now, true
	}
	return t.b.take(now, t.rate, t.burst)
}
