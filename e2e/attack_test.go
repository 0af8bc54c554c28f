package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// offered sets up the usual attack target: 1.1.0 published and rolled out.
func offered(t *testing.T, o worldOptions) *world {
	w := newWorld(t, o)
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	return w
}

func TestTamperedPayload(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.proxy.rewrite(isPayload("1.1.0"), func(_ string, b []byte) []byte {
		b[len(b)/2] ^= 0x40
		return b
	})
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "payload-hash-mismatch", "rejected")
	// With the real payload the device updates: the failure was not held
	// against the release.
	w.proxy.clear()
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}

func TestTamperedMetadata(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.proxy.rewrite(contains("/repo/fleet/metadata/"), func(path string, b []byte) []byte {
		if bytes.HasSuffix([]byte(path), []byte(".targets.json")) {
			return bytes.Replace(b, []byte(`"percent":100`), []byte(`"percent":99`), 1)
		}
		return b
	})
	w.cycle(d)
	// The snapshot lists the targets role's hash: the changed document is
	// refused before it is parsed, let alone its signatures checked.
	st := w.assertRefused(d, "1.0.0", "metadata-invalid", "rejected")
	if !strings.Contains(st.LastCheck.Reason, "hash") {
		t.Errorf("reason %q does not name the hash", st.LastCheck.Reason)
	}
}

func TestTruncatedMetadata(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.proxy.rewrite(suffix("/repo/release/metadata/timestamp.json"), func(_ string, b []byte) []byte { return b[:len(b)/2] })
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "metadata-invalid", "rejected")
}

// forgeTargets serves the fleet's current targets.json changed and
// re-signed by key. The snapshot lists the length and hash of every
// targets role and the timestamp those of the snapshot, so it also serves
// a snapshot and a timestamp re-signed by key that list the forged
// documents: the most an attacker without the online keys can do.
func forgeTargets(t *testing.T, w *world, key *keys.Key, change func(*metadata.TargetsType)) {
	const dir = "/repo/fleet/metadata/"
	list := func(mf *metadata.MetaFiles, b []byte) {
		sum := sha256.Sum256(b)
		mf.Length, mf.Hashes = int64(len(b)), metadata.Hashes{"sha256": sum[:]}
	}
	targets := func(b []byte) []byte {
		md, err := metadata.Targets().FromBytes(b)
		if err != nil {
			t.Errorf("parsing targets: %v", err)
			return b
		}
		change(&md.Signed)
		resign(t, md, key)
		out, _ := md.ToBytes(false)
		return out
	}
	snapshot := func(b []byte) []byte {
		md, err := metadata.Snapshot().FromBytes(b)
		if err != nil {
			t.Errorf("parsing snapshot: %v", err)
			return b
		}
		mf := md.Signed.Meta["targets.json"]
		real, _ := w.proxy.fetch(fmt.Sprintf("%s%d.targets.json", dir, mf.Version))
		list(mf, targets(real))
		resign(t, md, key)
		out, _ := md.ToBytes(false)
		return out
	}
	timestamp := func(b []byte) []byte {
		md, err := metadata.Timestamp().FromBytes(b)
		if err != nil {
			t.Errorf("parsing timestamp: %v", err)
			return b
		}
		mf := md.Signed.Meta["snapshot.json"]
		real, _ := w.proxy.fetch(fmt.Sprintf("%s%d.snapshot.json", dir, mf.Version))
		list(mf, snapshot(real))
		resign(t, md, key)
		out, _ := md.ToBytes(false)
		return out
	}
	in := func(suffix string) func(string) bool {
		return func(p string) bool { return strings.HasPrefix(p, dir) && strings.HasSuffix(p, suffix) }
	}
	w.proxy.rewrite(in(".targets.json"), func(_ string, b []byte) []byte { return targets(b) })
	w.proxy.rewrite(in(".snapshot.json"), func(_ string, b []byte) []byte { return snapshot(b) })
	w.proxy.rewrite(in("/timestamp.json"), func(_ string, b []byte) []byte { return timestamp(b) })
}

