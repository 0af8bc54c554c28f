package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/report"
)

// TestVersionSentence: each of go-tuf's version messages reads as a
// sentence naming the file and both versions, the offered one first.
func TestVersionSentence(t *testing.T) {
	for msg, want := range map[string]string{
		"expected products/thermo.json version 3, got 4": "the server offers products/thermo.json version 3, older than version 4 this device already trusts: a rollback, refused",
		"expected targets.json version 6, got 9":         "the server offers targets.json version 6, older than version 9 this device already trusts: a rollback, refused",
		"expected products/thermo version 3, got 4":      "the server offers products/thermo.json version 4 where the snapshot lists version 3: files of different publications, refused",
		"new timestamp version 5 must be >= 7":           "the server offers timestamp.json version 5, older than version 7 this device already trusts: a rollback, refused",
		"new snapshot version 2 must be >= 3":            "the server offers snapshot.json version 2, older than version 3 this device already trusts: a rollback, refused",
		"expected 8, got 7":                              "the server offers snapshot.json version 7 where the timestamp lists version 8: files of different publications, refused",
		"bad version number, expected 3, got 5":          "the server offers root version 5 as the root after version 2: the root chain must go up one version at a time, refused",
		"the release root chain ends at version 2":       "",
	} {
		if got := versionSentence(msg); got != want {
			t.Errorf("versionSentence(%q)\n got %q\nwant %q", msg, got, want)
		}
	}
}

// TestTUFErrorMessages: a TUF failure names the repository and the file,
// says what happened and what to do, and keeps its class.
func TestTUFErrorMessages(t *testing.T) {
	var syntax *json.SyntaxError
	if err := json.Unmarshal([]byte("£"), new(any)); !errors.As(err, &syntax) {
		t.Fatalf("no syntax error from bad JSON: %v", err)
	}
	for _, tc := range []struct {
		err   *tufError
		class report.Class
		want  []string
		not   []string
	}{
		{&tufError{repo: deviceapi.RepoRelease, file: "products/thermo.json",
			err: &metadata.ErrUnsignedMetadata{Msg: "Verifying products/thermo failed, not enough signatures, got 0, want 1"}},
			report.ClassMetadataSignature,
			[]string{"release repository: products/thermo.json: the signature does not verify with the product's key",
				"not signed by the maker: check the mirror, or contact the maker", "got 0, want 1"}, nil},
		{&tufError{repo: deviceapi.RepoFleet, file: "targets.json", err: &metadata.ErrUnsignedMetadata{Msg: "x"}},
			report.ClassMetadataSignature,
			[]string{"fleet repository: targets.json: the signature does not verify with the fleet's online targets key", "contact the fleet's operator"}, nil},
		{&tufError{repo: deviceapi.RepoRelease, file: "snapshot.json",
			err: &metadata.ErrBadVersionNumber{Msg: "expected products/thermo.json version 3, got 4"}},
			report.ClassMetadataRollback,
			[]string{"release repository: snapshot.json: the server offers products/thermo.json version 3, older than version 4 this device already trusts: a rollback, refused",
				"check the mirror"},
			[]string{"expected products/thermo.json"}},
		{&tufError{repo: deviceapi.RepoRelease, file: "timestamp.json", err: syntax},
			report.ClassMetadataInvalid,
			[]string{"release repository: timestamp.json: not valid JSON at byte 1 (invalid character", "check the mirror or proxy"}, nil},
		{&tufError{repo: deviceapi.RepoFleet, file: "targets.json", err: &metadata.ErrLengthOrHashMismatch{Msg: "hash verification failed"}},
			report.ClassMetadataInvalid,
			[]string{"fleet repository: targets.json: the file does not match the length and hashes", "hash verification failed", "check the mirror or proxy"}, nil},
		{&tufError{repo: deviceapi.RepoRelease, file: "timestamp.json", err: &metadata.ErrExpiredMetadata{Msg: "timestamp.json is expired"}},
			report.ClassMetadataExpired,
			[]string{"release repository: timestamp.json: the signed metadata has expired (expired metadata error: timestamp.json is expired)", "check that the mirror syncs"}, nil},
		// limitFetcher's refusals name the file themselves.
		{&tufError{repo: deviceapi.RepoRelease, file: "targets.json",
			err: &metadata.ErrDownloadLengthMismatch{Msg: "targets.json is longer than 1000 bytes (metadata_max_bytes.targets): refused before parsing"}},
			report.ClassMetadataTooLong,
			[]string{"release repository: targets.json is longer than 1000 bytes (metadata_max_bytes.targets): refused before parsing"}, nil},
		// Unknown file, unknown error: the error as it is.
		{&tufError{repo: deviceapi.RepoRelease, err: errors.New("trusted snapshot not set")},
			report.ClassMetadataInvalid, []string{"release repository: trusted snapshot not set"}, nil},
	} {
		msg := tc.err.Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("message %q does not say %q", msg, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(msg, n) {
				t.Errorf("message %q still says %q", msg, n)
			}
		}
		if got := classify(fmt.Errorf("agent: %w", tc.err)); got != tc.class {
			t.Errorf("classify(%q) = %s, want %s", msg, got, tc.class)
		}
	}
}

