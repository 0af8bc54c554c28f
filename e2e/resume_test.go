package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/sim"
	"github.com/uptrust/uptrust/internal/units"
)

// resumeWorld is a world offering 1.1.0 with a bigSize payload.
func resumeWorld(t *testing.T) *world {
	w := newWorld(t, worldOptions{})
	w.publishBig("1.1.0", 2, bigSize)
	return w
}

// download returns the device's download counter for version.
func download(t *testing.T, d *sim.Device, version string) agent.DownloadCount {
	t.Helper()
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Downloads {
		if c.Version == version && c.DeltaFrom == "" {
			return c
		}
	}
	t.Fatalf("%s: no download counted for %s: %+v", d.Name, version, s.Downloads)
	return agent.DownloadCount{}
}

// pending returns the device's pending install, which must be a download
// in progress with saved progress.
func pending(t *testing.T, d *sim.Device) *agent.Pending {
	t.Helper()
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Phase != agent.PhaseWriting || s.Pending == nil || progressOf(s.Pending, transfer.RouteSlot, transfer.RouteZstdStream) == nil {
		t.Fatalf("%s: phase %s, pending %+v: want a saved download", d.Name, s.Phase, s.Pending)
	}
	return s.Pending
}

// progressOf returns the saved progress of p if it is of one of routes,
// else nil.
func progressOf(p *agent.Pending, routes ...transfer.Route) *transfer.Progress {
	if p.Progress != nil && slices.Contains(routes, p.Progress.Route) {
		return p.Progress
	}
	return nil
}

// TestResumeAfterDroppedConnection drops the payload connection at fixed
// and random points. Within the same check the agent resumes from the exact
// byte reached: the device ends on the verified image, and the server sent
// every byte once.
func TestResumeAfterDroppedConnection(t *testing.T) {
	w := resumeWorld(t)
	cuts := []int64{0, 1, agent.CheckpointBytes - 1, agent.CheckpointBytes, agent.CheckpointBytes + 1, bigSize - 1}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 4 {
		cuts = append(cuts, 1+rng.Int64N(bigSize-1))
	}
	for i, cut := range cuts {
		t.Run(fmt.Sprintf("cut=%d", cut), func(t *testing.T) {
			d := w.device(fmt.Sprintf("drop-%d", i), 0)
			tp := w.tapPayload("1.1.0", firstCut(cut))
			defer w.proxy.clear()
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
			reqs := wantRequests(t, tp, 2)
			if reqs[0].bytes != cut {
				t.Fatalf("first request sent %d bytes, want the cut at %d", reqs[0].bytes, cut)
			}
			if again := tp.total() - bigSize; again != 0 {
				t.Fatalf("%d bytes downloaded again after a dropped connection, want 0 (requests %+v)", again, reqs)
			}
			c := download(t, d, "1.1.0")
			if c.Bytes != tp.total() || c.Requests != 2 || !c.Complete {
				t.Fatalf("download counter %+v, want %d bytes in 2 requests, complete", c, tp.total())
			}
			if cut > 0 {
				// No If-Range any more: the resume sends nothing the
				// server chose (it used to send the ETag back).
				if reqs[1].rangeHdr != fmt.Sprintf("bytes=%d-", cut) || reqs[1].ifRange != "" || reqs[1].status != 206 || c.Resumed != 1 {
					t.Fatalf("resume request %+v, counter %+v: want Range from %d without If-Range, answered 206", reqs[1], c, cut)
				}
			}
		})
	}
}