// resign replaces md's signatures with one by key.
func resign[T metadata.Roles](t *testing.T, md *metadata.Metadata[T], key *keys.Key) {
	md.ClearSignatures()
	if _, err := md.Sign(key); err != nil {
		t.Errorf("signing: %v", err)
	}
}

func TestMetadataSignedByWrongKey(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	rogue, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	forgeTargets(t, w, rogue, func(*metadata.TargetsType) {})
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "metadata-signature", "rejected")
}

// TestForgedRootRotation: a new root signed by one of the three root keys
// (threshold 2) and by rogue keys is rejected.
func TestForgedRootRotation(t *testing.T) {
	w := offered(t, worldOptions{production: true})
	d := w.device("d", 0)
	one, err := keys.Load(filepath.Join(w.p.Dir, "keys", "offline", "release-root-1.key"), []byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	rogue1, _ := keys.Generate()
	rogue2, _ := keys.Generate()
	cur, _ := w.proxy.fetch("/repo/release/metadata/1.root.json")
	root, err := metadata.Root().FromBytes(cur)
	if err != nil {
		t.Fatal(err)
	}
	root.Signed.Version = 2
	for _, id := range root.Signed.Roles["root"].KeyIDs {
		if id != one.KeyID() {
			if err := root.Signed.RevokeKey(id, "root"); err != nil {
				t.Fatal(err)
			}
		}
	}
	root.Signed.AddKey(rogue1.TUFKey(), "root")
	root.Signed.AddKey(rogue2.TUFKey(), "root")
	root.ClearSignatures()
	for _, k := range []*keys.Key{one, rogue1, rogue2} {
		if _, err := root.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	forged, _ := root.ToBytes(false)
	w.proxy.on(suffix("/repo/release/metadata/2.root.json"), func(rw http.ResponseWriter, _ *http.Request) { rw.Write(forged) })
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "metadata-signature", "rejected")
}

// TestRootRotation: a rotation signed by the old threshold and the new key
// set is followed, and updates keep working.
func TestRootRotation(t *testing.T) {
	w := newWorld(t, worldOptions{production: true})
	d := w.device("d", 0)
	w.cycle(d)
	if err := w.p.RotateRootKey(context.Background(), "release", 3); err != nil {
		t.Fatal(err)
	}
	if err := w.p.RotateRootKey(context.Background(), "fleet", 1); err != nil {
		t.Fatal(err)
	}
	w.reload()
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	for _, name := range []string{"release", "fleet"} {
		b, err := os.ReadFile(filepath.Join(d.Config.DataDir, "tuf", name, "root.json"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := metadata.Root().FromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if r.Signed.Version != 2 {
			t.Fatalf("%s: device trusts root v%d, want v2", name, r.Signed.Version)
		}
	}
}

func TestFreezeExpiredTimestamp(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	d.Clock = clock.NewFake(time.Now().Add(50 * time.Hour)) // timestamps live 24 h
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "metadata-expired", "rejected")
}

func TestRollbackByVersion(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	w.rollout("1.0.0", 100) // a stolen online key offers the old release again
	w.cycle(d)
	w.assertRefused(d, "1.1.0", "rollback-version", "rejected")
}

func TestRollbackBySecurityVersion(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 3) // the device already had security version 3
	w.publish("1.1.0", 2, release.KindFeature)
	w.rollout("1.1.0", 100)
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "rollback-security-version", "rejected")
}

// fleetTargets changes the fleet targets with the fleet's online key, as a
// thief of that key could.
func fleetTargets(t *testing.T, w *world, change func(*metadata.TargetsType)) {
	ctx := context.Background()
	tk, sk, tsk := w.key("online/fleet-targets"), w.key("online/fleet-snapshot"), w.key("online/fleet-timestamp")
	err := w.p.Store.Update(ctx, func(tx store.Tx) error {
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoFleet, repo.RoleTargets, time.Now(), w.p.Lifetimes(),
			func(tt *metadata.TargetsType) error { change(tt); return nil }, tk)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoFleet, time.Now(), w.p.Lifetimes(), sk, tsk)
	})
	if err != nil {
		t.Fatal(err)
	}
	w.reload()
}

