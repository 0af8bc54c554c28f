package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/sim"
)

// deltaTail is how many random bytes 1.1.0 appends to 1.0.0's image in the
// delta resume tests: the delta carries them, so it spans several
// checkpoints (agent.DeltaCheckpointBytes) and ends mid-buffer.
const deltaTail = 2<<20 + 4321

// deltaWrite is the size of one write into the delta file
// (payload.BufferSize / 4).
const deltaWrite = 256 << 10

// deltaResumeWorld publishes 1.1.0 as 1.0.0's image with a small change
// and deltaTail random bytes appended, with a delta from 1.0.0, rolled out
// to everyone. It returns the delta's manifest entry.
func deltaResumeWorld(t *testing.T) (*world, release.Delta) {
	t.Helper()
	w := newWorld(t, worldOptions{})
	var seed [32]byte
	copy(seed[:], "1.1.0 tail")
	tail := make([]byte, deltaTail)
	rand.NewChaCha8(seed).Read(tail)
	img := append(near(w.images["1.0.0"], "1.1.0"), tail...)
	m := w.publishDelta("1.1.0", 2, img, release.CompressionNone, "1.0.0")
	w.rollout("1.1.0", 100)
	if len(m.Deltas) != 1 {
		t.Fatalf("manifest deltas %+v", m.Deltas)
	}
	d := m.Deltas[0]
	if d.Length < 4*agent.DeltaCheckpointBytes || d.Length >= int64(len(img)) {
		t.Fatalf("the delta has %d bytes for a %d-byte image: want several checkpoints and less than the image", d.Length, len(img))
	}
	return w, d
}

