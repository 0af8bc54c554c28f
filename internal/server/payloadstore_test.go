package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
)

// memStore is a PayloadStore over byte slices that can be switched off.
type memStore struct {
	mu    sync.Mutex
	blobs map[string][]byte
	down  bool
	opens int
}

type memPayload struct {
	*bytes.Reader
}

func (memPayload) Close() error { return nil }

func (m *memStore) OpenPayload(_ context.Context, sha string) (Payload, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opens++
	if m.down {
		return nil, errors.New("dial tcp 127.0.0.1:9: connection refused")
	}
	b, ok := m.blobs[sha]
	if !ok {
		return nil, fmt.Errorf("no such object: %w", os.ErrNotExist)
	}
	return memPayload{bytes.NewReader(b)}, nil
}

func (m *memStore) setDown(d bool) {
	m.mu.Lock()
	m.down = d
	m.mu.Unlock()
}

// Payloads in a PayloadStore (no file path) are served from it with Range
// support; while the store is down they get 503 with Retry-After and
// metadata is still served; a payload missing from the store is a 500;
// service resumes when the store is back.
func TestPayloadStore(t *testing.T) {
	c, urlPath, payload := testContent(t)
	pf := c.Payloads[urlPath]
	store := &memStore{blobs: map[string][]byte{pf.SHA256: payload}}
	pf.Path = ""
	c.Payloads[urlPath] = pf
	c.Store = store
	env := newTestEnv(t, Config{})
	env.source.set(2, c)
	if err := env.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}

	resp, body := env.do(t, http.MethodGet, urlPath, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, payload) || resp.Header.Get("Etag") != `"`+pf.SHA256+`"` {
		t.Fatalf("GET: %d %q etag %q", resp.StatusCode, body, resp.Header.Get("Etag"))
	}
	resp, body = env.do(t, http.MethodGet, urlPath, nil, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, payload[10:20]) {
		t.Fatalf("Range GET: %d %q", resp.StatusCode, body)
	}

	store.setDown(true)
	resp, body = env.do(t, http.MethodGet, urlPath, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || string(body) != "503 payload storage unavailable\n" {
		t.Fatalf("store down: %d %q Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp, _ := env.do(t, http.MethodGet, timestampPath, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata with the store down: %d", resp.StatusCode)
	}
	store.setDown(false)
	if resp, body := env.do(t, http.MethodGet, urlPath, nil, "Range", "bytes=0-3"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, payload[:4]) {
		t.Fatalf("after recovery: %d %q", resp.StatusCode, body)
	}

	store.mu.Lock()
	delete(store.blobs, pf.SHA256)
	store.mu.Unlock()
	if resp, _ := env.do(t, http.MethodGet, urlPath, nil); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("missing from the store: %d, want 500", resp.StatusCode)
	}

	store.mu.Lock()
	store.blobs[pf.SHA256] = payload[:5]
	store.mu.Unlock()
	if resp, _ := env.do(t, http.MethodGet, urlPath, nil); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("wrong size in the store: %d, want 500", resp.StatusCode)
	}
}