// TestTargetOnlyInFleet: a thief of the fleet's online keys, who also
// serves the payload (a hostile mirror), offers an image the release keys
// never signed, with a complete release manifest in the fleet entry that
// would pass every check of the manifest itself. The agent refuses it
// because the release repository does not list it, says which target, and
// never asks for its payload.
func TestTargetOnlyInFleet(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	evil := image("9.9.9")
	name := release.TargetName(product, "9.9.9")
	m := release.Manifest{Product: product, Version: "9.9.9", Hardware: []string{hardware}, SecurityVersion: 9, Kind: release.KindSecurity,
		Impact: release.Impact{DataCollection: "none", Functionality: "none"}, Payload: release.Payload{Type: "rootfs", Compression: "none"},
		Published: time.Now().UTC()}
	custom := forgedCustom(t, m)
	if got, err := release.ManifestFromCustom(&custom); err != nil || got.Version != "9.9.9" {
		t.Fatalf("the forged manifest is not complete: %v", err)
	}
	fleetTargets(t, w, func(tt *metadata.TargetsType) {
		tt.Targets[name] = repo.NewTarget(repo.TargetInfo{Path: name, Length: int64(len(evil)), SHA256: sha256Sum(evil), Custom: custom})
	})
	var fetched atomic.Int64
	w.proxy.on(isPayload("9.9.9"), func(rw http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		rw.Write(evil)
	})
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", "repository-mismatch", "rejected")
	assertNotArmed(t, d)
	if st.LastCheck.Offered != "9.9.9" || !strings.Contains(st.LastCheck.Reason, name) || !strings.Contains(st.LastCheck.Reason, "tell the fleet's operator") {
		t.Fatalf("last check %+v, want the refusal of %s named", st.LastCheck, name)
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("the forged payload was requested %d times", n)
	}
}

// forgedCustom is a fleet target's custom metadata carrying both the
// rollout rule (100 %) and the release manifest m.
func forgedCustom(t *testing.T, m release.Manifest) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	fields["rollout"] = map[string]any{"percent": 100, "halted": false}
	b, err = json.Marshal(map[string]any{"uptrust": fields})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTargetHashesDiffer(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	fleetTargets(t, w, func(tt *metadata.TargetsType) {
		tf := tt.Targets[product+"/1.1.0"]
		other := make([]byte, 32)
		rand.Read(other)
		tf.Hashes["sha256"] = other
	})
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", "repository-mismatch", "rejected")
	if !bytes.Contains([]byte(st.LastCheck.Reason), []byte("different hashes")) {
		t.Fatalf("reason does not say what differs: %q", st.LastCheck.Reason)
	}
}

// TestEndlessPayload: after the signed bytes the mirror sends junk without
// end (no Content-Length). The fetch layer's limit stops the answer at the
// first byte beyond the signed length: the agent takes exactly the signed
// length (counted by its download counter), not one byte more, and says
// the answer was too long. (The payload layer's own limit, behind it, is
// tested in internal/agent/payload: no answer reaches it past this one.)
func TestEndlessPayload(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.proxy.on(isPayload("1.1.0"), func(rw http.ResponseWriter, r *http.Request) {
		body, _ := w.proxy.fetch(r.URL.Path)
		rw.Write(body)
		junk := make([]byte, 64<<10)
		for i := 0; i < 1<<14; i++ { // up to 1 GiB, until the agent hangs up
			if _, err := rw.Write(junk); err != nil {
				return
			}
		}
	})
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", "payload-too-long", "rejected")
	if c := download(t, d, "1.1.0"); c.Bytes != imgSize || c.Complete {
		t.Fatalf("download counter %+v: want exactly the %d signed bytes taken, not complete", c, imgSize)
	}
	if !strings.Contains(st.LastCheck.Reason, fetch.ErrTooLong.Error()) || strings.Contains(st.LastCheck.Reason, payload.ErrTooLong.Error()) {
		t.Fatalf("reason %q: want the fetch layer's limit (%q) to stop the answer", st.LastCheck.Reason, fetch.ErrTooLong)
	}
}