// tapDelta installs a tap (see tapPayload) on every delta target.
func (w *world) tapDelta(p func(i int) plan) *tap {
	if p == nil {
		p = func(int) plan { return pass }
	}
	tp := &tap{w: w, plan: p, hc: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	w.t.Cleanup(tp.hc.CloseIdleConnections)
	w.proxy.on(isDelta, tp.serve)
	return tp
}

// deltaCount returns the device's download counter of version's delta.
func deltaCount(t *testing.T, d *sim.Device, version string) agent.DownloadCount {
	t.Helper()
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Downloads {
		if c.Version == version && c.DeltaFrom != "" {
			return c
		}
	}
	t.Fatalf("%s: no delta download counted for %s: %+v", d.Name, version, s.Downloads)
	return agent.DownloadCount{}
}

// assertDeltaUsed checks that the device runs 1.1.0 installed from the
// delta, that the full payload never crossed the wire, and that nothing of
// the delta is left in the data directory.
func assertDeltaUsed(t *testing.T, w *world, d *sim.Device, full interface{ Load() int64 }) {
	t.Helper()
	w.assertRunning(d, "1.1.0")
	if n := full.Load(); n != 0 {
		t.Fatalf("the full payload was fetched (%d bytes)", n)
	}
	if ld := lastDelta(t, d); !ld.Used || ld.From != "1.0.0" {
		t.Fatalf("last delta %+v, want used from 1.0.0", ld)
	}
	if _, err := os.Stat(filepath.Join(d.Config.DataDir, "delta.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("delta.tmp left behind after the install: %v", err)
	}
}

// deltaPending returns the device's pending install, which must hold
// saved delta progress.
func deltaPending(t *testing.T, d *sim.Device) *transfer.Progress {
	t.Helper()
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Phase != agent.PhaseWriting || s.Pending == nil || s.Pending.Delta == nil || progressOf(s.Pending, transfer.RouteDelta) == nil {
		t.Fatalf("%s: phase %s, pending %+v: want saved delta progress", d.Name, s.Phase, s.Pending)
	}
	return s.Pending.Progress
}

// deltaPowerLossAt cuts power before the k-th write into the delta file and
// boots the device; it returns the saved offset (0 when none was saved).
func deltaPowerLossAt(t *testing.T, w *world, d *sim.Device, k int) int64 {
	t.Helper()
	writes := 0
	d.PowerLoss = func(p string) error {
		if p == "delta-write" {
			if writes++; writes == k {
				return agent.ErrPowerLoss
			}
		}
		return nil
	}
	if _, err := d.Cycle(context.Background()); !errors.Is(err, agent.ErrPowerLoss) {
		t.Fatalf("cycle: %v, want a power loss at delta write %d", err, k)
	}
	d.PowerLoss = nil
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	assertBootsKnownImage(t, w, d)
	written := int64(k-1) * deltaWrite
	if written < agent.DeltaCheckpointBytes {
		return 0
	}
	// Checkpoints are synchronous: the last one covers every whole
	// checkpoint interval written.
	saved := deltaPending(t, d).Offset
	if want := written / agent.DeltaCheckpointBytes * agent.DeltaCheckpointBytes; saved != want {
		t.Fatalf("saved at %d after %d bytes written, want %d", saved, written, want)
	}
	return saved
}

// TestDeltaResumeAfterDroppedConnection drops the delta's connection at
// several points. Within the same check the agent resumes the delta with a
// Range request from the exact byte reached: the install uses the delta,
// the full payload is never fetched, and every delta byte crosses the wire
// once.
func TestDeltaResumeAfterDroppedConnection(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	for i, cut := range []int64{0, 1, agent.DeltaCheckpointBytes, dl.Length * 4 / 10, dl.Length - 1} {
		t.Run(fmt.Sprintf("cut=%d", cut), func(t *testing.T) {
			d := w.device(fmt.Sprintf("drop-%d", i), 0)
			tp := w.tapDelta(firstCut(cut))
			full := w.proxy.served(isPayload("1.1.0"))
			defer w.proxy.clear()
			w.cycle(d)
			assertDeltaUsed(t, w, d, full)
			reqs := wantRequests(t, tp, 2)
			if reqs[0].bytes != cut {
				t.Fatalf("first request sent %d bytes, want the cut at %d", reqs[0].bytes, cut)
			}
			if got := tp.total(); got != dl.Length {
				t.Fatalf("%d delta bytes downloaded for a %d-byte delta, want each once (requests %+v)", got, dl.Length, reqs)
			}
			t.Logf("cut at %d: %d delta bytes fetched for a %d-byte delta", cut, tp.total(), dl.Length)
			c := deltaCount(t, d, "1.1.0")
			if c.Bytes != dl.Length || c.Requests != 2 || !c.Complete || c.DeltaFrom != "1.0.0" || c.Restarts != 0 {
				t.Fatalf("delta counter %+v, want %d bytes in 2 requests, complete", c, dl.Length)
			}
			if cut > 0 {
				// No If-Range any more: the resume sends nothing the
				// server chose (it used to send the ETag back).
				if reqs[1].rangeHdr != fmt.Sprintf("bytes=%d-", cut) || reqs[1].ifRange != "" || reqs[1].status != http.StatusPartialContent || c.Resumed != 1 {
					t.Fatalf("resume request %+v, counter %+v: want Range from %d without If-Range, answered 206", reqs[1], c, cut)
				}
			}
			st, err := d.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Download == nil || st.Download.DeltaFrom != "1.0.0" || st.Download.Bytes != dl.Length {
				t.Fatalf("status download %+v, want the delta's bytes", st.Download)
			}
		})
	}
}

// TestDeltaResumeServerIgnoresRange: after a drop, the server answers the
// range request with the whole delta. The agent starts the delta over with
// that answer and still installs from it.
func TestDeltaResumeServerIgnoresRange(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	full := w.proxy.served(isPayload("1.1.0"))
	d := w.device("d", 0)
	cut := dl.Length / 2
	tp := w.tapDelta(func(i int) plan {
		if i == 0 {
			return plan{cut: cut}
		}
		return plan{cut: -1, stripRange: true}
	})
	w.cycle(d)
	assertDeltaUsed(t, w, d, full)
	reqs := wantRequests(t, tp, 2)
	if reqs[1].status != http.StatusOK || reqs[1].bytes != dl.Length {
		t.Fatalf("second request %+v, want the whole delta with 200", reqs[1])
	}
	if c := deltaCount(t, d, "1.1.0"); c.Bytes != cut+dl.Length || c.Restarts != 1 || c.Resumed != 0 || !c.Complete {
		t.Fatalf("delta counter %+v, want %d bytes and one restart", c, cut+dl.Length)
	}
}

// TestDeltaResumeFlakyLink: every connection drops the delta after a
// quarter of it, more often than max_attempts (2 here), but each request
// moves the download on: the agent follows the link to the end within one
// check, every delta byte comes once, the full payload never.
func TestDeltaResumeFlakyLink(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	d := w.device("d", 0)
	d.Config.MaxAttempts = 2
	cut := dl.Length / 4
	tp := w.tapDelta(func(int) plan { return plan{cut: cut} })
	full := w.proxy.served(isPayload("1.1.0"))
	w.cycle(d)
	assertDeltaUsed(t, w, d, full)
	if n := len(tp.requests()); n <= d.Config.MaxAttempts {
		t.Fatalf("%d delta requests, want more than max_attempts %d", n, d.Config.MaxAttempts)
	}
	if got := tp.total(); got != dl.Length {
		t.Fatalf("%d delta bytes fetched, want each of the %d once", got, dl.Length)
	}
}

// TestDeltaResumeRetriesExhausted: a link that drops the delta download
// max_attempts times in a row without progress (8 KiB each, together less
// than the 64 KiB that count as progress) fails the check as a network
// failure, without fetching the (larger) full payload over the same link;
// the progress is kept, and the next check resumes the delta where it
// stopped: every delta byte is fetched once, the full payload never.
func TestDeltaResumeRetriesExhausted(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	d := w.device("d", 0)
	const dropAfter = 8 << 10
	var cut atomic.Bool
	cut.Store(true)
	tp := w.tapDelta(func(int) plan {
		if cut.Load() {
			return plan{cut: dropAfter}
		}
		return pass
	})
	full := w.proxy.served(isPayload("1.1.0"))
	if _, err := d.Cycle(context.Background()); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("check over a link that keeps dropping: %v, want the delta download interrupted", err)
	}
	if n := len(tp.requests()); n != d.Config.MaxAttempts {
		t.Fatalf("%d delta requests, want %d (max_attempts)", n, d.Config.MaxAttempts)
	}
	if n := full.Load(); n != 0 {
		t.Fatalf("the full payload was fetched (%d bytes) over a link that drops the delta", n)
	}
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := int64(d.Config.MaxAttempts) * dropAfter
	if st.Installing != "1.1.0" || st.DownloadSaved != want {
		t.Fatalf("status after the failed check: installing %q, saved %d; want 1.1.0 with %d saved", st.Installing, st.DownloadSaved, want)
	}
	cut.Store(false)
	w.cycle(d)
	assertDeltaUsed(t, w, d, full)
	if got := tp.since(0); got != dl.Length {
		t.Fatalf("%d delta bytes fetched in all, want each of the %d once", got, dl.Length)
	}
}

// TestDeltaResumeAfterPowerLoss cuts power while the delta is written to
// the data directory, after k writes; the device boots its old image, and
// the next check continues the delta from its checkpoint with a Range
// request: the delta bytes downloaded after the power loss are exactly the
// rest after the checkpoint, and the full payload is never fetched. Junk
// after the checkpoint (bytes a power loss left half-written) is cut off.
func TestDeltaResumeAfterPowerLoss(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	for _, tc := range []struct {
		k    int
		junk bool
	}{{1, false}, {2, false}, {4, false}, {7, false}, {5, true}} {
		t.Run(fmt.Sprintf("writes=%d/junk=%v", tc.k, tc.junk), func(t *testing.T) {
			d := w.device(fmt.Sprintf("power-%d-%v", tc.k, tc.junk), 0)
			tp := w.tapDelta(nil)
			full := w.proxy.served(isPayload("1.1.0"))
			defer w.proxy.clear()
			saved := deltaPowerLossAt(t, w, d, tc.k)
			if tc.junk {
				f, err := os.OpenFile(filepath.Join(d.Config.DataDir, "delta.tmp"), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write(make([]byte, 12345))
				f.Close()
			}
			if saved > 0 {
				st, err := d.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if st.Installing != "1.1.0" || st.DownloadSaved != saved || st.Download == nil || st.Download.DeltaFrom != "1.0.0" ||
					st.Download.Complete || st.Download.Bytes < saved {
					t.Fatalf("status after the power loss: installing %q, saved %d, download %+v; want the delta's counter and %d saved",
						st.Installing, st.DownloadSaved, st.Download, saved)
				}
			}
			before := len(tp.requests())
			w.cycle(d)
			assertDeltaUsed(t, w, d, full)
			again := tp.since(before)
			if again != dl.Length-saved {
				t.Fatalf("after the power loss %d delta bytes were downloaded, want the %d after the checkpoint at %d", again, dl.Length-saved, saved)
			}
			t.Logf("power loss after %d writes: checkpoint at %d, %d of the %d-byte delta downloaded afterwards", tc.k-1, saved, again, dl.Length)
			if saved > 0 {
				reqs := tp.requests()
				if last := reqs[len(reqs)-1]; last.rangeHdr != fmt.Sprintf("bytes=%d-", saved) || last.status != http.StatusPartialContent {
					t.Fatalf("resume request %+v, want Range from %d", last, saved)
				}
				if c := deltaCount(t, d, "1.1.0"); c.Resumed != 1 || c.Restarts != 0 || !c.Complete {
					t.Fatalf("delta counter %+v, want one resume", c)
				}
			}
		})
	}
}

// TestDeltaResumeDamagedFile: between two runs the delta file loses bytes
// its checkpoint claims (truncated) or they rot (flash that lied about a
// sync). A truncated file is seen at once and the delta starts over from
// byte 0; rotten bytes are seen when the resumed delta is read back
// before it is applied, and the delta is downloaded once more. Either way
// the delta installs and no damaged image is armed.
func TestDeltaResumeDamagedFile(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, saved int64)
		// bytes downloaded after the damage, given the checkpoint
		want     func(saved int64) int64
		requests int
	}{
		{"truncated", func(t *testing.T, path string, saved int64) {
			if err := os.Truncate(path, saved/2); err != nil {
				t.Fatal(err)
			}
		}, func(int64) int64 { return dl.Length }, 1},
		{"missing", func(t *testing.T, path string, saved int64) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, func(int64) int64 { return dl.Length }, 1},
		{"rotten", func(t *testing.T, path string, saved int64) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("rot"), saved/2); err != nil {
				t.Fatal(err)
			}
		}, func(saved int64) int64 { return dl.Length - saved + dl.Length }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := w.device("damaged-"+tc.name, 0)
			tp := w.tapDelta(nil)
			full := w.proxy.served(isPayload("1.1.0"))
			defer w.proxy.clear()
			saved := deltaPowerLossAt(t, w, d, 6)
			if saved == 0 {
				t.Fatal("no checkpoint saved")
			}
			tc.damage(t, filepath.Join(d.Config.DataDir, "delta.tmp"), saved)
			before := len(tp.requests())
			w.cycle(d)
			assertDeltaUsed(t, w, d, full)
			if got, want := tp.since(before), tc.want(saved); got != want {
				t.Fatalf("%d delta bytes downloaded after the damage, want %d (checkpoint at %d)", got, want, saved)
			}
			reqs := tp.requests()[before:]
			if len(reqs) != tc.requests || reqs[len(reqs)-1].rangeHdr != "" {
				t.Fatalf("requests %+v, want %d ending with the whole delta from byte 0", reqs, tc.requests)
			}
			if c := deltaCount(t, d, "1.1.0"); c.Restarts != 1 || !c.Complete {
				t.Fatalf("delta counter %+v, want one restart", c)
			}
		})
	}
}

