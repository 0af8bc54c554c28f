package fetch_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/fetch"
)

type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int32
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	r = r.Clone(r.Context())
	r.Header.Set("X-Wrapped", "yes")
	return c.base.RoundTrip(r)
}

// TestCallWrapAndAnswers: Wrap sees every request, redirects included;
// Call returns refusals as answers, with their body, and bounds them.
func TestCallWrapAndAnswers(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Wrapped") != "yes" {
			t.Errorf("%s %s was not wrapped", r.Method, r.URL.Path)
		}
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/refuse", http.StatusFound)
		case "/refuse":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"code":"rejected"}`)
		default:
			io.WriteString(w, strings.Repeat("x", 100))
		}
	}))
	defer ts.Close()
	var n atomic.Int32
	c := newClient(t, fetch.Config{Wrap: func(base http.RoundTripper) http.RoundTripper { return countingTransport{base, &n} }}, nil)
	ans, err := c.Call(t.Context(), http.MethodGet, ts.URL+"/moved", nil, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if ans.StatusCode != http.StatusForbidden || ans.ContentType != "application/problem+json" || string(ans.Body) != `{"code":"rejected"}` {
		t.Fatalf("answer %+v", ans)
	}
	if n.Load() != 2 {
		t.Fatalf("wrapped transport saw %d requests, want 2 (the redirect too)", n.Load())
	}
	if _, err := c.Call(t.Context(), http.MethodPost, ts.URL+"/big", []byte(`{}`), 99); !errors.Is(err, fetch.ErrAnswerTooLong) {
		t.Fatalf("a 100-byte answer with a limit of 99: %v", err)
	}
	if ans, err := c.Call(t.Context(), http.MethodPost, ts.URL+"/big", []byte(`{}`), 100); err != nil || len(ans.Body) != 100 {
		t.Fatalf("a 100-byte answer with a limit of 100: %v", err)
	}
}
