package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/report"
	"github.com/uptrust/uptrust/internal/sim"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/units"
)

// compressible returns a deterministic image of version that zstd shrinks:
// the random image of the version, each 4 KiB block repeated four times.
func compressible(version string) []byte {
	r := image(version)
	out := make([]byte, 0, imgSize)
	for i := 0; len(out) < imgSize; i += 4096 {
		for range 4 {
			out = append(out, r[i:i+4096]...)
		}
	}
	return out[:imgSize]
}

// publishZstd publishes version through AddRelease with --compress zstd.
func (w *world) publishZstd(version string, sv uint64, img []byte) store.Release {
	w.t.Helper()
	return w.publishZstdFrames(version, sv, img, 0)
}

// publishZstdFrames is publishZstd with --zstd-frame frame.
func (w *world) publishZstdFrames(version string, sv uint64, img []byte, frame int64) store.Release {
	w.t.Helper()
	w.images[version] = img
	pub, err := w.p.AddRelease(context.Background(), project.ReleaseSpec{Product: product, Version: version,
		Payload: bytes.NewReader(img), Kind: release.KindSecurity, SecurityVersion: sv, Compression: release.CompressionZstd,
		ZstdFrame: frame})
	if err != nil {
		w.t.Fatalf("publishing %s: %v", version, err)
	}
	w.reload()
	return pub.Release
}

// publishRaw publishes payload as version with the given payload
// description, signed by the product key like AddRelease does, but without
// AddRelease's encoding: the way to publish what the server never makes.
func (w *world) publishRaw(version string, sv uint64, body []byte, pl release.Payload) {
	w.t.Helper()
	t := w.t
	ctx := context.Background()
	info, err := w.p.Blobs.Put(ctx, bytes.NewReader(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	m := release.Manifest{Product: product, Version: version, Hardware: []string{hardware}, SecurityVersion: sv, Kind: release.KindSecurity,
		Impact: release.Impact{DataCollection: "none", Functionality: "none"}, Payload: pl, Published: time.Now().UTC()}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	custom, _ := json.Marshal(release.Custom{Uptrust: &m})
	manifest, _ := json.Marshal(m)
	sum, _ := hex.DecodeString(info.SHA256)
	target := release.TargetName(product, version)
	w.signAsProduct(&store.Release{Product: product, Version: version, SecurityVersion: sv, Kind: "security",
		Target: target, Length: info.Size, SHA256: info.SHA256, Manifest: manifest, Created: time.Now()},
		repo.NewTarget(repo.TargetInfo{Path: target, Length: info.Size, SHA256: sum, Custom: custom}))
}

// zstdOf compresses img with the given encoder window.
func zstdOf(t *testing.T, img []byte, window int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// assertNotArmed checks that the bootloader still boots the running slot.
func assertNotArmed(t *testing.T, d *sim.Device) {
	t.Helper()
	bs, err := d.Backend().State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if bs.Primary != bs.Booted || bs.Trial {
		t.Fatalf("%s: the other slot was armed: %+v", d.Name, bs)
	}
}

func TestCompressedReleaseInstalls(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	img := compressible("1.1.0")
	rel := w.publishZstd("1.1.0", 2, img)
	if rel.Length >= int64(len(img)) {
		t.Fatalf("compressed payload has %d bytes, the image %d", rel.Length, len(img))
	}
	var m release.Manifest
	if err := json.Unmarshal(rel.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Payload.Compression != "zstd" || m.Payload.ImageLength != int64(len(img)) || m.Payload.ImageSHA256 != hexSHA256(img) {
		t.Fatalf("manifest payload %+v", m.Payload)
	}
	w.rollout("1.1.0", 100)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	// What crossed the wire is the compressed payload, once.
	if c := download(t, d, "1.1.0"); c.Bytes != rel.Length || !c.Complete {
		t.Fatalf("download count %+v; the compressed payload has %d bytes", c, rel.Length)
	}
	w.assertReport("installed", "")
}

// A dropped connection resumes a compressed download with a Range request
// from the offset reached, into the decoder still waiting in memory; a
// server that then ignores the Range makes it start over with a new
// decoder. The image installs either way.
func TestCompressedDownloadResumesAfterDrop(t *testing.T) {
	for _, ignoreRange := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignore-range=%v", ignoreRange), func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			d := w.device("d", 0)
			img := compressible("1.1.0")
			rel := w.publishZstd("1.1.0", 2, img)
			w.rollout("1.1.0", 100)
			var requests atomic.Int32
			var ranges []string
			var mu sync.Mutex
			w.proxy.on(isPayload("1.1.0"), func(rw http.ResponseWriter, r *http.Request) {
				mu.Lock()
				ranges = append(ranges, r.Header.Get("Range"))
				mu.Unlock()
				if requests.Add(1) > 1 {
					if ignoreRange {
						r.Header.Del("Range")
					}
					w.proxy.rp.ServeHTTP(rw, r)
					return
				}
				body, _ := w.proxy.fetch(r.URL.Path)
				rw.Header().Set("Content-Length", "0")
				hj := rw.(http.Hijacker)
				conn, buf, err := hj.Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n")
				buf.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
				buf.Write(body[:len(body)/2])
				buf.Flush()
			})
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
			c := download(t, d, "1.1.0")
			half := rel.Length / 2
			if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", half) {
				t.Fatalf("Range headers of the payload requests: %q; want none, then bytes=%d-", ranges, half)
			}
			if ignoreRange {
				if c.Restarts != 1 || c.Resumed != 0 || c.Bytes != rel.Length+half {
					t.Fatalf("download count %+v; want one restart and %d bytes", c, rel.Length+half)
				}
				return
			}
			if c.Restarts != 0 || c.Resumed != 1 || c.Bytes != rel.Length || !c.Complete {
				t.Fatalf("download count %+v; want one resume and exactly the %d payload bytes", c, rel.Length)
			}
		})
	}
}

