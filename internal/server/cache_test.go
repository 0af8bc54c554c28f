package server

import (
	"net/http"
	"testing"
)

// TestMissingRootCacheable: the next-root probe every device makes may be
// cached briefly by a CDN, never for long.
func TestMissingRootCacheable(t *testing.T) {
	e := newTestEnv(t, Config{})
	resp, _ := e.do(t, http.MethodGet, "/repo/release/metadata/99.root.json", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	wantHeader(t, resp, "Cache-Control", "public, max-age=60")
}
