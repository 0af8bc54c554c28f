package e2e

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/multirepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
)

// The conformance tests show that both repositories are plain TUF 1.0:
// go-tuf's own clients, knowing nothing of uptrust, can refresh them,
// verify every signature and download the firmware. Nothing here uses the
// agent.

// plainClient is go-tuf's stock updater for one repository, configured as
// any TUF client would be: the provisioned root, the metadata and targets
// URLs, and empty local caches.
func plainClient(t *testing.T, w *world, name string) *updater.Updater {
	t.Helper()
	root := deviceRoot(t, w, name)
	base := w.url + "/repo/" + name
	cfg, err := config.New(base+"/metadata", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = base + "/targets"
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	u, err := updater.New(cfg)
	if err != nil {
		t.Fatalf("%s: updater.New: %v", name, err)
	}
	if err := u.Refresh(); err != nil {
		t.Fatalf("%s: Refresh: %v", name, err)
	}
	return u
}

func deviceRoot(t *testing.T, w *world, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformancePlainTUFClient(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	want := w.images["1.1.0"]

	for _, name := range []string{"release", "fleet"} {
		t.Run(name, func(t *testing.T) {
			u := plainClient(t, w, name)
			trusted := u.GetTrustedMetadataSet()
			if !trusted.Root.Signed.ConsistentSnapshot {
				t.Fatal("root.json: consistent_snapshot is not true")
			}
			for role, spec := range map[string]string{
				"root":      trusted.Root.Signed.SpecVersion,
				"timestamp": trusted.Timestamp.Signed.SpecVersion,
				"snapshot":  trusted.Snapshot.Signed.SpecVersion,
				"targets":   trusted.Targets[metadata.TARGETS].Signed.SpecVersion,
			} {
				if !strings.HasPrefix(spec, "1.") {
					t.Errorf("%s: spec_version %q, want 1.x", role, spec)
				}
			}

			info, err := u.GetTargetInfo("thermostat/1.1.0")
			if err != nil {
				t.Fatalf("GetTargetInfo: %v", err)
			}
			if info.Length != int64(len(want)) || !bytes.Equal(info.Hashes["sha256"], sha256Sum(want)) {
				t.Fatalf("target info: length %d, hashes %v; want the published image", info.Length, info.Hashes)
			}
			path, got, err := u.DownloadTarget(info, "", "")
			if err != nil {
				t.Fatalf("DownloadTarget: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("downloaded payload differs from the published image")
			}
			onDisk, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(onDisk, want) {
				t.Fatalf("payload saved at %s differs from the published image (%v)", path, err)
			}
			// The updater now finds it in its cache, verified again.
			if p, b, err := u.FindCachedTarget(info, ""); err != nil || p == "" || !bytes.Equal(b, want) {
				t.Fatalf("FindCachedTarget = %q, %d bytes, %v", p, len(b), err)
			}
		})
	}

	t.Run("support declaration", func(t *testing.T) {
		u := plainClient(t, w, "release")
		info, err := u.GetTargetInfo("thermostat/support.json")
		if err != nil {
			t.Fatalf("GetTargetInfo(thermostat/support.json): %v", err)
		}
		_, b, err := u.DownloadTarget(info, "", "")
		if err != nil {
			t.Fatal(err)
		}
		var s release.Support
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("support.json: %v: %s", err, b)
		}
		if err := s.Validate(); err != nil || s.Product != product || !slices.Contains(s.Hardware, hardware) {
			t.Fatalf("support.json %+v (%v)", s, err)
		}
	})
}

// TestConformanceSignatures re-verifies every top-level document as served,
// outside the updater: each one's signatures over the canonical JSON of
// "signed" meet the threshold of the keys the trusted root delegates to.
func TestConformanceSignatures(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	for _, name := range []string{"release", "fleet"} {
		t.Run(name, func(t *testing.T) {
			u := plainClient(t, w, name)
			trusted := u.GetTrustedMetadataSet()
			base := "/repo/" + name + "/metadata/"
			get := func(file string) []byte {
				t.Helper()
				b, status := w.proxy.fetch(base + file)
				if status != 200 {
					t.Fatalf("GET %s%s: %d", base, file, status)
				}
				return b
			}

			rootRaw := get("root.json")
			var raw struct {
				Signed map[string]any `json:"signed"`
			}
			if err := json.Unmarshal(rootRaw, &raw); err != nil {
				t.Fatal(err)
			}
			if raw.Signed["consistent_snapshot"] != true {
				t.Fatalf("root.json as served: consistent_snapshot = %v", raw.Signed["consistent_snapshot"])
			}
			root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(rootRaw)
			if err != nil {
				t.Fatal(err)
			}
			if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
				t.Fatalf("root.json is not signed by its own root keys: %v", err)
			}
			ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromBytes(get("timestamp.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := root.VerifyDelegate(metadata.TIMESTAMP, ts); err != nil {
				t.Fatalf("timestamp.json: %v", err)
			}
			snapVer := ts.Signed.Meta["snapshot.json"].Version
			snap, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(get(itoa(snapVer) + ".snapshot.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := root.VerifyDelegate(metadata.SNAPSHOT, snap); err != nil {
				t.Fatalf("snapshot.json: %v", err)
			}
			targetsVer := snap.Signed.Meta["targets.json"].Version
			targets, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(get(itoa(targetsVer) + ".targets.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := root.VerifyDelegate(metadata.TARGETS, targets); err != nil {
				t.Fatalf("targets.json: %v", err)
			}
			if targetsVer != trusted.Targets[metadata.TARGETS].Signed.Version || snapVer != trusted.Snapshot.Signed.Version {
				t.Fatalf("served versions targets %d snapshot %d; the updater trusts %d and %d", targetsVer, snapVer,
					trusted.Targets[metadata.TARGETS].Signed.Version, trusted.Snapshot.Signed.Version)
			}

			// Delegated targets roles (the release repository delegates each
			// product to its own role) verify against their delegator.
			delegated := 0
			for file, meta := range snap.Signed.Meta {
				role := strings.TrimSuffix(file, ".json")
				if role == metadata.TARGETS {
					continue
				}
				md, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(get(itoa(meta.Version) + "." + url.PathEscape(role) + ".json"))
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				if err := targets.VerifyDelegate(role, md); err != nil {
					t.Fatalf("%s is not signed by the keys targets.json delegates to: %v", file, err)
				}
				delegated++
			}
			if name == "release" && delegated == 0 {
				t.Fatal("the release repository has no delegated product role")
			}

			// The signatures cover the content: any change to "signed"
			// breaks them.
			bad, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(get(itoa(targetsVer) + ".targets.json"))
			if err != nil {
				t.Fatal(err)
			}
			bad.Signed.Expires = bad.Signed.Expires.AddDate(1, 0, 0)
			if err := root.VerifyDelegate(metadata.TARGETS, bad); err == nil {
				t.Fatal("targets.json with a changed expiry still verifies")
			}
		})
	}
}

func itoa(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestConformanceMultiRepo runs go-tuf's TAP 4 client, built with its own
// constructors from a map.json, over both repositories.
func TestConformanceMultiRepo(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)

	mapJSON := []byte(`{
  "repositories": {
    "release": ["` + w.url + `/repo/release/metadata"],
    "fleet": ["` + w.url + `/repo/fleet/metadata"]
  },
  "mapping": [
    {"paths": ["*/support.json"], "repositories": ["release"], "threshold": 1, "terminating": true},
    {"paths": ["*/*"], "repositories": ["release", "fleet"], "threshold": 2, "terminating": true}
  ]
}`)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "map.json"), mapJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	newClient := func() *multirepo.MultiRepoClient {
		t.Helper()
		m, err := os.ReadFile(filepath.Join(dir, "map.json"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := multirepo.NewConfig(m, map[string][]byte{"release": deviceRoot(t, w, "release"), "fleet": deviceRoot(t, w, "fleet")})
		if err != nil {
			t.Fatalf("multirepo.NewConfig: %v", err)
		}
		cfg.LocalMetadataDir = t.TempDir()
		cfg.LocalTargetsDir = t.TempDir()
		c, err := multirepo.New(cfg)
		if err != nil {
			t.Fatalf("multirepo.New: %v", err)
		}
		if err := c.Refresh(); err != nil {
			t.Fatalf("multirepo Refresh: %v", err)
		}
		return c
	}

	c := newClient()
	all, err := c.GetTopLevelTargets()
	if err != nil {
		t.Fatalf("GetTopLevelTargets: %v", err)
	}
	// Top-level targets are what the fleet offers (the release repository
	// keeps its targets in delegated product roles).
	if _, ok := all["thermostat/1.1.0"]; !ok || len(all) != 1 {
		t.Errorf("GetTopLevelTargets = %v, want thermostat/1.1.0 only", slices.Collect(maps.Keys(all)))
	}

	info, repos, err := c.GetTargetInfo("thermostat/1.1.0")
	if err != nil {
		t.Fatalf("GetTargetInfo: %v", err)
	}
	slices.Sort(repos)
	if !slices.Equal(repos, []string{"fleet", "release"}) {
		t.Fatalf("thermostat/1.1.0 vouched for by %v, want both repositories", repos)
	}
	// go-tuf derives each mirror's targets URL from the metadata URL, so a
	// TAP 4 client names the targets base explicitly.
	_, got, err := c.DownloadTarget(repos[:1], info, "", w.url+"/repo/"+repos[0]+"/targets")
	if err != nil {
		t.Fatalf("DownloadTarget: %v", err)
	}
	if !bytes.Equal(got, w.images["1.1.0"]) {
		t.Fatal("multirepo download differs from the published image")
	}

	info, repos, err = c.GetTargetInfo("thermostat/support.json")
	if err != nil || !slices.Equal(repos, []string{"release"}) {
		t.Fatalf("support.json: repos %v, %v", repos, err)
	}
	if _, b, err := c.DownloadTarget(repos, info, "", w.url+"/repo/release/targets"); err != nil || !bytes.Contains(b, []byte(`"thermostat"`)) {
		t.Fatalf("support.json download: %v: %s", err, b)
	}

	// A release signed but not yet rolled out is in one repository only:
	// the TAP 4 threshold of 2 refuses it.
	w.publish("1.2.0", 3, release.KindFeature)
	c = newClient()
	if _, _, err := c.GetTargetInfo("thermostat/1.2.0"); err == nil {
		t.Fatal("thermostat/1.2.0, listed only by the release repository, met the threshold of 2")
	}
	if _, err := c.TUFClients["release"].GetTargetInfo("thermostat/1.2.0"); err != nil {
		t.Fatalf("the release repository does not list 1.2.0: %v", err)
	}
	// The rolled-out release is still agreed on.
	if _, _, err := c.GetTargetInfo("thermostat/1.1.0"); err != nil {
		t.Fatalf("thermostat/1.1.0 after publishing 1.2.0: %v", err)
	}
}