// TestDeltaPowerLossDuringApply cuts power while the downloaded delta is
// applied into the slot. The complete delta stays in the data directory
// with its progress; the next check reads it back, verifies it and
// applies it again without downloading anything. If the file was damaged
// meanwhile, the read-back catches it and the delta is downloaded again.
func TestDeltaPowerLossDuringApply(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	for _, rot := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotten=%v", rot), func(t *testing.T) {
			d := w.device(fmt.Sprintf("apply-%v", rot), 0)
			tp := w.tapDelta(nil)
			full := w.proxy.served(isPayload("1.1.0"))
			defer w.proxy.clear()
			cutPowerAt(t, w, d, "mid-write")
			p := deltaPending(t, d)
			if p.Offset != dl.Length {
				t.Fatalf("saved delta progress at %d of %d, want complete", p.Offset, dl.Length)
			}
			path := filepath.Join(d.Config.DataDir, "delta.tmp")
			if rot {
				f, err := os.OpenFile(path, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt([]byte("rot"), dl.Length-10)
				f.Close()
			}
			before := len(tp.requests())
			w.cycle(d)
			assertDeltaUsed(t, w, d, full)
			want := int64(0)
			if rot {
				want = dl.Length
			}
			if got := tp.since(before); got != want {
				t.Fatalf("%d delta bytes downloaded after the power loss during the apply, want %d", got, want)
			}
		})
	}
}

