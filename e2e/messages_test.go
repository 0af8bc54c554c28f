package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// forgeReleaseSnapshot serves, in place of the release repository's
// current timestamp and snapshot, new versions signed with the server's
// online keys, as a thief of those keys could. When rogue is not nil the
// snapshot lists a new version of the product role signed by rogue (and
// the proxy serves it); change then edits the snapshot before it is signed.
func forgeReleaseSnapshot(t *testing.T, w *world, rogue *keys.Key, change func(*metadata.SnapshotType)) {
	t.Helper()
	const dir = "/repo/release/metadata/"
	role := "products/" + product
	get := func(name string) []byte {
		b, status := w.proxy.fetch(dir + name)
		if status != http.StatusOK {
			t.Fatalf("fetching %s: %d", name, status)
		}
		return b
	}
	list := func(mf *metadata.MetaFiles, b []byte) {
		sum := sha256.Sum256(b)
		mf.Length, mf.Hashes = int64(len(b)), metadata.Hashes{"sha256": sum[:]}
	}
	serve := func(name string, b []byte) {
		w.proxy.on(func(p string) bool { return p == dir+name }, func(rw http.ResponseWriter, _ *http.Request) { rw.Write(b) })
	}
	ts, err := metadata.Timestamp().FromBytes(get("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	sv := ts.Signed.Meta["snapshot.json"].Version
	snap, err := metadata.Snapshot().FromBytes(get(fmt.Sprintf("%d.snapshot.json", sv)))
	if err != nil {
		t.Fatal(err)
	}
	if rogue != nil {
		mf := snap.Signed.Meta[role+".json"]
		pr, err := metadata.Targets().FromBytes(get(fmt.Sprintf("%d.%s.json", mf.Version, url.PathEscape(role))))
		if err != nil {
			t.Fatal(err)
		}
		pr.Signed.Version++
		resign(t, pr, rogue)
		b, _ := pr.ToBytes(false)
		mf.Version = pr.Signed.Version
		list(mf, b)
		serve(fmt.Sprintf("%d.%s.json", pr.Signed.Version, role), b)
	}
	if change != nil {
		change(&snap.Signed)
	}
	snap.Signed.Version = sv + 1
	resign(t, snap, w.key("online/release-snapshot"))
	sb, _ := snap.ToBytes(false)
	serve(fmt.Sprintf("%d.snapshot.json", sv+1), sb)
	ts.Signed.Version++
	tm := ts.Signed.Meta["snapshot.json"]
	tm.Version = sv + 1
	list(tm, sb)
	resign(t, ts, w.key("online/release-timestamp"))
	tb, _ := ts.ToBytes(false)
	serve("timestamp.json", tb)
}

// assertReason fails unless the last check's reason contains every part.
func assertReason(t *testing.T, reason string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(reason, p) {
			t.Errorf("reason %q does not say %q", reason, p)
		}
	}
}

// TestMessageDelegatedRoleBadSignature: a product role signed by a key
// that is not the product's, listed by a snapshot and timestamp signed
// with the real online keys, is refused as a signature failure that names
// the file, not as the repositories disagreeing.
func TestMessageDelegatedRoleBadSignature(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	rogue, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	forgeReleaseSnapshot(t, w, rogue, nil)
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", report.ClassMetadataSignature, "rejected")
	assertReason(t, st.LastCheck.Reason, "release repository: products/thermostat.json: ", "does not verify with the product's key",
		"check the mirror", "contact the maker")
	if strings.Contains(st.LastCheck.Reason, "not signed in the release repository") {
		t.Errorf("reason %q still says the repositories disagree", st.LastCheck.Reason)
	}
}

// TestMessageParseErrorNamesFile: a document that is not JSON is refused
// with a reason that names the file and says what to do.
func TestMessageParseErrorNamesFile(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.proxy.on(suffix("/repo/release/metadata/timestamp.json"), func(rw http.ResponseWriter, _ *http.Request) {
		rw.Write([]byte("£ 404 page not found"))
	})
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", report.ClassMetadataInvalid, "rejected")
	assertReason(t, st.LastCheck.Reason, "release repository: timestamp.json: ", "not valid JSON", "check the mirror")
}

// TestMessageSnapshotRollback: a snapshot (signed with the online key)
// that lists an older version of the product role than the device already
// trusts is refused as a rollback, in words that name both versions in the
// right order.
func TestMessageSnapshotRollback(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	w.cycle(d)
	w.publish("1.1.0", 2, release.KindSecurity)
	w.cycle(d)
	w.assertRunning(d, "1.0.0")
	var trusted int64
	forgeReleaseSnapshot(t, w, nil, func(s *metadata.SnapshotType) {
		mf := s.Meta["products/"+product+".json"]
		trusted = mf.Version
		mf.Version--
	})
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", report.ClassMetadataRollback, "rejected")
	assertReason(t, st.LastCheck.Reason, "release repository: snapshot.json: ",
		fmt.Sprintf("the server offers products/%s.json version %d, older than version %d this device already trusts: a rollback, refused", product, trusted-1, trusted),
		"check the mirror")
}

// TestMessageDeltaAndFallbackFailed: when the delta and then the full
// payload both fail, the reason and the plain-text status say both, with
// the files and what to do.
func TestMessageDeltaAndFallbackFailed(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	w.publishDelta("1.1.0", 2, near(w.images["1.0.0"], "1.1.0"), release.CompressionNone, "1.0.0")
	w.rollout("1.1.0", 100)
	flip := func(_ string, b []byte) []byte {
		b[len(b)/2] ^= 0x55
		return b
	}
	w.proxy.rewrite(isDelta, flip)
	w.proxy.rewrite(isPayload("1.1.0"), flip)
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", report.ClassPayloadHash, "rejected")
	delta, full := product+"/1.1.0.from-1.0.0.delta", product+"/1.1.0"
	assertReason(t, st.LastCheck.Reason, delta, full, "the delta from 1.0.0 was not used", "check the mirror")
	var text bytes.Buffer
	st.WriteText(&text)
	for _, want := range []string{"delta:", delta, "not used"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text does not say %q:\n%s", want, text.String())
		}
	}
}