// stagings are the two ways a compressed payload reaches the slot:
// staged in the data directory first (the default), or streamed into the
// slot as it arrives (stage_compressed false). Every check of the image
// must hold on both.
var stagings = []struct {
	name   string
	staged bool
}{{"staged", true}, {"streamed", false}}

// compressedDevice is a device of w that stages compressed payloads or
// streams them.
func compressedDevice(w *world, staged bool) *sim.Device {
	d := w.device("d", 0)
	d.Config.StageCompressed = &staged
	return d
}

// TestCompressedHugeWindowRefused: a signed payload whose frame asks for a
// window above release.MaxZstdWindow (8 MiB) is refused before it is
// decoded, staged or streamed: 16 MiB, the next power of two (so that a
// limit raised to 32 MiB fails the test), as well as 64 MiB.
func TestCompressedHugeWindowRefused(t *testing.T) {
	for _, window := range []int{16 << 20, 64 << 20} {
		for _, sg := range stagings {
			t.Run(fmt.Sprintf("window=%dMiB/%s", window>>20, sg.name), func(t *testing.T) {
				w := newWorld(t, worldOptions{})
				d := compressedDevice(w, sg.staged)
				img := compressible("1.1.0")
				body := zstdOf(t, img, window)
				var fh zstd.Header
				if err := fh.Decode(body); err != nil {
					t.Fatal(err)
				}
				if fh.WindowSize != uint64(window) || fh.WindowSize <= release.MaxZstdWindow {
					t.Fatalf("crafted frame asks for a window of %d bytes, want %d, above the limit %d", fh.WindowSize, window, release.MaxZstdWindow)
				}
				w.publishRaw("1.1.0", 2, body, release.Payload{Type: "rootfs", Compression: "zstd", ImageLength: int64(len(img)), ImageSHA256: hexSHA256(img)})
				w.rollout("1.1.0", 100)
				w.cycle(d)
				st := w.assertRefused(d, "1.0.0", report.ClassPayloadWindow, "rejected")
				assertNotArmed(t, d)
				if st.LastCheck.Offered != "1.1.0" {
					t.Fatalf("last check %+v", st.LastCheck)
				}
			})
		}
	}
}

