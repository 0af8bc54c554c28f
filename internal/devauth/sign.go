package devauth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Sign signs req for the device whose key is key and whose keyid is keyID,
// at time now, with nonce (NewNonce; one per request, retries included). It
// sets Content-Digest, Signature-Input and Signature, replacing any earlier
// values, so a retried request is signed anew.
//
// The body is digested through req.GetBody when the request has one (the
// body is then streamed, not held); otherwise it is read whole, and req.Body,
// req.GetBody and req.ContentLength are replaced by an in-memory copy. The
// authority signed is req.Host, or req.URL.Host when Host is empty, without
// the default port of req.URL.Scheme: the server must see the same (see
// Verifier.Authority for servers behind a proxy that rewrites Host).
func Sign(req *http.Request, keyID string, key ed25519.PrivateKey, now time.Time, nonce string) error {
	switch {
	case req == nil || req.URL == nil:
		return errors.New("devauth: sign: no request URL")
	case len(key) != ed25519.PrivateKeySize:
		return fmt.Errorf("devauth: sign: private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	case !validKeyID(keyID):
		return fmt.Errorf("devauth: sign: keyid %q is empty, longer than %d or not printable ASCII", keyID, maxKeyID)
	case !validNonce(nonce):
		return fmt.Errorf("devauth: sign: nonce must be %d to %d base64url characters", minNonce, maxNonce)
	case strings.ContainsAny(req.URL.RawQuery, "\r\n"):
		return errors.New("devauth: sign: query holds a line break")
	}
	sum, err := bodyDigest(req)
	if err != nil {
		return fmt.Errorf("devauth: sign: body: %w", err)
	}
	digest := digestField(sum)

	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" {
		return errors.New("devauth: sign: request has no host")
	}
	values := [...]string{
		req.Method,
		normalizeAuthority(host, req.URL.Scheme == "https"),
		pathValue(req.URL.EscapedPath()),
		"?" + req.URL.RawQuery,
		digest,
	}
	if values[0] == "" {
		values[0] = http.MethodGet
	}
	list := make([]sfInner, len(signedComponents))
	for i, c := range signedComponents {
		list[i] = sfInner{item: sfItem{kind: kindString, str: c}}
	}
	params := []sfParam{
		{key: "created", val: sfItem{kind: kindInteger, num: now.Unix()}},
		{key: "keyid", val: sfItem{kind: kindString, str: keyID}},
		{key: "nonce", val: sfItem{kind: kindString, str: nonce}},
		{key: "alg", val: sfItem{kind: kindString, str: Alg}},
		{key: "tag", val: sfItem{kind: kindString, str: Tag}},
	}

	var base []byte
	for i, c := range signedComponents {
		base = appendBaseLine(base, c, values[i])
	}
	base = appendParamsLine(base, list, params)
	sig := ed25519.Sign(key, base)

	req.Header.Set(hdrContentDigest, digest)
	req.Header.Set(hdrSignatureInput, Label+"="+string(appendInnerList(nil, list, params)))
	req.Header.Set(hdrSignature, string(appendItem([]byte(Label+"="), sfItem{kind: kindBytes, bytes: sig})))
	return nil
}

// bodyDigest returns the SHA-256 of req's body, leaving the body readable
// for sending (see Sign).
func bodyDigest(req *http.Request) ([]byte, error) {
	h := sha256.New()
	switch {
	case req.Body == nil || req.Body == http.NoBody:
	case req.GetBody != nil:
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	default:
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		h.Write(b)
		req.ContentLength = int64(len(b))
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	return h.Sum(nil), nil
}
