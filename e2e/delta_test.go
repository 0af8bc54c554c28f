package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/delta"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/sim"
	"github.com/uptrust/uptrust/internal/store"
)

// near returns the image of version as a small change of base: base with
// 8 KiB in the middle replaced by bytes of version's random image.
func near(base []byte, version string) []byte {
	out := bytes.Clone(base)
	copy(out[len(out)/2:len(out)/2+8192], image(version))
	return out
}

// publishDelta publishes version with img and deltas from the named
// earlier releases.
func (w *world) publishDelta(version string, sv uint64, img []byte, compression string, from ...string) release.Manifest {
	w.t.Helper()
	w.images[version] = img
	pub, err := w.p.AddRelease(context.Background(), project.ReleaseSpec{Product: product, Version: version,
		Payload: bytes.NewReader(img), Kind: release.KindSecurity, SecurityVersion: sv, Compression: compression, DeltaFrom: from})
	if err != nil {
		w.t.Fatalf("publishing %s: %v", version, err)
	}
	w.reload()
	var m release.Manifest
	if err := json.Unmarshal(pub.Release.Manifest, &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// served counts the bytes the proxy serves for matching paths.
func (p *proxy) served(match func(string) bool) *atomic.Int64 {
	var n atomic.Int64
	p.on(match, func(w http.ResponseWriter, r *http.Request) {
		p.rp.ServeHTTP(countingWriter{w, &n}, r)
	})
	return &n
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func isDelta(p string) bool {
	return strings.Contains(p, "/targets/"+product+"/") && strings.HasSuffix(p, ".delta")
}

// deviceWith provisions a device that says it runs 1.0.0 from factory.
func (w *world) deviceWith(name string, factory []byte) *sim.Device {
	w.t.Helper()
	rr, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, "release"))
	if err != nil {
		w.t.Fatal(err)
	}
	fr, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, "fleet"))
	if err != nil {
		w.t.Fatal(err)
	}
	d, err := sim.New(filepath.Join(w.dir, "devices", name), sim.Spec{Name: name, Server: w.url, Product: product, Hardware: hardware,
		ReleaseRoot: rr, FleetRoot: fr, Factory: factory, Version: "1.0.0", SecurityVersion: 1})
	if err != nil {
		w.t.Fatal(err)
	}
	d.HTTP = &fetch.Config{StallTimeout: 300 * time.Millisecond, ConnectTimeout: time.Second, MaxAttempts: 3,
		BaseBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	return d
}

func lastDelta(t *testing.T, d *sim.Device) *agent.DeltaOutcome {
	t.Helper()
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastDelta == nil {
		t.Fatalf("%s: status has no last_delta (last check %+v)", d.Name, st.LastCheck)
	}
	return st.LastDelta
}

// A release with a delta from the running version installs from the
// delta: the full payload never crosses the wire.
func TestDeltaInstalls(t *testing.T) {
	for _, comp := range []string{release.CompressionNone, release.CompressionZstd} {
		t.Run(comp, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			d := w.device("d", 0)
			img := near(w.images["1.0.0"], "1.1.0")
			m := w.publishDelta("1.1.0", 2, img, comp, "1.0.0")
			if len(m.Deltas) != 1 || m.Deltas[0].From != "1.0.0" || m.Deltas[0].SourceSHA256 != hexSHA256(w.images["1.0.0"]) ||
				m.Deltas[0].SourceLength != imgSize || m.Deltas[0].Target != "thermostat/1.1.0.from-1.0.0.delta" {
				t.Fatalf("manifest deltas %+v", m.Deltas)
			}
			if m.Deltas[0].Length >= imgSize/4 {
				t.Fatalf("delta of an 8 KiB change has %d bytes", m.Deltas[0].Length)
			}
			w.rollout("1.1.0", 100)
			full, dl := w.proxy.served(isPayload("1.1.0")), w.proxy.served(isDelta)
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
			if full.Load() != 0 {
				t.Fatalf("the full payload was fetched (%d bytes)", full.Load())
			}
			if dl.Load() != m.Deltas[0].Length {
				t.Fatalf("delta bytes served %d, the delta has %d", dl.Load(), m.Deltas[0].Length)
			}
			if ld := lastDelta(t, d); !ld.Used || ld.From != "1.0.0" {
				t.Fatalf("last delta %+v", ld)
			}
			st, err := agent.LoadState(d.Config.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(st.Downloads); n != 1 || st.Downloads[0].DeltaFrom != "1.0.0" || st.Downloads[0].Bytes != m.Deltas[0].Length || !st.Downloads[0].Complete {
				t.Fatalf("download counters %+v", st.Downloads)
			}
			w.assertReport("installed", "")
			// The committed image's hash is cached: a delta from 1.1.0
			// needs no read of the slot (a wrong cache would fail the
			// delta's target hash and fall back, TestDeltaTamperedHashCache).
			booted, _, err := d.BootedImage(context.Background(), imgSize)
			if err != nil {
				t.Fatal(err)
			}
			if h := st.ActiveHash; h == nil || h.Version != "1.1.0" || h.Slot != booted || h.Length != imgSize || h.SHA256 != hexSHA256(img) {
				t.Fatalf("active hash after the commit %+v, want 1.1.0's image", st.ActiveHash)
			}
			img2 := near(img, "1.2.0")
			m2 := w.publishDelta("1.2.0", 3, img2, comp, "1.1.0")
			w.rollout("1.2.0", 100)
			full2 := w.proxy.served(isPayload("1.2.0"))
			w.cycle(d)
			w.assertRunning(d, "1.2.0")
			if ld := lastDelta(t, d); !ld.Used || ld.From != "1.1.0" || full2.Load() != 0 || len(m2.Deltas) != 1 {
				t.Fatalf("second delta: last delta %+v, full payload bytes %d", ld, full2.Load())
			}
		})
	}
}

