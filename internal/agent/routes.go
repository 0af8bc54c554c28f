package agent

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
)

// The agent's side of package transfer, which moves the bytes: the knobs,
// the slots a route reads and writes, and the recorder that keeps a
// route's progress in State.Pending and its counters in State.Downloads.

// Checkpoint knobs (see transfer.CheckpointBytes).
const (
	CheckpointBytes      = transfer.CheckpointBytes
	CheckpointInterval   = transfer.CheckpointInterval
	DeltaCheckpointBytes = transfer.DeltaCheckpointBytes
	// DefaultPowerLossBudget is Config.PowerLossBudget's default: with one
	// buffer and what is in flight on loopback, under 1 MiB.
	DefaultPowerLossBudget = 512 << 10
	// DefaultPowerLossWindow is Config.PowerLossWindow's default: a
	// power loss costs at most about a quarter of a second of the link
	// (or the budget), and a link faster than the slot's flushes is not
	// held back by each one.
	DefaultPowerLossWindow = 250 * time.Millisecond
	// maxPowerLossWindow bounds Config.PowerLossWindow.
	maxPowerLossWindow = 10 * time.Second
)

// transfers returns the routes with the agent's knobs.
func (a *Agent) transfers() *transfer.Downloader {
	d := &transfer.Downloader{HTTP: a.http, Dir: a.cfg.DataDir, MaxAttempts: a.cfg.MaxAttempts, LossBudget: a.cfg.lossBudget(),
		LossWindow: a.cfg.lossWindow(), Now: a.clock.Now, Log: a.log, Power: a.power, BootID: a.bootID}
	if a.bar != nil || a.dlHook != nil {
		bar, hook := a.bar, a.dlHook
		d.Received = func(n int64) {
			if bar != nil {
				bar.Add(n)
			}
			if hook != nil {
				hook(n)
			}
		}
	}
	return d
}

// showDownload starts the progress display of downloading what of
// length bytes of version, from the offset saved progress reached, and
// its downloading events (managed mode, see dlEvents); the returned
// function ends both. Call it before transfers.
func (a *Agent) showDownload(ctx context.Context, version, what string, length int64, saved *transfer.Progress) func() {
	var off int64
	if saved != nil {
		off = saved.Offset
	}
	a.dlHook = a.startDownloadEvents(ctx, version, length, off)
	if a.bar == nil {
		return func() { a.dlHook = nil }
	}
	a.bar.Start("downloading "+what, length)
	if saved != nil {
		a.bar.Set(saved.Offset)
	}
	return func() { a.dlHook = nil; a.bar.Done() }
}

// download streams the uncompressed payload of s.Pending into its slot
// and returns nil once the slot holds the whole image, verified against
// the signed hashes of rel and synced (transfer.Downloader.Plain).
func (a *Agent) download(ctx context.Context, s *State, rel *metadata.TargetFiles) error {
	j := a.payloadJob(s, rel)
	defer a.showDownload(ctx, j.Version, j.Version, j.Target.Length, j.Saved)()
	return a.transfers().Plain(ctx, j)
}

// downloadZstd writes the image that the zstd payload of s.Pending
// decompresses to into its slot, staged in the data directory first when
// Config.StageCompressed and the free space allow, and checks it against
// the manifest (transfer.Downloader.Compressed).
func (a *Agent) downloadZstd(ctx context.Context, s *State, rel *metadata.TargetFiles) error {
	p := s.Pending
	j := a.payloadJob(s, rel)
	defer a.showDownload(ctx, j.Version, j.Version+" (compressed)", j.Target.Length, j.Saved)()
	return a.transfers().Compressed(ctx, j, transfer.Image{Length: p.ImageLength, SHA256: p.ImageSHA256},
		a.cfg.StagingEnabled())
}

// payloadJob is the download of the payload of s.Pending, signed as rel,
// into its slot, continuing from its saved progress.
func (a *Agent) payloadJob(s *State, rel *metadata.TargetFiles) transfer.Job {
	p := s.Pending
	return transfer.Job{Version: p.Version, Target: transfer.NewTarget(a.cfg.Server, p.Target, rel), Slot: a.slot(p.Slot),
		Saved: p.payloadProgress(), Rec: &recorder{a: a, s: s, key: p, set: p.setPayloadProgress}}
}

