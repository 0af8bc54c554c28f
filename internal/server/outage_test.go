package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSourceOutage: while the source (the database) fails, /repo/ keeps
// answering from the content loaded before, and /readyz answers 503 saying
// since when the database is unreachable (the first failure, not the
// latest), without the error (it may name hosts; it is logged); the first reload that reaches it makes /readyz 200 again,
// whether or not the generation changed meanwhile.
func TestSourceOutage(t *testing.T) {
	e := newTestEnv(t, Config{})
	c, _, _ := testContent(t)
	c.Metadata["/repo/fleet/metadata/1.root.json"] = []byte(`{"signed":{"_type":"root","version":1}}`)
	e.source.set(2, c)
	if err := e.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, want := e.do(t, http.MethodGet, timestampPath, nil)
	if resp, body := e.do(t, http.MethodGet, readyzPath, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz before the outage: %d %q", resp.StatusCode, body)
	}

	for _, recover := range []struct {
		name string
		gen  int64
	}{{"same generation", 2}, {"new generation", 3}} {
		down := e.clock.Now()
		e.source.mu.Lock()
		e.source.genErr = errors.New("connection refused")
		e.source.mu.Unlock()
		for range 2 {
			if err := e.srv.Reload(t.Context()); err == nil {
				t.Fatal("Reload with the source down: no error")
			}
			e.clock.Advance(time.Minute)
		}
		resp, body := e.do(t, http.MethodGet, readyzPath, nil)
		if strings.Contains(string(body), "connection refused") {
			t.Errorf("%s: readyz shows the database error: %q", recover.name, body)
		}
		since := "database unreachable since " + down.UTC().Format(time.RFC3339) + ";"
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), since) {
			t.Errorf("%s: readyz with the source down: %d %q, want 503 %q", recover.name, resp.StatusCode, body, since)
		}
		if ok, why := e.srv.Ready(); ok || !strings.Contains(why, since) {
			t.Errorf("%s: Ready: %v %q", recover.name, ok, why)
		}
		if resp, body := e.do(t, http.MethodGet, timestampPath, nil); resp.StatusCode != http.StatusOK || string(body) != string(want) {
			t.Errorf("%s: timestamp with the source down: %d %q, want 200 %q", recover.name, resp.StatusCode, body, want)
		}

		e.source.mu.Lock()
		e.source.genErr = nil
		e.source.gen = recover.gen
		e.source.mu.Unlock()
		// As the poll loop does: content is read only for a new generation.
		calls := e.source.calls()
		if err := e.srv.reload(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		if loaded := e.source.calls() - calls; loaded != int(recover.gen-2) {
			t.Errorf("%s: recovery read the content %d times", recover.name, loaded)
		}
		if resp, body := e.do(t, http.MethodGet, readyzPath, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: readyz after recovery: %d %q", recover.name, resp.StatusCode, body)
		}
	}
}

// TestSourceHangs: a database that stops answering (rather than refusing
// connections) makes the server not ready once the generation query times
// out.
func TestSourceHangs(t *testing.T) {
	e := newTestEnv(t, Config{})
	e.srv.generationTimeout = time.Millisecond
	e.source.mu.Lock()
	e.source.genHang = true
	e.source.mu.Unlock()
	if err := e.srv.reload(t.Context(), false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reload with a hanging source: %v, want a deadline error", err)
	}
	if ok, why := e.srv.Ready(); ok || !strings.Contains(why, "database unreachable since") {
		t.Errorf("Ready: %v %q", ok, why)
	}
}