// TestResumeFlakyLinkInOneCheck: every connection drops after 300 KiB,
// far more often than max_attempts, but each request moves the download
// on, so the agent follows the link to the end within one check: each
// request resumes where the last one dropped, and every byte comes once.
func TestResumeFlakyLinkInOneCheck(t *testing.T) {
	w := resumeWorld(t)
	d := w.device("d", 0)
	const n = 300 << 10
	tp := w.tapPayload("1.1.0", func(int) plan { return plan{cut: n} })
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	want := (bigSize + n - 1) / n
	if want <= d.Config.MaxAttempts {
		t.Fatalf("%d requests are not more than max_attempts %d", want, d.Config.MaxAttempts)
	}
	reqs := wantRequests(t, tp, want)
	for i, r := range reqs[1:] {
		if r.rangeHdr != fmt.Sprintf("bytes=%d-", int64(i+1)*n) || r.status != 206 {
			t.Fatalf("request %d %+v, want Range from %d answered 206", i+1, r, int64(i+1)*n)
		}
	}
	if got := tp.total(); got != bigSize {
		t.Fatalf("%d bytes sent, want each of the %d once", got, bigSize)
	}
	if c := download(t, d, "1.1.0"); c.Bytes != bigSize || c.Requests != want || c.Resumed != want-1 || !c.Complete {
		t.Fatalf("download counter %+v, want %d bytes in %d requests", c, bigSize, want)
	}
}

// TestResumeAcrossChecks: every connection drops after 8 KiB, so the
// check gives up after Config.MaxAttempts drops in a row without progress
// (together less than the 64 KiB that count as progress). The progress
// stays (phase writing, class network in status), and the next check, on
// a good link, downloads only the rest.
func TestResumeAcrossChecks(t *testing.T) {
	w := resumeWorld(t)
	d := w.device("d", 0)
	const n = 8 << 10
	tp := w.tapPayload("1.1.0", func(int) plan { return plan{cut: n} })
	w.cycle(d)
	reqs := tp.requests()
	if len(reqs) != d.Config.MaxAttempts {
		t.Fatalf("%d requests in the first check, want %d (max_attempts)", len(reqs), d.Config.MaxAttempts)
	}
	p := pending(t, d)
	if p.Progress.Offset != int64(len(reqs))*n {
		t.Fatalf("saved at %d, want %d", p.Progress.Offset, len(reqs)*n)
	}
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastCheck.ErrorClass != "network" || st.Installing != "1.1.0" || st.DownloadSaved != p.Progress.Offset ||
		!strings.Contains(st.LastCheck.Reason, "resumes at the next check") {
		t.Fatalf("status %+v / %+v, want a network error and the download saved", st, st.LastCheck)
	}
	w.proxy.clear()
	tp = w.tapPayload("1.1.0", nil)
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	if got := tp.total(); got != bigSize-p.Progress.Offset {
		t.Fatalf("the second check downloaded %d bytes, want the %d missing", got, bigSize-p.Progress.Offset)
	}
	if c := download(t, d, "1.1.0"); c.Bytes != bigSize || c.Requests != len(reqs)+1 {
		t.Fatalf("counter %+v, want every byte once in %d requests", c, len(reqs)+1)
	}
}

// TestResumeAfterPowerLoss cuts power while the slot is written, after k
// writes of BufferSize/4; the device boots its old image, and the next
// check continues from the saved checkpoint: the bytes downloaded after
// the power loss are exactly the rest of the payload after it. With the
// power-loss window off the checkpoint is less than the power-loss budget
// behind what was written; with the default window (on loopback it lets
// the download run further ahead of the slot's flushes) it is behind, never
// ahead.
func TestResumeAfterPowerLoss(t *testing.T) {
	w := resumeWorld(t)
	const write = 256 << 10 // payload.BufferSize / 4
	for _, tc := range []struct {
		k      int
		window bool
	}{{1, false}, {16, false}, {17, false}, {18, false}, {33, false}, {40, false}, {1, true}, {17, true}, {33, true}, {40, true}} {
		k := tc.k
		t.Run(fmt.Sprintf("writes=%d/window=%v", k, tc.window), func(t *testing.T) {
			d := w.device(fmt.Sprintf("power-%d-%v", k, tc.window), 0)
			if !tc.window {
				off := units.Duration(0)
				d.Config.PowerLossWindow = &off
			}
			tp := w.tapPayload("1.1.0", nil)
			defer w.proxy.clear()
			writes := 0
			d.PowerLoss = func(p string) error {
				if p == "mid-write" {
					if writes++; writes == k {
						return agent.ErrPowerLoss
					}
				}
				return nil
			}
			if _, err := d.Cycle(context.Background()); !errors.Is(err, agent.ErrPowerLoss) {
				t.Fatalf("cycle: %v, want the power loss after %d writes", err, k)
			}
			d.PowerLoss = nil
			if _, err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			assertBootsKnownImage(t, w, d)
			written := int64(k-1) * write
			saved := int64(0)
			if written >= agent.CheckpointBytes {
				// The first save begins at CheckpointBytes; later ones
				// run in the background and may lag.
				p := pending(t, d)
				saved = p.Progress.Offset
				if saved > written || saved < agent.CheckpointBytes || saved%write != 0 {
					t.Fatalf("saved at %d after %d bytes written, want a checkpoint between %d and there", saved, written, agent.CheckpointBytes)
				}
				if !tc.window && written-saved >= agent.DefaultPowerLossBudget {
					t.Fatalf("saved at %d after %d bytes written: %d bytes at risk, want less than the budget of %d", saved, written, written-saved, agent.DefaultPowerLossBudget)
				}
			}
			before := len(tp.requests())
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
			if after := tp.since(before); after != bigSize-saved {
				t.Fatalf("after the power loss %d bytes were downloaded, want the %d after the checkpoint at %d", after, bigSize-saved, saved)
			}
			if saved > 0 {
				reqs := tp.requests()
				if last := reqs[len(reqs)-1]; last.rangeHdr != fmt.Sprintf("bytes=%d-", saved) {
					t.Fatalf("resume request %+v, want Range from %d", last, saved)
				}
			}
		})
	}
}