// savedProgress gives next the saved progress of the interrupted install
// in s if next may continue it: the same release into the same slot (see
// sameDownload) and, for a delta's progress, the same delta as the one
// offered now (o). It removes the staged payload and the delta file that
// next does not continue from.
func (a *Agent) savedProgress(s *State, next *Pending, o *deltaOffer) {
	prev := s.Pending
	var saved *transfer.Progress
	if s.Phase == PhaseWriting && prev != nil {
		saved = prev.Progress
	}
	keep := saved != nil && sameDownload(prev, next)
	switch {
	case saved == nil:
	case saved.Route == transfer.RouteDelta:
		if keep = keep && o != nil && o.err == nil && sameDelta(prev.Delta, o.d); !keep {
			a.log.Info("the saved delta download is for another release, delta or slot; dropping it", "saved", prev.Version, "saved_from", prev.Delta.From,
				"version", next.Version)
		}
	case saved.Route == transfer.RouteStaged:
		if keep {
			a.log.Info("resuming the staged download", "version", next.Version, "offset", saved.Offset, "length", next.Length)
		}
	case keep:
		a.log.Info("resuming the download", "version", next.Version, "offset", saved.Offset, "length", next.Length)
	default:
		a.log.Info("the saved download is for another release or slot; starting over", "saved", prev.Version, "saved_sha256", prev.SHA256,
			"saved_slot", prev.Slot, "version", next.Version, "sha256", next.SHA256, "slot", next.Slot)
	}
	if keep {
		next.Progress, next.Delta = saved, prev.Delta
	}
	if !keep || saved.Route != transfer.RouteDelta {
		a.dropDeltaFile()
	}
	if !keep || saved.Route != transfer.RouteStaged {
		a.dropStagedFile()
	}
}

// recorder keeps a route's progress in s.Pending (set) and its counters in
// the DownloadCount of key (see transfer.Recorder).
type recorder struct {
	a   *Agent
	s   *State
	key *Pending
	// deltaFrom marks the counter as a delta's.
	deltaFrom string
	set       func(*transfer.Progress)
}

func (r *recorder) Record(p *transfer.Progress) { r.set(p) }

func (r *recorder) Count(c transfer.Count) {
	d := r.s.downloadCount(r.key)
	if r.deltaFrom != "" {
		d.DeltaFrom = r.deltaFrom
	}
	d.Bytes += c.Bytes
	d.Requests += c.Requests
	d.Resumed += c.Resumed
	d.Restarts += c.Restarts
	if c.Complete {
		d.Complete = true
	}
}

func (r *recorder) Encode() (uint64, []byte, error) { return encodeCheckpoint(r.s) }

func (r *recorder) Replace(b []byte) error { return r.a.replaceState(b) }

// slot returns slot n of the agent's backend as a route sees it.
func (a *Agent) slot(n slot.Name) slotRef { return slotRef{b: a.slots, n: n} }

// slotRef is a slot of the agent's backend (transfer.Slot).
type slotRef struct {
	b slot.Backend
	n slot.Name
}

func (s slotRef) OpenWriter(ctx context.Context, off int64) (transfer.Writer, error) {
	if off == 0 {
		return s.b.OpenWriter(ctx, s.n)
	}
	return s.b.OpenWriterAt(ctx, s.n, off)
}

func (s slotRef) OpenReader(ctx context.Context) (io.ReadCloser, error) {
	return s.b.OpenReader(ctx, s.n)
}

func (s slotRef) String() string { return string(s.n) }

// kernelBootID is where Linux keeps an ID that changes at every boot.
var kernelBootID = "/proc/sys/kernel/random/boot_id"

// bootID identifies the running boot for the write hint: the kernel's boot
// ID, plus the simulated power cycles of a backend that counts them
// (slot.BootCounter). It returns "" when it cannot tell, which turns the
// hint off.
func (a *Agent) bootID(ctx context.Context) string {
	b, err := os.ReadFile(kernelBootID)
	id := strings.TrimSpace(string(b))
	if err != nil || id == "" {
		return ""
	}
	if bc, ok := a.slots.(slot.BootCounter); ok {
		n, err := bc.BootCount(ctx)
		if err != nil {
			return ""
		}
		id += "/" + strconv.FormatUint(n, 10)
	}
	return id
}

// dropHint removes the write hint of a download that is over or given up.
func (a *Agent) dropHint() { a.files().DropHint() }

// dropStagedFile removes the staged payload, if any.
func (a *Agent) dropStagedFile() { a.files().DropStaged() }

// dropDeltaFile removes a delta file that no saved progress refers to.
func (a *Agent) dropDeltaFile() { a.files().DropDelta() }

// files is the part of the routes that manages their files in the data
// directory.
func (a *Agent) files() *transfer.Downloader {
	return &transfer.Downloader{Dir: a.cfg.DataDir, Log: a.log}
}
