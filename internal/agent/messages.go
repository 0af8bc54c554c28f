package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

// tufError is a failed TUF refresh or lookup in one repository. file is
// the metadata file whose download, parsing or verification failed, as
// "<role>.json" ("products/thermostat.json"), or "" when unknown. Its
// message says what happened to which file and what the owner or operator
// can do (see explainTUF); the wrapped error keeps go-tuf's type for
// classify.
type tufError struct {
	repo string
	file string
	err  error
}

func (e *tufError) Error() string {
	prefix, msg := e.repo+" repository: ", explainTUF(e.repo, e.file, e.err)
	if e.file != "" && !strings.HasPrefix(msg, e.file+" ") {
		prefix += e.file + ": "
	}
	return prefix + msg
}

func (e *tufError) Unwrap() error { return e.err }

// explainTUF words err, a failure of file in repository repo, for a
// person: what happened and what they can do. go-tuf's own message follows
// in parentheses where it adds a detail; version errors are rewritten
// whole, because go-tuf's "expected X version 3, got 4" names the versions
// in an order that reads backwards. An error it does not know is returned
// as it is.
func explainTUF(repo, file string, err error) string {
	var (
		unsigned *metadata.ErrUnsignedMetadata
		badVer   *metadata.ErrBadVersionNumber
		expired  *metadata.ErrExpiredMetadata
		lenHash  *metadata.ErrLengthOrHashMismatch
		syntax   *json.SyntaxError
		tooLong  *metadata.ErrDownloadLengthMismatch
	)
	switch {
	case errors.As(err, &tooLong):
		// limitFetcher's messages name the file and the setting.
		return tooLong.Msg
	case errors.As(err, &unsigned):
		return fmt.Sprintf("the signature does not verify with %s; %s (%v)", signerOf(repo, file), unsignedAdvice(repo), err)
	case errors.As(err, &badVer):
		if s := versionSentence(badVer.Msg); s != "" {
			return s + "; the device keeps the newer metadata it trusts: check the mirror (it must serve the current publication), or contact the maker"
		}
		return err.Error()
	case errors.As(err, &expired):
		return fmt.Sprintf("the signed metadata has expired (%v): the server or a mirror serves out-of-date metadata, or the online signing stopped; "+
			"check that the mirror syncs and the server runs, or contact the maker", err)
	case errors.As(err, &lenHash):
		return fmt.Sprintf("the file does not match the length and hashes the snapshot or timestamp lists for it (%v): "+
			"a mirror or proxy changed it or mixed files of different publications; check the mirror or proxy, the next check tries again", err)
	case errors.As(err, &syntax):
		return fmt.Sprintf("not valid JSON at byte %d (%v): the server, a mirror or a proxy serves a damaged file or something other than signed metadata; "+
			"check the mirror or proxy, the next check tries again", syntax.Offset, err)
	}
	return err.Error()
}

// signerOf names the key that must sign file in repository repo: the
// maker's offline keys for the release repository's root, targets and
// product roles, the server's online keys for the rest.
func signerOf(repo, file string) string {
	role := strings.TrimSuffix(file, ".json")
	switch {
	case role == metadata.ROOT:
		return "the " + repo + " repository's root keys (threshold)"
	case role == metadata.TIMESTAMP || role == metadata.SNAPSHOT:
		return "the server's online " + role + " key"
	case role == metadata.TARGETS && repo == deviceapi.RepoRelease:
		return "the maker's offline release key"
	case role == metadata.TARGETS:
		return "the fleet's online targets key"
	case strings.HasPrefix(role, "products/"):
		return "the product's key"
	case role == "":
		return "the keys its delegating role names"
	}
	return "the key " + role + "'s delegating role names"
}

func unsignedAdvice(repo string) string {
	if repo == deviceapi.RepoFleet {
		return "the server or a mirror serves fleet metadata not signed by the fleet's keys: check the mirror, or contact the fleet's operator"
	}
	return "the server or a mirror serves metadata not signed by the maker: check the mirror, or contact the maker"
}