// TestDeltaResumeAfterAgentStopped: the agent is stopped (its context
// ends, as at SIGTERM) while the delta arrives. It saves the exact offset
// reached and keeps the install in phase writing; the next check asks for
// the rest of the delta with a Range request and installs from it.
func TestDeltaResumeAfterAgentStopped(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	d := w.device("d", 0)
	tp := w.tapDelta(nil)
	full := w.proxy.served(isPayload("1.1.0"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writes := 0
	d.PowerLoss = func(p string) error {
		// Stopped while the third buffer is written: the copy ends before
		// it reads the next one.
		if p == "delta-write" {
			if writes++; writes == 3 {
				cancel()
			}
		}
		return nil
	}
	if _, err := d.Cycle(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cycle: %v, want the agent stopped", err)
	}
	d.PowerLoss = nil
	saved := deltaPending(t, d).Offset
	if saved != 3*deltaWrite {
		t.Fatalf("saved at %d, want the offset reached (%d)", saved, 3*deltaWrite)
	}
	before := len(tp.requests())
	w.cycle(d)
	assertDeltaUsed(t, w, d, full)
	reqs := tp.requests()[before:]
	if len(reqs) != 1 || reqs[0].rangeHdr != fmt.Sprintf("bytes=%d-", saved) || reqs[0].bytes != dl.Length-saved {
		t.Fatalf("requests after the stop %+v, want one for the %d bytes from %d", reqs, dl.Length-saved, saved)
	}
	t.Logf("stopped at %d of %d delta bytes; the next check fetched %d", saved, dl.Length, reqs[0].bytes)
}

// TestDeltaResumeBytesChanged: after a drop, the server sends the rest of
// other bytes under the delta's name (and another ETag, which the agent
// no longer keeps or compares). The delta's hash does not match; the delta
// starts over from byte 0 and still installs. (This was
// TestDeltaResumeETagChanged, where the ETag told the change; now only the
// hash does.)
func TestDeltaResumeBytesChanged(t *testing.T) {
	w, dl := deltaResumeWorld(t)
	d := w.device("d", 0)
	full := w.proxy.served(isPayload("1.1.0"))
	cut := dl.Length / 3
	tp := w.tapDelta(func(i int) plan {
		switch i {
		case 0:
			return plan{cut: cut, etag: `"first"`}
		case 1:
			return plan{cut: -1, etag: `"second"`, changed: true}
		}
		return pass
	})
	w.cycle(d)
	assertDeltaUsed(t, w, d, full)
	reqs := wantRequests(t, tp, 3)
	if reqs[1].ifRange != "" || reqs[1].rangeHdr != fmt.Sprintf("bytes=%d-", cut) {
		t.Fatalf("resume request %+v, want Range from %d without If-Range", reqs[1], cut)
	}
	if reqs[2].rangeHdr != "" || reqs[2].status != http.StatusOK || reqs[2].bytes != dl.Length {
		t.Fatalf("last request %+v, want the whole delta from byte 0", reqs[2])
	}
	// The resume went through (206) before the hash failed: one resume,
	// one restart.
	if c := deltaCount(t, d, "1.1.0"); c.Restarts != 1 || c.Resumed != 1 || !c.Complete {
		t.Fatalf("delta counter %+v, want one resume and one restart", c)
	}
}

// TestDeltaResumeDeltaWithdrawn: after a power loss mid-delta, the server
// no longer has the delta file (404). The saved delta is given up and the
// full payload installs in the same check; nothing of the delta is left.
func TestDeltaResumeDeltaWithdrawn(t *testing.T) {
	w, _ := deltaResumeWorld(t)
	d := w.device("d", 0)
	if saved := deltaPowerLossAt(t, w, d, 4); saved == 0 {
		t.Fatal("no checkpoint saved")
	}
	w.proxy.on(isDelta, func(rw http.ResponseWriter, r *http.Request) { http.NotFound(rw, r) })
	full := w.proxy.served(isPayload("1.1.0"))
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	if n := full.Load(); n != int64(len(w.images["1.1.0"])) {
		t.Fatalf("full payload bytes %d, want %d", n, len(w.images["1.1.0"]))
	}
	if ld := lastDelta(t, d); ld.Used || !strings.Contains(ld.Reason, "404") {
		t.Fatalf("last delta %+v, want not used because of the 404", ld)
	}
	if _, err := os.Stat(filepath.Join(d.Config.DataDir, "delta.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("delta.tmp left behind: %v", err)
	}
}
