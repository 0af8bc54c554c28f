package devauth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every request through Transport is signed anew, redirects included, and
// the caller's request is left unsigned.
func TestTransport(t *testing.T) {
	f := newFixture()
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := f.v.Verify(r.Context(), r)
		if err != nil {
			status, code := Problem(err)
			http.Error(w, code, status)
			return
		}
		paths = append(paths, r.URL.Path)
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, res.KeyID+" "+string(b))
	}))
	defer srv.Close()
	client := &http.Client{Transport: &Transport{KeyID: f.dev.id, Key: f.dev.priv, Clock: f.clk}}

	for i, body := range []io.Reader{
		strings.NewReader(`{"n":1}`),
		strings.NewReader(`{"n":1}`),                 // the same request again: a new nonce
		io.MultiReader(strings.NewReader(`{"n":1}`)), // no GetBody
	} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/r", body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != f.dev.id+` {"n":1}` {
			t.Errorf("request %d: %d %q", i, resp.StatusCode, got)
		}
		if req.Header.Get(hdrSignature) != "" {
			t.Errorf("request %d: the caller's request was signed in place", i)
		}
	}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/old", strings.NewReader(`{"n":2}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != f.dev.id+` {"n":2}` || strings.Join(paths, " ") != "/r /r /r /old /new" {
		t.Errorf("redirect: %d %q, paths %v", resp.StatusCode, got, paths)
	}

	bad := &http.Client{Transport: &Transport{KeyID: "", Key: f.dev.priv}}
	if _, err := bad.Get(srv.URL + "/r"); err == nil || !strings.Contains(err.Error(), "devauth: sign:") {
		t.Errorf("Transport with an empty keyid: %v", err)
	}
}