// TestCompressedWrongImageRefused: the payload is signed and decodes, but
// to another image than the manifest describes; staged or streamed, the
// image read back from the slot is refused and the slot never armed.
func TestCompressedWrongImageRefused(t *testing.T) {
	for _, sg := range stagings {
		t.Run(sg.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			d := compressedDevice(w, sg.staged)
			img := compressible("1.1.0")
			other := compressible("9.9.9")
			w.publishRaw("1.1.0", 2, zstdOf(t, img, release.MaxZstdWindow),
				release.Payload{Type: "rootfs", Compression: "zstd", ImageLength: int64(len(img)), ImageSHA256: hexSHA256(other)})
			w.rollout("1.1.0", 100)
			w.cycle(d)
			w.assertRefused(d, "1.0.0", report.ClassImageHash, "rejected")
			assertNotArmed(t, d)
			if _, err := os.Stat(filepath.Join(d.Config.DataDir, "payload.tmp")); !sg.staged && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("payload.tmp written although staging is off: %v", err)
			}
		})
	}
}

func TestCompressedWrongImageLengthRefused(t *testing.T) {
	for _, sg := range stagings {
		t.Run(sg.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			d := compressedDevice(w, sg.staged)
			img := compressible("1.1.0")
			w.publishRaw("1.1.0", 2, zstdOf(t, img, release.MaxZstdWindow),
				release.Payload{Type: "rootfs", Compression: "zstd", ImageLength: int64(len(img)) - 1, ImageSHA256: hexSHA256(img[:len(img)-1])})
			w.rollout("1.1.0", 100)
			w.cycle(d)
			w.assertRefused(d, "1.0.0", report.ClassImageHash, "rejected")
			assertNotArmed(t, d)
		})
	}
}

// A compressed payload altered on the way is a payload hash mismatch,
// checked before anything the decoder says.
func TestCompressedTamperedPayload(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	w.publishZstd("1.1.0", 2, compressible("1.1.0"))
	w.rollout("1.1.0", 100)
	w.proxy.rewrite(isPayload("1.1.0"), func(_ string, b []byte) []byte {
		b[len(b)/2] ^= 0x40
		return b
	})
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "payload-hash-mismatch", "rejected")
	assertNotArmed(t, d)
	w.proxy.clear()
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
}

// A release published between the agent's two repository refreshes makes
// them disagree once; the agent refreshes again and installs it.
func TestPublishBetweenRefreshes(t *testing.T) {
	w := offered(t, worldOptions{})
	d := w.device("d", 0)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	var once sync.Once
	w.proxy.on(suffix("/repo/fleet/metadata/timestamp.json"), func(rw http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			w.publish("1.2.0", 3, release.KindSecurity)
			w.rollout("1.2.0", 100)
		})
		w.proxy.rp.ServeHTTP(rw, r)
	})
	w.cycle(d)
	w.assertRunning(d, "1.2.0")
}

// A power loss while a compressed payload is staged, decompressed into the
// slot (or later) leaves a bootable verified image; the next checks
// install.
func TestCompressedPowerLoss(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publishZstd("1.1.0", 2, compressible("1.1.0"))
	w.rollout("1.1.0", 100)
	for i, point := range []string{"writing", "stage-write", "mid-write", "arming", "rebooting"} {
		t.Run(point, func(t *testing.T) {
			d := w.device("cut-"+strconv.Itoa(i), 0)
			cutPowerAt(t, w, d, point)
			for range 3 {
				w.cycle(d)
			}
			w.assertRunning(d, "1.1.0")
		})
	}
}

// halfCompressible is n bytes in which every 4 KiB block of random data
// comes twice, so that zstd halves it: a compressed payload of several
// checkpoints.
func halfCompressible(version string, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(len(version)), uint64(version[len(version)-1])))
	out := make([]byte, 0, n+8192)
	block := make([]byte, 4096)
	for len(out) < n {
		for i := range block {
			block[i] = byte(r.Uint32())
		}
		out = append(out, block...)
		out = append(out, block...)
	}
	return out[:n]
}

