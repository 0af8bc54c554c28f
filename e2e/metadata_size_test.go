package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/store"
)

// unsignedTargets is n bytes of JSON shaped like a targets role that lists
// thousands of targets and carries no signature: what a hostile mirror
// serves to make a device spend its memory parsing before it checks a
// signature.
func unsignedTargets(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0.31","version":99,"expires":"2099-01-01T00:00:00Z","targets":{`)
	for i := 0; b.Len() < n-100; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s/9.%d.0":{"length":1,"hashes":{"sha256":"00"},"custom":{"x":[0,0,0,0]}}`, product, i)
	}
	b.WriteString(`}}}`)
	for b.Len() < n {
		b.WriteByte(' ')
	}
	return []byte(b.String())
}

// TestOversizedUnsignedMetadata: a mirror serves 4.9 MB of unsigned JSON
// (below go-tuf's own 5,000,000-byte default) in place of a targets role.
// The snapshot lists the role's length and hash, so the device stops
// reading at the signed length and refuses the document without parsing
// it (metadata-too-long), keeps running its verified image, and updates
// once the mirror serves the real document again.
func TestOversizedUnsignedMetadata(t *testing.T) {
	junk := unsignedTargets(4_900_000)
	metadataFile := func(repoName, suffix string) func(string) bool {
		return func(p string) bool {
			return strings.HasPrefix(p, "/repo/"+repoName+"/metadata/") && strings.HasSuffix(p, suffix)
		}
	}
	for _, tc := range []struct {
		name    string
		match   func(string) bool
		chunked bool // no Content-Length: the device must stop reading
	}{
		{"release targets", metadataFile("release", ".targets.json"), false},
		{"fleet targets", metadataFile("fleet", ".targets.json"), true},
		{"product role", metadataFile("release", ".products/"+product+".json"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := offered(t, worldOptions{})
			d := w.device("d", 0)
			var requests int
			w.proxy.on(tc.match, func(rw http.ResponseWriter, _ *http.Request) {
				requests++
				if tc.chunked {
					rw.Write(junk[:1024])
					rw.(http.Flusher).Flush()
					rw.Write(junk[1024:])
					return
				}
				rw.Header().Set("Content-Length", strconv.Itoa(len(junk)))
				rw.Write(junk)
			})
			w.cycle(d)
			if requests == 0 {
				t.Fatal("the device never asked for the document")
			}
			st := w.assertRefused(d, "1.0.0", report.ClassMetadataTooLong, report.OutcomeRejected)
			if want := "(the length its signed entry lists): refused before parsing"; !strings.Contains(st.LastCheck.Reason, want) {
				t.Errorf("reason %q does not say %q", st.LastCheck.Reason, want)
			}
			w.proxy.clear()
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
		})
	}
}

// stripSnapshot signs, with the release repository's online keys, a new
// snapshot that lists only versions, as servers did before snapshots
// carried lengths and hashes, and a timestamp for it. The server reloads.
func (w *world) stripSnapshot() {
	w.t.Helper()
	ctx := context.Background()
	sk, tk := w.key("online/release-snapshot"), w.key("online/release-timestamp")
	err := w.p.Store.Update(ctx, func(tx store.Tx) error {
		m, err := tx.LatestMetadata(ctx, deviceapi.RepoRelease, repo.RoleSnapshot)
		if err != nil {
			return err
		}
		snap, err := metadata.Snapshot().FromBytes(m.Body)
		if err != nil {
			return err
		}
		snap.Signed.Version++
		for path, mf := range snap.Signed.Meta {
			snap.Signed.Meta[path] = metadata.MetaFile(mf.Version)
		}
		snap.ClearSignatures()
		if _, err := snap.Sign(sk); err != nil {
			return err
		}
		body, err := snap.ToBytes(false)
		if err != nil {
			return err
		}
		if err := tx.PutMetadata(ctx, store.Metadata{Repo: deviceapi.RepoRelease, Role: repo.RoleSnapshot,
			Version: snap.Signed.Version, Body: body, Expires: snap.Signed.Expires}); err != nil {
			return err
		}
		return repo.RefreshTimestamp(ctx, tx, deviceapi.RepoRelease, time.Now(), w.p.Lifetimes(), tk)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.reload()
}

// TestOversizedMetadataBehindAnOldSnapshot: behind a snapshot that lists
// no lengths (signed before they were listed), the agent's own limit for
// the targets role (metadata_max_bytes.targets, 1 MiB by default) refuses
// the 4.9 MB unsigned document before parsing it; the server's next
// re-signing lists the lengths again and the device updates.
func TestOversizedMetadataBehindAnOldSnapshot(t *testing.T) {
	w := offered(t, worldOptions{})
	w.stripSnapshot()
	d := w.device("d", 0)
	junk := unsignedTargets(4_900_000)
	w.proxy.on(func(p string) bool {
		return strings.HasPrefix(p, "/repo/release/metadata/") && strings.HasSuffix(p, ".targets.json")
	}, func(rw http.ResponseWriter, _ *http.Request) {
		rw.Write(junk[:1024])
		rw.(http.Flusher).Flush()
		rw.Write(junk[1024:])
	})
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", report.ClassMetadataTooLong, report.OutcomeRejected)
	if want := "targets.json is longer than 1048576 bytes (metadata_max_bytes.targets): refused before parsing"; !strings.Contains(st.LastCheck.Reason, want) {
		t.Errorf("reason %q does not say %q", st.LastCheck.Reason, want)
	}
	w.proxy.clear()
	if changed, err := w.p.ResignDue(context.Background()); err != nil || !changed {
		t.Fatalf("ResignDue over a snapshot without lengths: %v, %v; want a new snapshot", changed, err)
	}
	w.reload()
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}
