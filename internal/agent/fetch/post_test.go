package fetch_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/fetch"
)

// TestPostStatusNamesPost: a refused report names the method it was sent
// with (it used to read "GET").
func TestPostStatusNamesPost(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer ts.Close()
	c := newClient(t, fetch.Config{}, nil)
	err := c.PostJSON(t.Context(), ts.URL+"/api/device/v1/reports", []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "fetch: POST "+ts.URL) || strings.Contains(err.Error(), "GET") {
		t.Fatalf("PostJSON refused: %v, want an error naming POST", err)
	}
}