// lostPower runs a check on d that must end in the power loss d.PowerLoss
// injects while doing what, boots d again (on a known image) and returns
// the state it saved.
func lostPower(t *testing.T, w *world, d *sim.Device, what string) *agent.State {
	t.Helper()
	if _, err := d.Cycle(context.Background()); !errors.Is(err, agent.ErrPowerLoss) {
		t.Fatalf("cycle: %v, want a power loss while %s", err, what)
	}
	d.PowerLoss = nil
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	assertBootsKnownImage(t, w, d)
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stagedPowerLossWorld publishes a compressed 1.1.0 of several MiB.
func stagedPowerLossWorld(t *testing.T) (*world, store.Release) {
	w := newWorld(t, worldOptions{})
	rel := w.publishZstd("1.1.0", 2, halfCompressible("1.1.0", 8<<20))
	w.rollout("1.1.0", 100)
	return w, rel
}

// A power loss while a compressed payload is staged in the data directory
// costs only what the last checkpoint did not cover: the next check
// resumes the staged download with a Range request and installs. A power
// loss while it is decompressed into the slot downloads nothing again.
func TestCompressedStagedPowerLoss(t *testing.T) {
	t.Run("downloading", func(t *testing.T) {
		w, rel := stagedPowerLossWorld(t)
		served := w.proxy.served(isPayload("1.1.0"))
		d := w.device("d", 0)
		// The budget alone (the window would let a loopback download run
		// further ahead of the flushes), so that the lag is checked.
		off := units.Duration(0)
		d.Config.PowerLossWindow = &off
		writes := 0
		d.PowerLoss = func(p string) error {
			if p == "stage-write" {
				if writes++; int64(writes)*(payload.BufferSize/4) > rel.Length/2 {
					return agent.ErrPowerLoss
				}
			}
			return nil
		}
		s := lostPower(t, w, d, "staging")
		if s.Phase != agent.PhaseWriting || s.Pending == nil || progressOf(s.Pending, transfer.RouteStaged) == nil || s.Pending.Progress.Offset == 0 {
			t.Fatalf("phase %s, pending %+v: want saved staged progress", s.Phase, s.Pending)
		}
		saved := s.Pending.Progress.Offset
		// Saves run in the background, less than the power-loss budget
		// behind the bytes written.
		written := int64(writes-1) * (payload.BufferSize / 4)
		if saved > written || written-saved >= agent.DefaultPowerLossBudget {
			t.Fatalf("saved at %d after %d bytes were written, want less than %d behind", saved, written, agent.DefaultPowerLossBudget)
		}
		before := served.Load()
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
		t.Logf("power loss with %d of %d compressed bytes staged, saved at %d: %d bytes fetched after it", writes*(payload.BufferSize/4), rel.Length, saved, served.Load()-before)
		if got := served.Load() - before; got != rel.Length-saved {
			t.Fatalf("after the power loss %d bytes were fetched, want the %d after the saved offset %d", got, rel.Length-saved, saved)
		}
		c := download(t, d, "1.1.0")
		if c.Resumed != 1 || c.Restarts != 0 || !c.Complete {
			t.Fatalf("download count %+v, want one resume", c)
		}
		if _, err := os.Stat(filepath.Join(d.Config.DataDir, "payload.tmp")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("payload.tmp left behind after the install: %v", err)
		}
	})
	t.Run("decompressing", func(t *testing.T) {
		w, rel := stagedPowerLossWorld(t)
		served := w.proxy.served(isPayload("1.1.0"))
		d := w.device("d", 0)
		cutPowerAt(t, w, d, "mid-write")
		if got := served.Load(); got != rel.Length {
			t.Fatalf("%d bytes fetched before the power loss, want the whole %d-byte payload staged", got, rel.Length)
		}
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
		if got := served.Load(); got != rel.Length {
			t.Fatalf("%d bytes fetched in all, want the %d-byte payload once", got, rel.Length)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		// stage_compressed false: the payload goes straight into the slot
		// and a power loss starts it over.
		w, rel := stagedPowerLossWorld(t)
		served := w.proxy.served(isPayload("1.1.0"))
		d := w.device("d", 0)
		off := false
		d.Config.StageCompressed = &off
		cutPowerAt(t, w, d, "mid-write")
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
		if _, err := os.Stat(filepath.Join(d.Config.DataDir, "payload.tmp")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("payload.tmp written although staging is off: %v", err)
		}
		if got := served.Load(); got <= rel.Length {
			t.Fatalf("%d bytes fetched for the %d-byte payload, want it fetched again after the power loss", got, rel.Length)
		}
	})
	t.Run("streamed-frames", func(t *testing.T) {
		// stage_compressed false and a payload of 1 MiB frames: the
		// download resumes at the last frame boundary saved.
		w := newWorld(t, worldOptions{})
		const frame = 1 << 20
		img := halfCompressible("1.1.0", 8<<20)
		rel := w.publishZstdFrames("1.1.0", 2, img, frame)
		w.rollout("1.1.0", 100)
		served := w.proxy.served(isPayload("1.1.0"))
		d := w.device("d", 0)
		off := false
		d.Config.StageCompressed = &off
		var written int64 // image bytes in the slot at the power loss
		d.PowerLoss = func(p string) error {
			if p != "mid-write" {
				return nil
			}
			fi, err := os.Stat(filepath.Join(d.SlotsDir(), fileslot.ImageFile("b")))
			if err == nil && fi.Size() >= 5<<20 {
				written = fi.Size()
				return agent.ErrPowerLoss
			}
			return nil
		}
		s := lostPower(t, w, d, "streaming")
		if s.Pending == nil || progressOf(s.Pending, transfer.RouteSlot, transfer.RouteZstdStream) == nil {
			t.Fatalf("pending %+v: want a saved frame boundary", s.Pending)
		}
		saved := s.Pending.Progress
		// Boundaries are saved as the download goes on; the decoder may
		// be a frame ahead of the last save.
		if saved.Image%frame != 0 || saved.Image > written || written-saved.Image > 2*frame || saved.Offset <= 0 || saved.Offset >= rel.Length {
			t.Fatalf("saved image offset %d, payload offset %d after %d image bytes written: want a frame boundary at most two frames behind", saved.Image, saved.Offset, written)
		}
		before := served.Load()
		w.cycle(d)
		w.assertRunning(d, "1.1.0")
		if got := served.Load() - before; got != rel.Length-saved.Offset {
			t.Fatalf("after the power loss %d bytes were fetched, want the %d after the boundary at %d", got, rel.Length-saved.Offset, saved.Offset)
		}
		if _, err := os.Stat(filepath.Join(d.Config.DataDir, "payload.tmp")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("payload.tmp written although staging is off: %v", err)
		}
		c := download(t, d, "1.1.0")
		if c.Resumed != 1 || c.Restarts != 0 || !c.Complete {
			t.Fatalf("download count %+v, want one resume", c)
		}
	})
}

// A streamed payload of frames altered on the way in a way that still
// decodes: the boundaries saved before the end carry hash states of the
// altered bytes, so the signed hashes cannot match from them. The agent
// refuses the payload and drops them; the next check downloads it whole.
func TestCompressedFramesTamperedNotResumed(t *testing.T) {
	w := newWorld(t, worldOptions{})
	img := halfCompressible("1.1.0", 2<<20)
	for i := 0; i < len(img); i += 8192 {
		copy(img[i+4096:i+8192], image("x")) // incompressible: raw blocks
	}
	rel := w.publishZstdFrames("1.1.0", 2, img, 256<<10)
	w.rollout("1.1.0", 100)
	d := w.device("d", 0)
	off := false
	d.Config.StageCompressed = &off
	w.proxy.rewrite(isPayload("1.1.0"), func(_ string, b []byte) []byte {
		b[len(b)/4] ^= 0x40
		return b
	})
	w.cycle(d)
	w.assertRefused(d, "1.0.0", "payload-hash-mismatch", "rejected")
	assertNotArmed(t, d)
	if s, err := agent.LoadState(d.Config.DataDir); err != nil || s.Pending != nil && progressOf(s.Pending, transfer.RouteSlot, transfer.RouteZstdStream) != nil {
		t.Fatalf("after the mismatch the state keeps progress %+v (%v)", s.Pending, err)
	}
	w.proxy.clear()
	served := w.proxy.served(isPayload("1.1.0"))
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	if got := served.Load(); got != rel.Length {
		t.Fatalf("%d bytes fetched after the refusal, want the whole %d-byte payload", got, rel.Length)
	}
}
