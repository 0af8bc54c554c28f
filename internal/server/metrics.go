package server

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/uptrust/uptrust/internal/report"
)

// route is one of the fixed set of routes the server counts requests for.
// The set is closed so that every counter exists before the first request
// and the hot path never allocates or takes a lock to find one.
type route int

const (
	routeMetadata route = iota
	routePayload
	routeReports
	routeHealthz
	routeMetrics
	routeNotFound
	numRoutes
)

var routeNames = [numRoutes]string{
	routeMetadata: "metadata",
	routePayload:  "payload",
	routeReports:  "reports",
	routeHealthz:  "healthz",
	routeMetrics:  "metrics",
	routeNotFound: "notfound",
}

// statusCodes are the response codes counted individually; any other code
// is counted as "other".
var statusCodes = [...]int{
	http.StatusOK,
	http.StatusAccepted,
	http.StatusPartialContent,
	http.StatusNotModified,
	http.StatusBadRequest,
	http.StatusNotFound,
	http.StatusMethodNotAllowed,
	http.StatusPreconditionFailed,
	http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType,
	http.StatusRequestedRangeNotSatisfiable,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusServiceUnavailable,
}

const numCodes = len(statusCodes) + 1 // last slot is "other"

// codeIndex maps a status code to its counter slot.
func codeIndex(code int) int {
	switch code {
	case http.StatusOK:
		return 0
	case http.StatusAccepted:
		return 1
	case http.StatusPartialContent:
		return 2
	case http.StatusNotModified:
		return 3
	}
	for i, c := range statusCodes {
		if c == code {
			return i
		}
	}
	return numCodes - 1
}

// latencyBuckets are the upper bounds of the request duration histogram.
var latencyBuckets = [...]time.Duration{
	100 * time.Microsecond,
	250 * time.Microsecond,
	500 * time.Microsecond,
	time.Millisecond,
	2500 * time.Microsecond,
	5 * time.Millisecond,
	10 * time.Millisecond,
	25 * time.Millisecond,
	50 * time.Millisecond,
	100 * time.Millisecond,
	250 * time.Millisecond,
	500 * time.Millisecond,
	time.Second,
	2500 * time.Millisecond,
	5 * time.Second,
	10 * time.Second,
}

const numBuckets = len(latencyBuckets) + 1 // last slot is +Inf

// histogram is a fixed-bucket latency histogram. Buckets hold
// non-cumulative counts; the exposition makes them cumulative.
type histogram struct {
	buckets [numBuckets]atomic.Uint64
	sumNs   atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNs.Add(int64(d))
}

// reportOutcomes are the accepted values of report.Report.Outcome, in
// exposition order.
var reportOutcomes = report.Outcomes()

func outcomeIndex(o report.Outcome) int {
	for i, v := range reportOutcomes {
		if v == o {
			return i
		}
	}
	return -1
}

// metrics holds every counter the server exports. All fields are updated
// with atomics; it is safe for concurrent use and never locks.
type metrics struct {
	requests      [numRoutes][numCodes]atomic.Uint64
	latency       [numRoutes]histogram
	metadataBytes atomic.Uint64
	payloadBytes  atomic.Uint64
	reports       [len(reportOutcomes)]atomic.Uint64
	reloadsOK     atomic.Uint64
	reloadsErr    atomic.Uint64
	resignsChg    atomic.Uint64
	resignsUnchg  atomic.Uint64
	resignsErr    atomic.Uint64
	connsOpen     atomic.Int64 // connections accepted and not yet closed
	connsMax      atomic.Int64 // the connection cap, 0 before Run
}

// done records one finished request.
func (m *metrics) done(r route, code int, d time.Duration) {
	m.requests[r][codeIndex(code)].Add(1)
	m.latency[r].observe(d)
}

