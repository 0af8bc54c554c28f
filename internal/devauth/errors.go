package devauth

import (
	"errors"
	"net/http"
)

// Sentinel errors. Verify returns an *Error wrapping exactly one of them (or
// the key store's or nonce store's own error, which is no verdict on the
// request); compare with errors.Is.
var (
	// ErrMissingSignature: no Signature-Input or Signature member labelled
	// Label.
	ErrMissingSignature = errors.New("missing signature")
	// ErrMalformed: the signature fields or Content-Digest do not parse, or
	// the signature does not follow the profile (components, parameters).
	ErrMalformed = errors.New("malformed signature")
	// ErrUnknownKey: the key store knows no key by that keyid.
	ErrUnknownKey = errors.New("unknown key")
	// ErrBadSignature: the signature does not verify with the device's key.
	ErrBadSignature = errors.New("bad signature")
	// ErrDigestMismatch: the body's SHA-256 differs from Content-Digest.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrBodyTooLarge: the body is longer than Verifier.MaxBody.
	ErrBodyTooLarge = errors.New("body too large")
	// ErrTooOld: created is more than Skew in the past, or expires passed.
	ErrTooOld = errors.New("signature too old")
	// ErrTooNew: created is more than Skew in the future.
	ErrTooNew = errors.New("signature too new")
	// ErrReplayed: the nonce was already used with this key in the window.
	ErrReplayed = errors.New("replayed request")
	// ErrNoncesFull: the nonce store holds as many live nonces as it may;
	// the request is refused rather than letting a replay through.
	ErrNoncesFull = errors.New("nonce store full")
)

// Error is a refusal by Verify: Kind is one of the sentinel errors above and
// Detail says what exactly, for the server's log. Detail may name header
// values and is not meant for the client; see Problem for what to answer.
type Error struct {
	Kind   error
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "devauth: " + e.Kind.Error()
	}
	return "devauth: " + e.Kind.Error() + ": " + e.Detail
}

// Unwrap returns Kind, so errors.Is(err, ErrBadSignature) works.
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, detail string) error { return &Error{Kind: kind, Detail: detail} }

// Problem codes: what a device is told, as the "code" of a 401/413/503
// problem document. They are a wire protocol: never renamed.
const (
	// CodeSignatureRequired: the request carried no device signature.
	CodeSignatureRequired = "signature-required"
	// CodeSignatureInvalid covers a malformed signature, an unknown key, a
	// bad signature and a digest mismatch alike, so that a prober learns
	// neither which keys are enrolled nor which part failed.
	CodeSignatureInvalid = "signature-invalid"
	// CodeClockSkew: created is outside the window; the device compares its
	// clock with the answer's Date header.
	CodeClockSkew = "clock-skew"
	// CodeReplayed: the nonce was seen; a device that retries signs anew.
	CodeReplayed = "replayed"
	// CodeBodyTooLarge: the body exceeds the server's limit.
	CodeBodyTooLarge = "body-too-large"
	// CodeUnavailable: the server cannot record nonces now; retry later.
	CodeUnavailable = "unavailable"
)

// Problem maps an error from Verify to the HTTP status and problem code to
// answer with. An error that is not a refusal (the key store failed) is
// 500 with code "": the server logs it and says nothing more.
func Problem(err error) (status int, code string) {
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.Is(err, ErrMissingSignature):
		return http.StatusUnauthorized, CodeSignatureRequired
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrUnknownKey),
		errors.Is(err, ErrBadSignature), errors.Is(err, ErrDigestMismatch):
		return http.StatusUnauthorized, CodeSignatureInvalid
	case errors.Is(err, ErrTooOld), errors.Is(err, ErrTooNew):
		return http.StatusUnauthorized, CodeClockSkew
	case errors.Is(err, ErrReplayed):
		return http.StatusUnauthorized, CodeReplayed
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, CodeBodyTooLarge
	case errors.Is(err, ErrNoncesFull):
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusInternalServerError, ""
}