// go-tuf's version messages (metadata/trustedmetadata), in the order
// versionSentence tries them.
var (
	// a new snapshot lists a role older than the trusted snapshot did:
	// "expected <name>.json version <offered>, got <trusted>".
	reListedRollback = regexp.MustCompile(`^expected (\S+\.json) version (\d+), got (\d+)$`)
	// a delegated role whose version differs from the snapshot's entry:
	// "expected <role> version <listed>, got <file's>".
	reRoleVersion     = regexp.MustCompile(`^expected (\S+) version (\d+), got (\d+)$`)
	reTimestamp       = regexp.MustCompile(`^new timestamp version (\d+) must be >= (\d+)$`)
	reSnapshotListed  = regexp.MustCompile(`^new snapshot version (\d+) must be >= (\d+)$`)
	reSnapshotVersion = regexp.MustCompile(`^expected (\d+), got (\d+)$`)
	reRootVersion     = regexp.MustCompile(`^bad version number, expected (\d+), got (\d+)$`)
)

// versionSentence rewrites one of go-tuf's version messages as a sentence
// that names the file and both versions in the order a person reads them,
// or returns "" for a message it does not know.
func versionSentence(msg string) string {
	rollback := func(what string, offered, trusted string) string {
		return fmt.Sprintf("the server offers %s version %s, older than version %s this device already trusts: a rollback, refused", what, offered, trusted)
	}
	if m := reListedRollback.FindStringSubmatch(msg); m != nil {
		return rollback(m[1], m[2], m[3])
	}
	if m := reRoleVersion.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("the server offers %s.json version %s where the snapshot lists version %s: files of different publications, refused", m[1], m[3], m[2])
	}
	if m := reTimestamp.FindStringSubmatch(msg); m != nil {
		return rollback("timestamp.json", m[1], m[2])
	}
	if m := reSnapshotListed.FindStringSubmatch(msg); m != nil {
		return rollback("snapshot.json", m[1], m[2])
	}
	if m := reSnapshotVersion.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("the server offers snapshot.json version %s where the timestamp lists version %s: files of different publications, refused", m[2], m[1])
	}
	if m := reRootVersion.FindStringSubmatch(msg); m != nil {
		next, _ := strconv.Atoi(m[1])
		return fmt.Sprintf("the server offers root version %s as the root after version %d: the root chain must go up one version at a time, refused", m[2], next-1)
	}
	return ""
}

// payloadFailure words the failure err (of class) of the full payload
// target for a person: the target, what happened and what to do; when the
// release's delta failed first in the same install (delta not nil), it
// says that too.
func payloadFailure(target string, delta *DeltaOutcome, class report.Class, err error) error {
	msg := target + ": %w"
	if a := payloadAdvice(class); a != "" {
		msg += "; " + a
	}
	if delta != nil {
		return fmt.Errorf("the delta from %s was not used (%s), then the full payload failed: "+msg, delta.From, delta.Reason, err)
	}
	return fmt.Errorf(msg, err)
}

// payloadAdvice says what the owner or operator can do about a payload
// that failed with class, or "" when there is nothing to add.
func payloadAdvice(class report.Class) string {
	switch class {
	case report.ClassPayloadHash, report.ClassPayloadTooLong, report.ClassPayloadTruncated:
		return "the server, a mirror or a proxy serves other bytes than the maker signed: check the mirror or proxy, the next check tries again"
	case report.ClassImageHash, report.ClassPayloadDecode, report.ClassPayloadWindow:
		return "the signed payload does not decode to the image its manifest declares: contact the maker"
	case report.ClassNetwork:
		return "the next check tries again"
	case report.ClassInstallIO:
		return "writing to this device failed: check its storage, the next check tries again"
	}
	return ""
}