// appendExposition appends the Prometheus text exposition (format 0.0.4)
// of all metrics to b. generation is the loaded content generation, and
// loaded says whether any content is loaded.
func (m *metrics) appendExposition(b []byte, generation int64, loaded bool) []byte {
	b = append(b, "# HELP uptrust_http_requests_total HTTP requests by route and status code.\n"...)
	b = append(b, "# TYPE uptrust_http_requests_total counter\n"...)
	for r := range numRoutes {
		for c := range numCodes {
			n := m.requests[r][c].Load()
			if n == 0 {
				continue
			}
			b = append(b, `uptrust_http_requests_total{route="`...)
			b = append(b, routeNames[r]...)
			b = append(b, `",code="`...)
			if c == numCodes-1 {
				b = append(b, "other"...)
			} else {
				b = strconv.AppendInt(b, int64(statusCodes[c]), 10)
			}
			b = append(b, `"} `...)
			b = strconv.AppendUint(b, n, 10)
			b = append(b, '\n')
		}
	}

	b = append(b, "# HELP uptrust_http_request_duration_seconds Time to serve a request, by route.\n"...)
	b = append(b, "# TYPE uptrust_http_request_duration_seconds histogram\n"...)
	for r := range numRoutes {
		h := &m.latency[r]
		var cum uint64
		for i := range numBuckets {
			cum += h.buckets[i].Load()
			b = append(b, `uptrust_http_request_duration_seconds_bucket{route="`...)
			b = append(b, routeNames[r]...)
			b = append(b, `",le="`...)
			if i == numBuckets-1 {
				b = append(b, "+Inf"...)
			} else {
				b = strconv.AppendFloat(b, latencyBuckets[i].Seconds(), 'g', -1, 64)
			}
			b = append(b, `"} `...)
			b = strconv.AppendUint(b, cum, 10)
			b = append(b, '\n')
		}
		b = append(b, `uptrust_http_request_duration_seconds_sum{route="`...)
		b = append(b, routeNames[r]...)
		b = append(b, `"} `...)
		b = strconv.AppendFloat(b, time.Duration(h.sumNs.Load()).Seconds(), 'g', -1, 64)
		b = append(b, '\n')
		b = append(b, `uptrust_http_request_duration_seconds_count{route="`...)
		b = append(b, routeNames[r]...)
		b = append(b, `"} `...)
		b = strconv.AppendUint(b, cum, 10)
		b = append(b, '\n')
	}

	b = appendCounter(b, "uptrust_repo_metadata_bytes_total", "Metadata body bytes sent.", m.metadataBytes.Load())
	b = appendCounter(b, "uptrust_repo_payload_bytes_total", "Payload body bytes sent.", m.payloadBytes.Load())

	b = append(b, "# HELP uptrust_reports_total Anonymous device reports accepted, by outcome.\n"...)
	b = append(b, "# TYPE uptrust_reports_total counter\n"...)
	for i, o := range reportOutcomes {
		b = append(b, `uptrust_reports_total{outcome="`...)
		b = append(b, o...)
		b = append(b, `"} `...)
		b = strconv.AppendUint(b, m.reports[i].Load(), 10)
		b = append(b, '\n')
	}

	b = append(b, "# HELP uptrust_content_reloads_total Content reloads from the source, by result.\n"...)
	b = append(b, "# TYPE uptrust_content_reloads_total counter\n"...)
	b = append(b, `uptrust_content_reloads_total{result="ok"} `...)
	b = strconv.AppendUint(b, m.reloadsOK.Load(), 10)
	b = append(b, "\nuptrust_content_reloads_total{result=\"error\"} "...)
	b = strconv.AppendUint(b, m.reloadsErr.Load(), 10)
	b = append(b, '\n')

	b = append(b, "# HELP uptrust_resigns_total Calls to re-sign online metadata, by result.\n"...)
	b = append(b, "# TYPE uptrust_resigns_total counter\n"...)
	b = append(b, `uptrust_resigns_total{result="changed"} `...)
	b = strconv.AppendUint(b, m.resignsChg.Load(), 10)
	b = append(b, "\nuptrust_resigns_total{result=\"unchanged\"} "...)
	b = strconv.AppendUint(b, m.resignsUnchg.Load(), 10)
	b = append(b, "\nuptrust_resigns_total{result=\"error\"} "...)
	b = strconv.AppendUint(b, m.resignsErr.Load(), 10)
	b = append(b, '\n')

	b = append(b, "# HELP uptrust_connections_open Connections open now.\n"...)
	b = append(b, "# TYPE uptrust_connections_open gauge\n"...)
	b = append(b, "uptrust_connections_open "...)
	b = strconv.AppendInt(b, m.connsOpen.Load(), 10)
	b = append(b, "\n# HELP uptrust_connections_max Connections allowed at once; more wait to be accepted.\n"...)
	b = append(b, "# TYPE uptrust_connections_max gauge\n"...)
	b = append(b, "uptrust_connections_max "...)
	b = strconv.AppendInt(b, m.connsMax.Load(), 10)
	b = append(b, '\n')

	b = append(b, "# HELP uptrust_content_loaded Whether content has been loaded (1) or not (0).\n"...)
	b = append(b, "# TYPE uptrust_content_loaded gauge\n"...)
	if loaded {
		b = append(b, "uptrust_content_loaded 1\n"...)
	} else {
		b = append(b, "uptrust_content_loaded 0\n"...)
	}
	b = append(b, "# HELP uptrust_content_generation Source generation of the content being served.\n"...)
	b = append(b, "# TYPE uptrust_content_generation gauge\n"...)
	b = append(b, "uptrust_content_generation "...)
	b = strconv.AppendInt(b, generation, 10)
	b = append(b, '\n')
	return b
}

func appendCounter(b []byte, name, help string, v uint64) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, help...)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, " counter\n"...)
	b = append(b, name...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, v, 10)
	b = append(b, '\n')
	return b
}
