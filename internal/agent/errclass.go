package agent

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/report"
)

// classify maps an error to its class.
func classify(err error) report.Class {
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
		return report.ClassRepoMismatch
	case errors.Is(err, transfer.ErrImageMismatch):
		return report.ClassImageHash
	case errors.Is(err, transfer.ErrWindowTooLarge):
		return report.ClassPayloadWindow
	case errors.Is(err, transfer.ErrDecode):
		return report.ClassPayloadDecode
	case errors.Is(err, payload.ErrHashMismatch):
		return report.ClassPayloadHash
	case errors.Is(err, payload.ErrTooLong), errors.Is(err, fetch.ErrTooLong):
		return report.ClassPayloadTooLong
	case isDrop(err):
		return report.ClassNetwork
	case errors.Is(err, payload.ErrTruncated):
		return report.ClassPayloadTruncated
	case errors.As(err, &expired):
		return report.ClassMetadataExpired
	case errors.As(err, &unsigned):
		return report.ClassMetadataSignature
	case errors.As(err, &badVer):
		return report.ClassMetadataRollback
	case errors.As(err, &dlLength):
		return report.ClassMetadataTooLong
	case errors.As(err, &lenHash), errors.As(err, &syntaxErr):
		return report.ClassMetadataInvalid
	case errors.As(err, &dlHTTP):
		if dlHTTP.StatusCode >= 500 || dlHTTP.StatusCode == 429 {
			return report.ClassNetwork
		}
		return report.ClassMetadataInvalid
	case errors.As(err, &repoErr):
		return report.ClassMetadataInvalid
	case isTUF(err):
		// Anything else go-tuf refused while parsing or verifying.
		if isNetwork(err) {
			return report.ClassNetwork
		}
		return report.ClassMetadataInvalid
	case isNetwork(err):
		return report.ClassNetwork
	default:
		return report.ClassInstallIO
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
	return errors.Is(err, fetch.ErrStalled) || errors.Is(err, fetch.ErrTooSlow) || errors.Is(err, fetch.ErrDeadline) || errors.As(err, &se) || isNetErr(err)
}

// decisionError is a release the agent refuses by its own rules.
type decisionError struct {
	class report.Class
	msg   string
}

func (e *decisionError) Error() string { return e.msg }

func refuse(class report.Class, msg string) error { return &decisionError{class: class, msg: msg} }

// reportable says whether a class is worth a report. Every failure class
// is: refusals show attacks or broken publications, network failures show
// an unreachable server or CDN (the report waits in the queue until it can
// be delivered). Callers deduplicate per release and class.
func reportable(class report.Class) bool { return class != "" }

// outcomeOf is the report outcome of a check that ended in class: the agent
// "rejected" what it refused, and "failed" to get what it could not reach.
func outcomeOf(class report.Class) report.Outcome {
	if class == report.ClassNetwork {
		return report.OutcomeFailed
	}
	return report.OutcomeRejected
}

func jsonUnmarshalStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	return d.Decode(v)
}
