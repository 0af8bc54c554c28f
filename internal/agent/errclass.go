package agent

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/transfer"
)

// Error classes: the only detail about a failure that leaves the device.
const (
	ClassNetwork           = "network"
	ClassMetadataExpired   = "metadata-expired"
	ClassMetadataSignature = "metadata-signature"
	ClassMetadataRollback  = "metadata-rollback"
	ClassMetadataInvalid   = "metadata-invalid"
	ClassRepoMismatch      = "repository-mismatch"
	ClassManifestInvalid   = "manifest-invalid"
	ClassNotApplicable     = "not-applicable"
	ClassRollbackVersion   = "rollback-version"
	ClassRollbackSecurity  = "rollback-security-version"
	ClassPayloadHash       = "payload-hash-mismatch"
	ClassPayloadTooLong    = "payload-too-long"
	ClassPayloadTruncated  = "payload-truncated"
	// ClassPayloadWindow: a zstd payload asks for a decoder window larger
	// than release.MaxZstdWindow.
	ClassPayloadWindow = "payload-window-too-large"
	// ClassPayloadDecode: a payload that matches its signed hashes is not
	// a valid zstd stream.
	ClassPayloadDecode = "payload-decode"
	// ClassImageHash: the decompressed image does not match the
	// manifest's image_length and image_sha256.
	ClassImageHash    = "image-hash-mismatch"
	ClassInstallIO    = "install-io"
	ClassBootloader   = "bootloader"
	ClassBootFallback = "boot-fallback"
	ClassHealthCheck  = "health-check"
	// ClassSupportShortened: a signed support declaration ended earlier
	// than the one accepted before; the agent kept the earlier one.
	ClassSupportShortened = "support-shortened"
)

// classify maps an error to its class.
func classify(err error) string {
	var (
		expired   *metadata.ErrExpiredMetadata
		unsigned  *metadata.ErrUnsignedMetadata
		badVer    *metadata.ErrBadVersionNumber
		lenHash   *metadata.ErrLengthOrHashMismatch
		dlLength  *metadata.ErrDownloadLengthMismatch
		dlHTTP    *metadata.ErrDownloadHTTP
		repoErr   *metadata.ErrRepository
		decision  *decisionError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &decision):
		return decision.class
	case errors.Is(err, errMismatch):
		return ClassRepoMismatch
	case errors.Is(err, transfer.ErrImageMismatch):
		return ClassImageHash
	case errors.Is(err, transfer.ErrWindowTooLarge):
		return ClassPayloadWindow
	case errors.Is(err, transfer.ErrDecode):
		return ClassPayloadDecode
	case errors.Is(err, payload.ErrHashMismatch):
		return ClassPayloadHash
	case errors.Is(err, payload.ErrTooLong), errors.Is(err, fetch.ErrTooLong):
		return ClassPayloadTooLong
	case isDrop(err):
		return ClassNetwork
	case errors.Is(err, payload.ErrTruncated):
		return ClassPayloadTruncated
	case errors.As(err, &expired):
		return ClassMetadataExpired
	case errors.As(err, &unsigned):
		return ClassMetadataSignature
	case errors.As(err, &badVer):
		return ClassMetadataRollback
	case errors.As(err, &lenHash), errors.As(err, &dlLength), errors.As(err, &syntaxErr):
		return ClassMetadataInvalid
	case errors.As(err, &dlHTTP):
		if dlHTTP.StatusCode >= 500 || dlHTTP.StatusCode == 429 {
			return ClassNetwork
		}
		return ClassMetadataInvalid
	case errors.As(err, &repoErr):
		return ClassMetadataInvalid
	case isTUF(err):
		// Anything else go-tuf refused while parsing or verifying.
		if isNetwork(err) {
			return ClassNetwork
		}
		return ClassMetadataInvalid
	case isNetwork(err):
		return ClassNetwork
	default:
		return ClassInstallIO
	}
}

// isDrop reports a payload download that failed on the wire (a dropped
// connection, a stall, a body that ended early): worth resuming, unlike a
// source that sent too much.
func isDrop(err error) bool {
	var se *payload.SourceError
	return errors.As(err, &se) && !errors.Is(err, fetch.ErrTooLong)
}

func isTUF(err error) bool {
	var t *tufError
	return errors.As(err, &t)
}

func isNetwork(err error) bool {
	var se *fetch.StatusError
	return errors.Is(err, fetch.ErrStalled) || errors.As(err, &se) || isNetErr(err)
}

// decisionError is a release the agent refuses by its own rules.
type decisionError struct {
	class, msg string
}

func (e *decisionError) Error() string { return e.msg }

func refuse(class, msg string) error { return &decisionError{class: class, msg: msg} }

// reportable says whether a class is worth a report. Every failure class
// is: refusals show attacks or broken publications, network failures show
// an unreachable server or CDN (the report waits in the queue until it can
// be delivered). Callers deduplicate per release and class.
func reportable(class string) bool { return class != "" }

// outcomeOf is the report outcome of a check that ended in class: the agent
// "rejected" what it refused, and "failed" to get what it could not reach.
func outcomeOf(class string) string {
	if class == ClassNetwork {
		return "failed"
	}
	return "rejected"
}

func jsonUnmarshalStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	return d.Decode(v)
}
