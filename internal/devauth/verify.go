package devauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
)

// KeyStore finds a device's public key by keyid.
//
// DeviceKey returns the Ed25519 public key registered under keyID, or an
// error wrapping ErrUnknownKey when there is none (Verify then refuses the
// request); any other error is a failure of the store, which Verify returns
// as it is (Problem maps it to 500). Whether the device is accepted,
// rejected or decommissioned is the caller's business after Verify: the
// store may also answer ErrUnknownKey for a device that must get nothing.
// Implementations are safe for concurrent use.
type KeyStore interface {
	DeviceKey(ctx context.Context, keyID string) (ed25519.PublicKey, error)
}

// Defaults of Verifier's zero fields.
const (
	DefaultSkew    = 5 * time.Minute
	DefaultMaxBody = 1 << 20
)

// maxFieldLen bounds each signature field; the profile's are ~250 bytes.
const maxFieldLen = 8 << 10

// Verifier checks device signatures on the server. Keys and Nonces are
// required; the other fields have defaults. Safe for concurrent use once
// configured; do not change its fields while it is in use.
type Verifier struct {
	Keys   KeyStore
	Nonces NonceStore
	// Clock tells the time the window is checked against (clock.Real when
	// nil).
	Clock clock.Clock
	// Skew is how far created may be from the server's time, either way
	// (DefaultSkew when zero).
	Skew time.Duration
	// MaxBody is the largest body accepted, in bytes (DefaultMaxBody when
	// zero). Longer ones are refused, without reading them when their
	// Content-Length says so.
	MaxBody int64
	// Authority, when set, is the @authority value devices sign: the
	// host[:port] of the https server URL they are configured with
	// (compared in lower case, without ":443"). Set it when a proxy in
	// front rewrites Host; the request's Host (and any X-Forwarded-Host) is
	// then ignored. When empty the request's Host is used, without the
	// default port of the connection's scheme.
	Authority string
	// PathPrefix, when set, is a path prefix that a proxy in front strips
	// before forwarding ("/uptrust" when devices call
	// https://host/uptrust/api/device/v1/... and the server sees
	// /api/device/v1/...). It is put back before the path is checked.
	PathPrefix string
}

// Result is what Verify established about a request.
type Result struct {
	KeyID   string    // the key that signed it
	Created time.Time // when it was signed
	Nonce   string
}

// signature is the parsed Signature-Input and Signature members labelled
// Label.
type signature struct {
	list    []sfInner
	params  []sfParam
	sig     []byte
	created int64
	expires int64 // 0: none
	keyID   string
	nonce   string
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Verify checks the device signature on r, in the order the package doc
// gives. On success the body has been read and checked against the digest,
// and r.Body is replaced by a reader of those bytes for the handler. On
// failure it returns an *Error (compare with errors.Is against the Err
// variables; Problem says what to answer) or the key or nonce store's own
// error; the body may then be partly read.
func (v *Verifier) Verify(ctx context.Context, r *http.Request) (Result, error) {
	s, err := parseSignature(r.Header)
	if err != nil {
		return Result{}, err
	}
	if err := checkProfile(r.Header, s); err != nil {
		return Result{}, err
	}

	var now time.Time
	if v.Clock != nil {
		now = v.Clock.Now()
	} else {
		now = time.Now()
	}
	skew := v.Skew
	if skew <= 0 {
		skew = DefaultSkew
	}
	created := time.Unix(s.created, 0)
	switch {
	case created.After(now.Add(skew)):
		return Result{}, refuse(ErrTooNew, fmt.Sprintf("created %s is more than %s after %s", created.UTC().Format(time.RFC3339), skew, now.UTC().Format(time.RFC3339)))
	case created.Before(now.Add(-skew)):
		return Result{}, refuse(ErrTooOld, fmt.Sprintf("created %s is more than %s before %s", created.UTC().Format(time.RFC3339), skew, now.UTC().Format(time.RFC3339)))
	case s.expires != 0 && now.Unix() > s.expires:
		return Result{}, refuse(ErrTooOld, fmt.Sprintf("expired at %s", time.Unix(s.expires, 0).UTC().Format(time.RFC3339)))
	}

	want, err := parseDigest(r.Header)
	if err != nil {
		return Result{}, err
	}

	pub, err := v.Keys.DeviceKey(ctx, s.keyID)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return Result{}, refuse(ErrUnknownKey, fmt.Sprintf("keyid %q: %v", s.keyID, err))
	case err != nil:
		return Result{}, fmt.Errorf("devauth: key store: keyid %q: %w", s.keyID, err)
	case len(pub) != ed25519.PublicKeySize:
		return Result{}, fmt.Errorf("devauth: key store: keyid %q: public key has %d bytes, want %d", s.keyID, len(pub), ed25519.PublicKeySize)
	}

	bp := bufPool.Get().(*[]byte)
	base, err := v.signatureBase((*bp)[:0], r, s)
	if err == nil && !ed25519.Verify(pub, base, s.sig) {
		err = refuse(ErrBadSignature, fmt.Sprintf("keyid %q", s.keyID))
	}
	if base != nil {
		*bp = base[:0] // keep the grown buffer
	}
	bufPool.Put(bp)
	if err != nil {
		return Result{}, err
	}

	if err := v.checkBody(r, want); err != nil {
		return Result{}, err
	}

	n := Nonce{KeyID: s.keyID, Value: s.nonce, Method: r.Method, Created: created, Until: created.Add(skew)}
	if err := v.Nonces.Use(ctx, n, now); err != nil {
		var e *Error
		switch {
		case errors.As(err, &e):
			return Result{}, err
		case errors.Is(err, ErrReplayed):
			return Result{}, refuse(ErrReplayed, err.Error())
		case errors.Is(err, ErrNoncesFull):
			return Result{}, refuse(ErrNoncesFull, err.Error())
		}
		return Result{}, fmt.Errorf("devauth: nonce store: %w", err)
	}
	return Result{KeyID: s.keyID, Created: created, Nonce: s.nonce}, nil
}

