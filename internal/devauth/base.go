package devauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// Profile constants. They are a wire protocol with devices in the field:
// never changed in meaning.
const (
	// Label is the signature's label in Signature-Input and Signature.
	Label = "uptrust"
	// Tag is the RFC 9421 tag parameter naming this protocol.
	Tag = "uptrust-device"
	// Alg is the RFC 9421 algorithm name of Ed25519.
	Alg = "ed25519"
	// DigestAlg is the RFC 9530 algorithm key of the body digest.
	DigestAlg = "sha-256"
)

// Derived components of the profile, in the order Sign lists them, then the
// Content-Digest field.
const (
	compMethod    = "@method"
	compAuthority = "@authority"
	compPath      = "@path"
	compQuery     = "@query"
	compDigest    = "content-digest"
)

var signedComponents = [...]string{compMethod, compAuthority, compPath, compQuery, compDigest}

// Header field names.
const (
	hdrSignatureInput = "Signature-Input"
	hdrSignature      = "Signature"
	hdrContentDigest  = "Content-Digest"
)

// Nonce length bounds, in characters of the unpadded base64url alphabet.
const (
	minNonce = 16
	maxNonce = 64
)

// maxKeyID bounds the keyid parameter.
const maxKeyID = 128

// KeyID returns the conventional keyid of a device key: the unpadded
// base64url SHA-256 of the raw 32-byte public key (43 characters). The
// server can compute it from a pre-authorised public key, and index keys
// by it.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewNonce returns 128 random bits as 22 unpadded base64url characters.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validNonce reports whether n has a nonce's length and alphabet.
func validNonce(n string) bool {
	if len(n) < minNonce || len(n) > maxNonce {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validKeyID reports whether id can be a keyid.
func validKeyID(id string) bool {
	return id != "" && len(id) <= maxKeyID && isFieldString(id)
}

// normalizeAuthority returns the RFC 9421 @authority value of a host[:port]
// (section 2.2.3): lower case, without the scheme's default port.
func normalizeAuthority(hostport string, https bool) string {
	a := strings.ToLower(hostport)
	if https {
		a = strings.TrimSuffix(a, ":443")
	} else {
		a = strings.TrimSuffix(a, ":80")
	}
	return a
}

// pathValue returns the @path value of an escaped path: "/" when empty.
func pathValue(escaped string) string {
	if escaped == "" {
		return "/"
	}
	return escaped
}

// headerValue returns the RFC 9421 section 2.1 value of a header field:
// each field line trimmed, lines joined with ", ". ok is false when the
// field is absent.
func headerValue(h http.Header, name string) (v string, ok bool) {
	lines := h.Values(name)
	switch len(lines) {
	case 0:
		return "", false
	case 1:
		return strings.Trim(lines[0], " \t"), true
	}
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strings.Trim(l, " \t")
	}
	return strings.Join(parts, ", "), true
}

// appendBaseLine appends one `"name": value` line of a signature base.
func appendBaseLine(b []byte, name, value string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `": `...)
	b = append(b, value...)
	return append(b, '\n')
}

// appendParamsLine appends the final @signature-params line (no newline).
func appendParamsLine(b []byte, list []sfInner, params []sfParam) []byte {
	b = append(b, `"@signature-params": `...)
	return appendInnerList(b, list, params)
}

// digestField returns the Content-Digest field value for a SHA-256 sum.
func digestField(sum []byte) string {
	return DigestAlg + "=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}