func TestSignerOf(t *testing.T) {
	for _, tc := range []struct{ repo, file, want string }{
		{deviceapi.RepoRelease, "root.json", "the release repository's root keys (threshold)"},
		{deviceapi.RepoFleet, "timestamp.json", "the server's online timestamp key"},
		{deviceapi.RepoRelease, "snapshot.json", "the server's online snapshot key"},
		{deviceapi.RepoRelease, "targets.json", "the maker's offline release key"},
		{deviceapi.RepoFleet, "targets.json", "the fleet's online targets key"},
		{deviceapi.RepoRelease, "products/thermo.json", "the product's key"},
		{deviceapi.RepoRelease, "", "the keys its delegating role names"},
	} {
		if got := signerOf(tc.repo, tc.file); got != tc.want {
			t.Errorf("signerOf(%s, %q) = %q, want %q", tc.repo, tc.file, got, tc.want)
		}
	}
}

// TestPayloadFailure: a failed full payload names its target and what to
// do, and a delta that failed before it is said first.
func TestPayloadFailure(t *testing.T) {
	hash := fmt.Errorf("%w: sha256", payload.ErrHashMismatch)
	err := payloadFailure("thermo/1.1.0", nil, report.ClassPayloadHash, hash)
	if !errors.Is(err, payload.ErrHashMismatch) || !strings.HasPrefix(err.Error(), "thermo/1.1.0: payload: hash mismatch") ||
		!strings.Contains(err.Error(), "check the mirror or proxy") {
		t.Errorf("payloadFailure without a delta: %v", err)
	}
	d := &DeltaOutcome{Version: "1.1.0", From: "1.0.0", Reason: "thermo/1.1.0.from-1.0.0.delta: 404"}
	err = payloadFailure("thermo/1.1.0", d, report.ClassPayloadHash, hash)
	want := "the delta from 1.0.0 was not used (thermo/1.1.0.from-1.0.0.delta: 404), then the full payload failed: thermo/1.1.0: payload: hash mismatch"
	if !strings.HasPrefix(err.Error(), want) || !errors.Is(err, payload.ErrHashMismatch) {
		t.Errorf("payloadFailure after a delta:\n got %v\nwant prefix %s", err, want)
	}
	if got := payloadFailure("thermo/1.1.0", nil, report.ClassRollbackVersion, errors.New("x")); got.Error() != "thermo/1.1.0: x" {
		t.Errorf("a class without advice: %v", got)
	}
}

// TestFetchLog: the limit fetcher records the metadata file requested last
// (role name, not the versioned URL), also when the request fails, and
// leaves target files out.
func TestFetchLog(t *testing.T) {
	const dir = "https://u.example/repo/release/metadata/"
	l := &fetchLog{}
	f := &limitFetcher{next: &fakeFetcher{body: []byte("{}")}, metadataDir: dir, log: l,
		max: MetadataMaxBytes{Root: 2000, Timestamp: 1000, Snapshot: 3000, Targets: 4000}}
	f.DownloadFile(dir+"4.products%2Fthermo.json", 0, time.Second)
	f.DownloadFile("https://u.example/repo/release/targets/thermo/1.1.0", 10, time.Second)
	if got := l.take(); got != "products/thermo.json" {
		t.Errorf("after a role and a target: %q, want products/thermo.json", got)
	}
	if got := l.take(); got != "" {
		t.Errorf("take does not forget: %q", got)
	}
	if _, err := f.DownloadFile(dir+"3.snapshot.json", 5000, time.Second); err == nil {
		t.Fatal("a snapshot signed longer than its limit was accepted")
	}
	if got := l.take(); got != "snapshot.json" {
		t.Errorf("after a refused snapshot: %q", got)
	}
}

// TestStatusTextDeltaNotUsed: the plain-text status says that the last
// delta was not used and why (it was only in status --json).
func TestStatusTextDeltaNotUsed(t *testing.T) {
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	st := &Status{Product: "thermo", Version: "1.0.0", AutoUpdates: "on",
		LastDelta: &DeltaOutcome{Version: "1.1.0", From: "1.0.0", Reason: "thermo/1.1.0.from-1.0.0.delta: 404", At: at}}
	var b strings.Builder
	st.WriteText(&b)
	want := "delta:            1.1.0 from 1.0.0 not used on 2026-12-07 14:00 UTC: thermo/1.1.0.from-1.0.0.delta: 404\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status text does not say %q:\n%s", want, b.String())
	}
	st.LastDelta.Used, b = true, strings.Builder{}
	st.WriteText(&b)
	if strings.Contains(b.String(), "delta:") {
		t.Errorf("a used delta is shown as failed:\n%s", b.String())
	}
}
