package devauth

import (
	"crypto/ed25519"
	"errors"
	"net/http"

	"github.com/uptrust/uptrust/internal/clock"
)

// Transport is an http.RoundTripper that signs every request it sends with
// a fresh nonce, for the agent and the simulator: each attempt, redirects
// included, is a new signature. It signs a clone and leaves the caller's
// request as it was, apart from reading a body that has no GetBody (which
// any transport consumes). Safe for concurrent use.
type Transport struct {
	// Base sends the signed request (http.DefaultTransport when nil).
	Base  http.RoundTripper
	KeyID string
	Key   ed25519.PrivateKey
	// Clock gives created (clock.Real when nil).
	Clock clock.Clock
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		return nil, errors.New("devauth: transport: no request URL")
	}
	out := req.Clone(req.Context())
	c := t.Clock
	if c == nil {
		c = clock.Real{}
	}
	if err := Sign(out, t.KeyID, t.Key, c.Now(), NewNonce()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}
