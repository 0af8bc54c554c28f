package devauth

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// verifyingServer starts a server on 127.0.0.1 that answers a verified
// request with 200 and "keyid body", and a refused one with Problem's
// status and code.
func verifyingServer(t *testing.T, v *Verifier) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := v.Verify(r.Context(), r)
		if err != nil {
			status, code := Problem(err)
			http.Error(w, code, status)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", res.KeyID, b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// tlsProxy returns a TLS-terminating reverse proxy on 127.0.0.1, not yet
// started, so that its address is known before its backend exists.
func tlsProxy(t *testing.T) *httptest.Server {
	t.Helper()
	p := httptest.NewUnstartedServer(nil)
	t.Cleanup(p.Close)
	return p
}

// startProxy starts p in front of backend, the way a load balancer is
// commonly set up: it forwards plain HTTP, sets Host to the backend's, adds
// X-Forwarded-For, -Host and -Proto, and strips the path prefix "/uptrust".
func startProxy(t *testing.T, p *httptest.Server, backend string) {
	t.Helper()
	bu, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	p.Config.Handler = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(bu)
		pr.SetXForwarded()
		pr.Out.URL.Path = strings.TrimPrefix(pr.Out.URL.Path, "/uptrust")
		pr.Out.URL.RawPath = ""
	}}
	p.StartTLS()
}

// Behind a TLS-terminating proxy that rewrites Host and the path, the
// signature verifies once the server is told the public authority and
// prefix; without that it fails, and X-Forwarded-Host (which the proxy
// sets to the right value) is not taken instead: anyone can send it.
func TestBehindProxy(t *testing.T) {
	f := newFixture()
	plain := *f.v
	configured := *f.v
	configured.Nonces = NewMemoryNonces(0)

	unconfiguredProxy := tlsProxy(t)
	startProxy(t, unconfiguredProxy, verifyingServer(t, &plain))
	configuredProxy := tlsProxy(t)
	configured.Authority = configuredProxy.Listener.Addr().String() // 127.0.0.1:port, as devices are configured
	configured.PathPrefix = "/uptrust"
	startProxy(t, configuredProxy, verifyingServer(t, &configured))

	do := func(p *httptest.Server, path string) (int, string) {
		t.Helper()
		req := clientRequest(t, f.dev, http.MethodPost, p.URL+path, []byte(`{"n":1}`), t0)
		resp, err := p.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}

	if status, body := do(unconfiguredProxy, "/uptrust/api/device/v1/reports?x=1"); status != http.StatusUnauthorized || body != CodeSignatureInvalid {
		t.Errorf("unconfigured server behind the proxy: %d %q, want 401 %s", status, body, CodeSignatureInvalid)
	}
	if status, body := do(configuredProxy, "/uptrust/api/device/v1/reports?x=1"); status != http.StatusOK || body != f.dev.id+` {"n":1}` {
		t.Errorf("configured server behind the proxy: %d %q", status, body)
	}
}

// A request signed for the public authority and sent to the server
// directly with that Host passes on an unconfigured server: the default
// needs no proxy.
func TestAuthorityDefault(t *testing.T) {
	f := newFixture()
	for _, tc := range []struct {
		url, host string
		tls       bool
		ok        bool
	}{
		{"https://updates.example.com:443/x", "updates.example.com", true, true},
		{"https://updates.example.com/x", "UPDATES.example.com:443", true, true},
		{"http://updates.example.com/x", "updates.example.com:80", false, true},
		{"https://updates.example.com:8443/x", "updates.example.com:8443", true, true},
		{"https://updates.example.com:8443/x", "updates.example.com", true, false},
		{"https://updates.example.com/x", "updates.example.com:80", false, true}, // plain HTTP from a proxy
		{"https://updates.example.com/x", "updates.example.com:8080", false, false},
		{"https://updates.example.com/x", "updates.example.com.evil", true, false},
	} {
		req := clientRequest(t, f.dev, http.MethodGet, tc.url, nil, t0)
		r := serverRequest(t, wire(t, req))
		r.Host = tc.host
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		_, err := f.v.Verify(t.Context(), r)
		if (err == nil) != tc.ok {
			t.Errorf("signed for %s, served as Host %s (TLS %v): %v", tc.url, tc.host, tc.tls, err)
		}
	}
	// A configured authority is compared in lower case and without :443,
	// and the Host the proxy sends is ignored.
	v := *f.v
	v.Nonces = NewMemoryNonces(0)
	v.Authority = "Updates.Example.com:443"
	r := serverRequest(t, wire(t, clientRequest(t, f.dev, http.MethodGet, "https://updates.example.com/x", nil, t0)))
	r.Host = "backend.internal:8080"
	r.Header.Set("X-Forwarded-Host", "evil.example")
	if _, err := v.Verify(t.Context(), r); err != nil {
		t.Errorf("configured authority: %v", err)
	}
}