// parseSignature finds the members labelled Label in Signature-Input and
// Signature.
func parseSignature(h http.Header) (*signature, error) {
	inputField, hasInput := headerValue(h, hdrSignatureInput)
	sigField, hasSig := headerValue(h, hdrSignature)
	if !hasInput && !hasSig {
		return nil, refuse(ErrMissingSignature, "no Signature-Input or Signature field")
	}
	if len(inputField) > maxFieldLen || len(sigField) > maxFieldLen {
		return nil, refuse(ErrMalformed, fmt.Sprintf("signature fields longer than %d bytes", maxFieldLen))
	}
	inputs, err := parseDictionary(inputField)
	if err != nil {
		return nil, refuse(ErrMalformed, "Signature-Input: "+err.Error())
	}
	sigs, err := parseDictionary(sigField)
	if err != nil {
		return nil, refuse(ErrMalformed, "Signature: "+err.Error())
	}
	in, sg := findMember(inputs, Label), findMember(sigs, Label)
	switch {
	case in == nil && sg == nil:
		return nil, refuse(ErrMissingSignature, fmt.Sprintf("no signature labelled %q", Label))
	case in == nil:
		return nil, refuse(ErrMalformed, fmt.Sprintf("Signature-Input has no member %q", Label))
	case sg == nil:
		return nil, refuse(ErrMalformed, fmt.Sprintf("Signature has no member %q", Label))
	case !in.isList:
		return nil, refuse(ErrMalformed, "Signature-Input member is not an inner list")
	case sg.isList || sg.item.kind != kindBytes:
		return nil, refuse(ErrMalformed, "Signature member is not a byte sequence")
	case len(sg.item.bytes) != ed25519.SignatureSize:
		return nil, refuse(ErrMalformed, fmt.Sprintf("signature has %d bytes, want %d", len(sg.item.bytes), ed25519.SignatureSize))
	}
	return &signature{list: in.list, params: in.params, sig: sg.item.bytes}, nil
}

func findMember(ms []sfMember, key string) *sfMember {
	for i := range ms {
		if ms[i].key == key {
			return &ms[i]
		}
	}
	return nil
}