// TestResumeAfterAgentKilled: the agent's process dies while writing the
// slot (SIGKILL, a crash) but the device keeps running. The next agent
// reuses what the dead one wrote after its last checkpoint (the write
// hint): the bytes downloaded afterwards are exactly the ones never
// written. If those bytes are damaged, the resumed image does not verify
// and the payload is downloaded again from byte 0.
func TestResumeAfterAgentKilled(t *testing.T) {
	w := resumeWorld(t)
	const write = 256 << 10
	for _, tc := range []struct {
		k       int
		corrupt bool
	}{{3, false}, {17, false}, {30, false}, {30, true}} {
		t.Run(fmt.Sprintf("writes=%d/corrupt=%v", tc.k, tc.corrupt), func(t *testing.T) {
			d := w.device(fmt.Sprintf("kill-%d-%v", tc.k, tc.corrupt), 0)
			tp := w.tapPayload("1.1.0", nil)
			defer w.proxy.clear()
			writes := 0
			d.PowerLoss = func(p string) error {
				if p == "mid-write" {
					if writes++; writes == tc.k {
						// The process ends here, as at a power loss,
						// but the device does not boot.
						return agent.ErrPowerLoss
					}
				}
				return nil
			}
			if _, err := d.Cycle(context.Background()); !errors.Is(err, agent.ErrPowerLoss) {
				t.Fatalf("cycle: %v, want the agent stopped", err)
			}
			d.PowerLoss = nil
			written := int64(tc.k-1) * write
			if tc.corrupt {
				f, err := os.OpenFile(filepath.Join(d.SlotsDir(), fileslot.ImageFile("b")), os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt([]byte("lost"), written-100)
				f.Close()
			}
			before := len(tp.requests())
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
			want := bigSize - written
			if tc.corrupt {
				want += bigSize
			}
			if after := tp.since(before); after != want {
				t.Fatalf("after the agent was killed %d bytes were downloaded, want %d (%d written before)", after, want, written)
			}
		})
	}
}

// powerLossAt cuts power at the k-th slot write and boots; it returns the
// saved progress.
func powerLossAt(t *testing.T, w *world, d *sim.Device, k int) *agent.Pending {
	t.Helper()
	writes := 0
	d.PowerLoss = func(p string) error {
		if p == "mid-write" {
			if writes++; writes == k {
				return agent.ErrPowerLoss
			}
		}
		return nil
	}
	if _, err := d.Cycle(context.Background()); !errors.Is(err, agent.ErrPowerLoss) {
		t.Fatalf("cycle: %v, want a power loss", err)
	}
	d.PowerLoss = nil
	if _, err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	assertBootsKnownImage(t, w, d)
	return pending(t, d)
}

// TestResumeReadsBackTheSlot: the slot lost bytes that the checkpoint
// claims (flash that lied about a sync). The resumed image's hashes match,
// since they cover what arrived, but the read-back of the slot does not:
// the agent downloads the whole payload again and boots a verified image.
func TestResumeReadsBackTheSlot(t *testing.T) {
	w := resumeWorld(t)
	d := w.device("d", 0)
	tp := w.tapPayload("1.1.0", nil)
	p := powerLossAt(t, w, d, 30)
	img := filepath.Join(d.SlotsDir(), fileslot.ImageFile(p.Slot))
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("rot"), p.Progress.Offset/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := len(tp.requests())
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	if after := tp.since(before); after != bigSize-p.Progress.Offset+bigSize {
		t.Fatalf("downloaded %d bytes after the power loss, want the rest (%d) and then all of it (%d)", after, bigSize-p.Progress.Offset, bigSize)
	}
	if c := download(t, d, "1.1.0"); c.Restarts != 1 {
		t.Fatalf("counter %+v, want one restart", c)
	}
}

// TestResumeServerIgnoresRange: after a drop, the server (or a cache in
// front of it) answers the range request with the whole payload. The agent
// starts over from byte 0 with that answer.
func TestResumeServerIgnoresRange(t *testing.T) {
	w := resumeWorld(t)
	d := w.device("d", 0)
	const cut = 6<<20 + 5
	tp := w.tapPayload("1.1.0", func(i int) plan {
		if i == 0 {
			return plan{cut: cut}
		}
		return plan{cut: -1, stripRange: true}
	})
	w.cycle(d)
	w.assertRunning(d, "1.1.0")
	reqs := wantRequests(t, tp, 2)
	if reqs[1].status != 200 || reqs[1].bytes != bigSize {
		t.Fatalf("second request %+v, want the whole payload with 200", reqs[1])
	}
	if c := download(t, d, "1.1.0"); c.Bytes != cut+bigSize || c.Restarts != 1 || c.Resumed != 0 {
		t.Fatalf("counter %+v, want %d bytes and one restart", c, cut+bigSize)
	}
}

// TestResumeServerSendsMore: on resume the server announces a larger
// payload, or sends more bytes than the range it announced. The agent
// refuses the release for this check (payload-too-long), keeps its old
// image, and the next check installs from scratch.
func TestResumeServerSendsMore(t *testing.T) {
	const cut = 3<<20 + 3
	for _, tc := range []struct {
		name string
		p    plan
	}{
		{"larger size", plan{cut: -1, contentRange: fmt.Sprintf("bytes %d-%d/%d", cut, bigSize, bigSize+1)}},
		{"longer body", plan{cut: -1, extra: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := resumeWorld(t)
			d := w.device("d", 0)
			tp := w.tapPayload("1.1.0", func(i int) plan {
				if i == 0 {
					return plan{cut: cut}
				}
				return tc.p
			})
			w.cycle(d)
			st := w.assertRefused(d, "1.0.0", "payload-too-long", "rejected")
			if !strings.Contains(st.LastCheck.Reason, "longer") && !strings.Contains(st.LastCheck.Reason, "exceeds") {
				t.Fatalf("reason %q does not say the payload was too long", st.LastCheck.Reason)
			}
			if len(tp.requests()) != 2 {
				t.Fatalf("requests %+v: a payload that is too long must not be retried", tp.requests())
			}
			w.proxy.clear()
			tp = w.tapPayload("1.1.0", nil)
			w.cycle(d)
			w.assertRunning(d, "1.1.0")
			if reqs := wantRequests(t, tp, 1); reqs[0].rangeHdr != "" {
				t.Fatalf("after the refusal the download resumed (%+v); want a fresh start", reqs[0])
			}
		})
	}
}

// TestResumeProgressForAnotherRelease: the saved progress does not belong to
// what the device installs now — a newer release was published, or the
// state names another payload hash, or its hash states are damaged. The
// agent starts from byte 0 and installs the right image.
func TestResumeProgressForAnotherRelease(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, w *world, d *sim.Device)
		version string
		// resumed: the agent cannot tell before the end, tries the
		// resume, and starts over when the image does not verify.
		resumed bool
	}{
		{"newer release", func(t *testing.T, w *world, d *sim.Device) { w.publishBig("1.2.0", 3, bigSize+99) }, "1.2.0", false},
		{"other payload hash", func(t *testing.T, w *world, d *sim.Device) {
			editState(t, d, func(s *agent.State) { s.Pending.SHA256 = strings.Repeat("ab", 32) })
		}, "1.1.0", false},
		{"unreadable hash state", func(t *testing.T, w *world, d *sim.Device) {
			editState(t, d, func(s *agent.State) { s.Pending.Progress.States["sha256"][0] ^= 1 })
		}, "1.1.0", false},
		{"offset beyond the payload", func(t *testing.T, w *world, d *sim.Device) {
			editState(t, d, func(s *agent.State) { s.Pending.Progress.Offset = bigSize + 1 })
		}, "1.1.0", false},
		{"damaged hash state", func(t *testing.T, w *world, d *sim.Device) {
			editState(t, d, func(s *agent.State) { s.Pending.Progress.States["sha256"][10] ^= 1 })
		}, "1.1.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := resumeWorld(t)
			d := w.device("d", 0)
			powerLossAt(t, w, d, 20)
			tc.change(t, w, d)
			tp := w.tapPayload(tc.version, nil)
			w.cycle(d)
			w.assertRunning(d, tc.version)
			n := 1
			if tc.resumed {
				n = 2
			}
			reqs := wantRequests(t, tp, n)
			if last := reqs[n-1]; last.rangeHdr != "" || last.bytes != int64(len(w.images[tc.version])) {
				t.Fatalf("requests %+v: want the whole payload from byte 0 at the end", reqs)
			}
			if tc.resumed && reqs[0].rangeHdr == "" {
				t.Fatalf("requests %+v: want a resume first", reqs)
			}
		})
	}
}