// A delta from another version than the running one is not offered; and
// a delta whose source hash does not match the active slot is not applied:
// the full payload installs in the same check.
func TestDeltaSourceMismatch(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 1, release.KindSecurity)
	img := near(w.images["1.0.0"], "1.2.0")
	w.publishDelta("1.2.0", 2, img, release.CompressionNone, "1.0.0", "1.1.0")
	w.rollout("1.2.0", 100)
	// The device says it runs 1.0.0 but its slot holds other bytes.
	factory := bytes.Clone(w.images["1.0.0"])
	factory[100] ^= 0xff
	d := w.deviceWith("d", factory)
	full, dl := w.proxy.served(isPayload("1.2.0")), w.proxy.served(isDelta)
	w.cycle(d)
	w.assertRunning(d, "1.2.0")
	if full.Load() != imgSize {
		t.Fatalf("full payload bytes %d, want %d", full.Load(), imgSize)
	}
	if dl.Load() != 0 {
		t.Fatalf("the delta was downloaded (%d bytes) for an unverified source", dl.Load())
	}
	if ld := lastDelta(t, d); ld.Used || !strings.Contains(ld.Reason, "does not hold the delta's source") {
		t.Fatalf("last delta %+v", ld)
	}
}

// A corrupted delta is detected (signed hashes) and the full payload
// installs in the same check.
func TestDeltaCorrupted(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	w.publishDelta("1.1.0", 2, near(w.images["1.0.0"], "1.1.0"), release.CompressionNone, "1.0.0")
	w.rollout("1.1.0", 100)
	w.proxy.rewrite(isDelta, func(_ string, b []byte) []byte {
		b[len(b)/2] ^= 0x55
		return b
	})
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	if ld := lastDelta(t, d); ld.Used || ld.Reason == "" {
		t.Fatalf("last delta %+v", ld)
	}
	if c := download(t, d, "1.1.0"); c.Bytes != imgSize || !c.Complete {
		t.Fatalf("full download %+v", c)
	}
}

// A power loss while a delta is applied (or after) leaves a bootable
// verified image; the next checks apply the delta again and install.
func TestDeltaPowerLoss(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publishDelta("1.1.0", 2, near(w.images["1.0.0"], "1.1.0"), release.CompressionNone, "1.0.0")
	w.rollout("1.1.0", 100)
	full := w.proxy.served(isPayload("1.1.0"))
	for i, point := range []string{"writing", "mid-write", "arming", "rebooting"} {
		t.Run(point, func(t *testing.T) {
			d := w.device("cut-"+strconv.Itoa(i), 0)
			cutPowerAt(t, w, d, point)
			for range 3 {
				w.cycle(d)
			}
			w.assertRunning(d, "1.1.0")
			if full.Load() != 0 {
				t.Fatalf("the full payload was fetched (%d bytes)", full.Load())
			}
		})
	}
}