// checkProfile checks the covered components and parameters against the
// profile and fills s's parameter fields.
func checkProfile(h http.Header, s *signature) error {
	var have [len(signedComponents)]bool
	for i, c := range s.list {
		if c.item.kind != kindString {
			return refuse(ErrMalformed, "a covered component is not a string")
		}
		if len(c.params) > 0 {
			return refuse(ErrMalformed, fmt.Sprintf("component %q has parameters", c.item.str))
		}
		name := c.item.str
		for _, prev := range s.list[:i] {
			if prev.item.str == name {
				return refuse(ErrMalformed, fmt.Sprintf("component %q covered twice", name))
			}
		}
		known := false
		for j, sc := range signedComponents {
			if name == sc {
				have[j], known = true, true
			}
		}
		switch {
		case known:
		case strings.HasPrefix(name, "@"):
			return refuse(ErrMalformed, fmt.Sprintf("derived component %q is not supported", name))
		case !isFieldName(name):
			return refuse(ErrMalformed, fmt.Sprintf("component %q is not a lower-case field name", name))
		default:
			if _, ok := headerValue(h, name); !ok {
				return refuse(ErrMalformed, fmt.Sprintf("covered field %q is absent", name))
			}
		}
	}
	for j, ok := range have {
		if !ok {
			return refuse(ErrMalformed, fmt.Sprintf("component %q not covered", signedComponents[j]))
		}
	}

	var hasCreated, hasTag bool
	for _, p := range s.params {
		switch p.key {
		case "created", "expires":
			if p.val.kind != kindInteger || p.val.num <= 0 {
				return refuse(ErrMalformed, p.key+" is not a positive integer")
			}
			if p.key == "created" {
				s.created, hasCreated = p.val.num, true
			} else {
				s.expires = p.val.num
			}
		case "keyid", "nonce", "alg", "tag":
			if p.val.kind != kindString {
				return refuse(ErrMalformed, p.key+" is not a string")
			}
			switch v := p.val.str; p.key {
			case "keyid":
				s.keyID = v
			case "nonce":
				s.nonce = v
			case "alg":
				if v != Alg {
					return refuse(ErrMalformed, fmt.Sprintf("alg %q is not %q", v, Alg))
				}
			case "tag":
				if v != Tag {
					return refuse(ErrMalformed, fmt.Sprintf("tag %q is not %q", v, Tag))
				}
				hasTag = true
			}
		default:
			return refuse(ErrMalformed, fmt.Sprintf("unknown parameter %q", p.key))
		}
	}
	switch {
	case !hasCreated:
		return refuse(ErrMalformed, "no created parameter")
	case !hasTag:
		return refuse(ErrMalformed, "no tag parameter")
	case !validKeyID(s.keyID):
		return refuse(ErrMalformed, "keyid missing or invalid")
	case !validNonce(s.nonce):
		return refuse(ErrMalformed, fmt.Sprintf("nonce missing or not %d to %d base64url characters", minNonce, maxNonce))
	case s.expires != 0 && s.expires < s.created:
		return refuse(ErrMalformed, "expires before created")
	}
	return nil
}

// isFieldName reports whether s is a lower-case HTTP field name.
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTChar(s[i]) || (s[i] >= 'A' && s[i] <= 'Z') {
			return false
		}
	}
	return true
}

// parseDigest returns the SHA-256 sum that Content-Digest declares.
func parseDigest(h http.Header) ([]byte, error) {
	field, ok := headerValue(h, hdrContentDigest)
	if !ok {
		return nil, refuse(ErrMalformed, "no Content-Digest field")
	}
	if len(field) > maxFieldLen {
		return nil, refuse(ErrMalformed, "Content-Digest too long")
	}
	ms, err := parseDictionary(field)
	if err != nil {
		return nil, refuse(ErrMalformed, "Content-Digest: "+err.Error())
	}
	m := findMember(ms, DigestAlg)
	switch {
	case m == nil:
		return nil, refuse(ErrMalformed, "Content-Digest has no "+DigestAlg)
	case m.isList || m.item.kind != kindBytes || len(m.item.bytes) != sha256.Size:
		return nil, refuse(ErrMalformed, "Content-Digest "+DigestAlg+" is not a 32-byte sequence")
	}
	return m.item.bytes, nil
}

// signatureBase appends the RFC 9421 signature base of r for s to b
// (section 2.5), with @authority and @path as Authority and PathPrefix say.
func (v *Verifier) signatureBase(b []byte, r *http.Request, s *signature) ([]byte, error) {
	for _, c := range s.list {
		var val string
		switch name := c.item.str; name {
		case compMethod:
			val = r.Method
		case compAuthority:
			if v.Authority != "" {
				val = normalizeAuthority(v.Authority, true)
			} else {
				val = normalizeAuthority(r.Host, r.TLS != nil)
			}
		case compPath:
			val = pathValue(v.PathPrefix + r.URL.EscapedPath())
		case compQuery:
			val = "?" + r.URL.RawQuery
		default:
			val, _ = headerValue(r.Header, name)
		}
		if strings.ContainsAny(val, "\r\n") {
			return nil, refuse(ErrMalformed, fmt.Sprintf("component %q holds a line break", c.item.str))
		}
		b = appendBaseLine(b, c.item.str, val)
	}
	return appendParamsLine(b, s.list, s.params), nil
}

// checkBody reads r's body, at most MaxBody bytes, compares its SHA-256
// with want, and replaces r.Body with the bytes read.
func (v *Verifier) checkBody(r *http.Request, want []byte) error {
	limit := v.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if r.ContentLength > limit {
		return refuse(ErrBodyTooLarge, fmt.Sprintf("Content-Length %d exceeds %d", r.ContentLength, limit))
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var buf bytes.Buffer
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength) + 1)
		}
		n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
		if err != nil {
			return fmt.Errorf("devauth: reading body: %w", err)
		}
		if n > limit {
			return refuse(ErrBodyTooLarge, fmt.Sprintf("body exceeds %d bytes", limit))
		}
		body = buf.Bytes()
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	sum := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return refuse(ErrDigestMismatch, fmt.Sprintf("body of %d bytes", len(body)))
	}
	return nil
}
