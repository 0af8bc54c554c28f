package project_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/delta"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
)

// release add --delta-from: a delta from a zstd-compressed earlier release
// (its decompressed image is the source), published as its own target,
// listed in the manifest, and offered by a rollout with identical length
// and hashes; it applies to the source image and gives the new image.
func TestAddReleaseDeltaFrom(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	addProduct(t, p, thermostat())
	old := strings.Repeat("firmware block ", 50_000)
	spec := releaseSpec("thermostat", "1.1.0", 2, old)
	spec.Compression = release.CompressionZstd
	addRelease(t, p, spec)
	img := strings.Replace(old, "firmware block firmware", "firmware BLOCK firmware", 3)
	spec = releaseSpec("thermostat", "1.2.0", 3, img)
	spec.DeltaFrom = []string{"1.1.0"}
	addRelease(t, p, spec)

	targets := loadTargets(t, p, deviceapi.RepoRelease, repo.ProductRole("thermostat")).Signed.Targets
	m, err := release.ManifestFromCustom(targets["thermostat/1.2.0"].Custom)
	if err != nil {
		t.Fatal(err)
	}
	oldSum := sha256.Sum256([]byte(old))
	if len(m.Deltas) != 1 || m.Deltas[0].SourceSHA256 != hex.EncodeToString(oldSum[:]) || m.Deltas[0].SourceLength != int64(len(old)) {
		t.Fatalf("manifest deltas %+v", m.Deltas)
	}
	dl := m.Deltas[0]
	tf := targets[dl.Target]
	if tf == nil || tf.Length != dl.Length || hex.EncodeToString(tf.Hashes["sha256"]) != dl.SHA256 {
		t.Fatalf("delta target %+v, manifest %+v", tf, dl)
	}
	path, err := p.Blobs.(*blob.Store).Path(dl.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := delta.Apply(t.Context(), &out, delta.Source{R: strings.NewReader(old), Size: int64(len(old)), SHA256: oldSum},
		bytes.NewReader(readFile(t, path))); err != nil {
		t.Fatal(err)
	}
	if out.String() != img {
		t.Fatal("the delta does not give the new image")
	}

	if _, err := p.StartRollout(t.Context(), "thermostat", "1.2.0", 100); err != nil {
		t.Fatal(err)
	}
	ft := loadTargets(t, p, deviceapi.RepoFleet, repo.RoleTargets).Signed.Targets[dl.Target]
	if ft == nil || ft.Length != tf.Length || !bytes.Equal(ft.Hashes["sha256"], tf.Hashes["sha256"]) {
		t.Fatalf("fleet delta target %+v", ft)
	}

	// An unknown source version is refused.
	spec = releaseSpec("thermostat", "1.3.0", 3, img)
	spec.DeltaFrom = []string{"1.0.9"}
	if _, err := p.AddRelease(t.Context(), spec); err == nil {
		t.Error("delta from an unknown release accepted")
	}
}