// TestAnnouncedTooLongPayload: the mirror announces (Content-Length) a
// payload a GiB longer than the signed length. The fetch layer refuses the
// answer on its headers, before a byte of the body is read.
func TestAnnouncedTooLongPayload(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.proxy.on(isPayload("1.1.0"), func(rw http.ResponseWriter, r *http.Request) {
		body, _ := w.proxy.fetch(r.URL.Path)
		rw.Header().Set("Content-Length", strconv.Itoa(len(body)+1<<30))
		rw.Write(body)
	})
	w.cycle(d)
	st := w.assertRefused(d, "1.0.0", "payload-too-long", "rejected")
	if !strings.Contains(st.LastCheck.Reason, fetch.ErrTooLong.Error()) || !strings.Contains(st.LastCheck.Reason, strconv.Itoa(imgSize+1<<30)) {
		t.Fatalf("reason %q: want the announced length refused by the fetch layer", st.LastCheck.Reason)
	}
	if c := download(t, d, "1.1.0"); c.Bytes != 0 || c.Requests != 0 {
		t.Fatalf("download counter %+v: want the answer refused before its body", c)
	}
	// A mirror that tells the truth again is used at once.
	w.proxy.clear()
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}

func TestWrongHardware(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	w.publish("1.1.0", 2, release.KindSecurity, "rev-b")
	w.rollout("1.1.0", 100)
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "not-applicable", "rejected")
}

// TestWrongProduct: the product key signs a target whose manifest names
// another product.
func TestWrongProduct(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	ctx := context.Background()
	img := image("1.2.0")
	w.images["1.2.0"] = img
	info, err := w.p.Blobs.Put(ctx, bytes.NewReader(img), 0)
	if err != nil {
		t.Fatal(err)
	}
	m := release.Manifest{Product: "doorbell", Version: "1.2.0", Hardware: []string{hardware}, SecurityVersion: 2, Kind: release.KindSecurity,
		Impact: release.Impact{DataCollection: "none", Functionality: "none"}, Payload: release.Payload{Type: "rootfs", Compression: "none"}}
	custom, _ := json.Marshal(release.Custom{Uptrust: &m})
	sum, _ := hex.DecodeString(info.SHA256)
	w.signAsProduct(&store.Release{Product: product, Version: "1.2.0", SecurityVersion: 2, Kind: "security",
		Target: product + "/1.2.0", Length: info.Size, SHA256: info.SHA256, Manifest: custom, Created: time.Now()},
		repo.NewTarget(repo.TargetInfo{Path: product + "/1.2.0", Length: info.Size, SHA256: sum, Custom: custom}))
	w.rollout("1.2.0", 100)
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "not-applicable", "rejected")
}

func TestServerStallsThenRecovers(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	var mu sync.Mutex
	var waits []time.Duration
	d.HTTP.Sleep = func(ctx context.Context, dur time.Duration) error {
		mu.Lock()
		waits = append(waits, dur)
		mu.Unlock()
		return nil
	}
	stall := make(chan struct{})
	w.proxy.on(suffix("/repo/fleet/metadata/timestamp.json"), func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	})
	w.cycle(d)
	close(stall)
	w.assertRefused(d, "1.0.0", "network", "failed")
	if len(waits) < 2 {
		t.Fatalf("the agent did not back off between attempts: waits %v", waits)
	}
	// The stall ends: the next cycle updates.
	w.proxy.clear()
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}

func TestServerReturnsGarbage(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.proxy.on(suffix("/repo/fleet/metadata/timestamp.json"), func(rw http.ResponseWriter, _ *http.Request) {
		junk := make([]byte, 900)
		rand.Read(junk)
		rw.Write(junk)
	})
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "metadata-invalid", "rejected")
}

func TestTransientErrorsAreRetried(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	var mu sync.Mutex
	failures := 2
	w.proxy.on(func(p string) bool {
		mu.Lock()
		defer mu.Unlock()
		if isPayload("1.1.0")(p) && failures > 0 {
			failures--
			return true
		}
		return false
	}, func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusServiceUnavailable) })
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}