// publishWrongDelta publishes version (full payload img) with a signed
// delta from 1.0.0 that decodes to another image: what a broken build
// server would publish.
func (w *world) publishWrongDelta(version string, sv uint64, img, wrong []byte) {
	w.t.Helper()
	t := w.t
	ctx := context.Background()
	w.images[version] = img
	var patch bytes.Buffer
	if err := delta.Create(ctx, &patch, w.images["1.0.0"], wrong); err != nil {
		t.Fatal(err)
	}
	dinfo, err := w.p.Blobs.Put(ctx, &patch, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := w.p.Blobs.Put(ctx, bytes.NewReader(img), 0)
	if err != nil {
		t.Fatal(err)
	}
	dl := release.Delta{From: "1.0.0", Target: release.DeltaTargetName(product, version, "1.0.0"), Length: dinfo.Size, SHA256: dinfo.SHA256,
		SourceLength: int64(len(w.images["1.0.0"])), SourceSHA256: hexSHA256(w.images["1.0.0"])}
	m := release.Manifest{Product: product, Version: version, Hardware: []string{hardware}, SecurityVersion: sv, Kind: release.KindSecurity,
		Impact: release.Impact{DataCollection: "none", Functionality: "none"}, Payload: release.Payload{Type: "rootfs", Compression: "none"},
		Published: time.Now().UTC(), Deltas: []release.Delta{dl}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	custom, _ := json.Marshal(release.Custom{Uptrust: &m})
	manifest, _ := json.Marshal(m)
	target := release.TargetName(product, version)
	sum, _ := hex.DecodeString(info.SHA256)
	dsum, _ := hex.DecodeString(dinfo.SHA256)
	w.signAsProduct(&store.Release{Product: product, Version: version, SecurityVersion: sv, Kind: "security",
		Target: target, Length: info.Size, SHA256: info.SHA256, Manifest: manifest, Created: time.Now()},
		repo.NewTarget(repo.TargetInfo{Path: target, Length: info.Size, SHA256: sum, Custom: custom}),
		repo.NewTarget(repo.TargetInfo{Path: dl.Target, Length: dinfo.Size, SHA256: dsum}))
}

// A signed delta that decodes to another image than the manifest's is
// detected by the image hash before arming; the full payload installs.
func TestDeltaWrongImage(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	img := near(w.images["1.0.0"], "1.1.0")
	w.publishWrongDelta("1.1.0", 2, img, near(w.images["1.0.0"], "9.9.9"))
	w.rollout("1.1.0", 100)
	dl := w.proxy.served(isDelta)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	if dl.Load() == 0 {
		t.Fatal("the delta was not tried")
	}
	if ld := lastDelta(t, d); ld.Used || !strings.Contains(ld.Reason, "does not match the manifest") {
		t.Fatalf("last delta %+v", ld)
	}
	if c := download(t, d, "1.1.0"); c.Bytes != imgSize || !c.Complete {
		t.Fatalf("full download %+v", c)
	}
}

// A cached active-slot hash that lies (it names the delta's source, the
// slot holds other bytes) still cannot arm a wrong image: the delta's
// output fails its hash, and the full payload installs.
func TestDeltaTamperedHashCache(t *testing.T) {
	w := newWorld(t, worldOptions{})
	img := near(w.images["1.0.0"], "1.1.0")
	w.publishDelta("1.1.0", 2, img, release.CompressionNone, "1.0.0")
	w.rollout("1.1.0", 100)
	factory := bytes.Clone(w.images["1.0.0"])
	factory[100] ^= 0xff
	d := w.deviceWith("d", factory)
	booted, _, err := d.BootedImage(context.Background(), imgSize)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.Config.DataDir, "state.json")
	var st map[string]any
	if err := json.Unmarshal(readAll(t, path), &st); err != nil {
		t.Fatal(err)
	}
	st["active_hash"] = map[string]any{"slot": string(booted), "version": "1.0.0", "length": imgSize, "sha256": hexSHA256(w.images["1.0.0"])}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dl := w.proxy.served(isDelta)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	if dl.Load() == 0 {
		t.Fatal("the delta was not tried")
	}
	if ld := lastDelta(t, d); ld.Used || !strings.Contains(ld.Reason, "does not match the declared target hash") {
		t.Fatalf("last delta %+v", ld)
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
