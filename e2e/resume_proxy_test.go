package e2e

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
)

// bigSize is the payload size of the resume tests: a few checkpoints
// (agent.CheckpointBytes) and a tail that ends mid-buffer.
const bigSize = 10<<20 + 12345

// publishBig publishes version with a deterministic random image of size
// bytes and rolls it out to everyone.
func (w *world) publishBig(version string, sv uint64, size int) {
	w.t.Helper()
	var seed [32]byte
	copy(seed[:], version)
	img := make([]byte, size)
	rand.NewChaCha8(seed).Read(img)
	w.images[version] = img
	if _, err := w.p.AddRelease(context.Background(), project.ReleaseSpec{Product: product, Version: version,
		Payload: bytes.NewReader(img), Kind: release.KindSecurity, SecurityVersion: sv}); err != nil {
		w.t.Fatalf("publishing %s: %v", version, err)
	}
	w.reload()
	w.rollout(version, 100)
}

// plan says how the tap treats one payload request.
type plan struct {
	// cut closes the connection after this many body bytes (< 0: never).
	cut int64
	// stripRange forwards the request without Range and If-Range, like a
	// server or cache that does not support them.
	stripRange bool
	// etag replaces the ETag of the answer.
	etag string
	// changed serves other bytes (every byte flipped) under the same
	// name, as a server whose file changed would.
	changed bool
	// contentRange replaces the Content-Range of a 206 answer, which is
	// then sent without Content-Length.
	contentRange string
	// extra appends this many junk bytes to the body, which is then sent
	// without Content-Length.
	extra int
}

var pass = plan{cut: -1}

// served is one payload request seen by the tap.
type served struct {
	rangeHdr, ifRange string
	header            http.Header // all of the request's headers
	status            int
	bytes             int64
}

// tap serves a version's payload between the devices and the real server:
// it forwards each request (headers that matter included), applies the plan
// for that request, and counts the body bytes it sent.
type tap struct {
	w    *world
	plan func(i int) plan // i: 0-based index of the request
	hc   *http.Client

	mu   sync.Mutex
	reqs []served
}

// tapPayload installs a tap on version's payload; plan may be nil (pass
// everything through).
func (w *world) tapPayload(version string, p func(i int) plan) *tap {
	if p == nil {
		p = func(int) plan { return pass }
	}
	tp := &tap{w: w, plan: p, hc: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	w.t.Cleanup(tp.hc.CloseIdleConnections)
	w.proxy.on(isPayload(version), tp.serve)
	return tp
}

// total is the number of body bytes sent so far.
func (tp *tap) total() int64 { return tp.since(0) }

// since is the number of body bytes sent in answer to request i and later
// ones. (A request cut by a simulated power loss may still be counting
// bytes the kernel accepted; counting by request keeps them apart.)
func (tp *tap) since(i int) int64 {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var n int64
	for _, r := range tp.reqs[min(i, len(tp.reqs)):] {
		n += r.bytes
	}
	return n
}

func (tp *tap) requests() []served {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]served(nil), tp.reqs...)
}

func (tp *tap) serve(rw http.ResponseWriter, r *http.Request) {
	tp.mu.Lock()
	i := len(tp.reqs)
	tp.reqs = append(tp.reqs, served{rangeHdr: r.Header.Get("Range"), ifRange: r.Header.Get("If-Range"), header: r.Header.Clone()})
	p := tp.plan(i)
	tp.mu.Unlock()
	count := func(n int) {
		tp.mu.Lock()
		tp.reqs[i].bytes += int64(n)
		tp.mu.Unlock()
	}

	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, tp.w.direct+r.URL.Path, nil)
	if err != nil {
		rw.WriteHeader(http.StatusBadGateway)
		return
	}
	if !p.stripRange {
		if v := r.Header.Get("Range"); v != "" {
			req.Header.Set("Range", v)
		}
		if v := r.Header.Get("If-Range"); v != "" {
			req.Header.Set("If-Range", v)
		}
	}
	resp, err := tp.hc.Do(req)
	if err != nil {
		rw.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Length", "Content-Range", "Content-Type", "ETag"} {
		if v := resp.Header.Get(k); v != "" {
			rw.Header().Set(k, v)
		}
	}
	if p.etag != "" {
		rw.Header().Set("ETag", p.etag)
	}
	if p.contentRange != "" && resp.StatusCode == http.StatusPartialContent {
		rw.Header().Set("Content-Range", p.contentRange)
	}
	if p.extra > 0 || p.contentRange != "" {
		rw.Header().Del("Content-Length")
	}
	tp.mu.Lock()
	tp.reqs[i].status = resp.StatusCode
	tp.mu.Unlock()
	rw.WriteHeader(resp.StatusCode)

	var body io.Reader = resp.Body
	if p.cut >= 0 {
		body = io.LimitReader(resp.Body, p.cut)
	}
	buf := make([]byte, 32<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if p.changed {
				for i := range buf[:n] {
					buf[i] ^= 0xff
				}
			}
			m, werr := rw.Write(buf[:n])
			count(m)
			if werr != nil {
				return
			}
		}
		if rerr != nil {
			break
		}
	}
	if p.cut >= 0 {
		// Everything counted reaches the device; then the connection
		// drops mid-body.
		rw.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	if p.extra > 0 {
		m, _ := rw.Write(make([]byte, p.extra))
		count(m)
	}
}

// firstCut cuts the first request after n bytes and passes the rest.
func firstCut(n int64) func(int) plan {
	return func(i int) plan {
		if i == 0 {
			return plan{cut: n}
		}
		return pass
	}
}

// helper for tests that need a *testing.T-bound fatal on tap counts.
func wantRequests(t *testing.T, tp *tap, n int) []served {
	t.Helper()
	reqs := tp.requests()
	if len(reqs) != n {
		t.Fatalf("%d payload requests, want %d: %+v", len(reqs), n, reqs)
	}
	return reqs
}