// TestResumeDroppedWhenNoLongerOffered: the release of an interrupted
// download is no longer offered; the check drops the progress and the
// device stays idle on its image.
func TestResumeDroppedWhenNoLongerOffered(t *testing.T) {
	w := resumeWorld(t)
	d := w.device("d", 0)
	powerLossAt(t, w, d, 20)
	w.rollout("1.1.0", 0)
	w.cycle(d)
	w.assertRunning(d, "1.0.0")
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != nil {
		t.Fatalf("pending %+v kept after the release was withdrawn", s.Pending)
	}
}

// editState changes the device's state.json as a damaged or foreign file
// would.
func editState(t *testing.T, d *sim.Device, change func(*agent.State)) {
	t.Helper()
	s, err := agent.LoadState(d.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	change(s)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Config.DataDir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDownloadRateLimit: download_rate_limit in agent.json paces every
// body the agent reads. The fetch client's clock and sleep are fakes that
// record the waits, so the check is exact and takes no real time: the
// payload alone must have cost (size − one burst) / rate of waiting.
func TestDownloadRateLimit(t *testing.T) {
	w := resumeWorld(t)
	d := w.device("d", 0)
	const rate = 1 << 20
	if err := d.SetConfig(func(c *agent.Config) { c.DownloadRateLimit = rate }); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	var waited time.Duration
	d.HTTP.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d.HTTP.Sleep = func(ctx context.Context, dur time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		now, waited = now.Add(dur), waited+dur
		return ctx.Err()
	}
	tp := w.tapPayload("1.1.0", nil)
	w.cycle(d)
	st := w.assertRunning(d, "1.1.0")
	burst := fetch.NewRateLimiter(rate, nil).Burst()
	least := time.Duration(float64(bigSize-burst) / rate * float64(time.Second))
	if waited < least || waited > least+2*time.Second {
		t.Fatalf("waited %v for %d payload bytes at %d B/s, want %v plus the metadata's share", waited, tp.total(), rate, least)
	}
	if st.DownloadRateLimit != rate || st.Download == nil || st.Download.Bytes != bigSize {
		t.Fatalf("status: limit %v, download %+v", st.DownloadRateLimit, st.Download)
	}
}
