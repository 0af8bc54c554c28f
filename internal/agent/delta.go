package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/delta"
	"github.com/uptrust/uptrust/internal/release"
)

// SlotHash is the cached SHA-256 of the first Length bytes of a slot while
// it runs Version. It is computed once by reading the booted slot, and
// reused only for the same slot, version and length.
type SlotHash struct {
	Slot    slot.Name `json:"slot"`
	Version string    `json:"version"`
	Length  int64     `json:"length"`
	SHA256  string    `json:"sha256"`
}

// DeltaOutcome says whether the last install used a delta, and if not,
// why.
type DeltaOutcome struct {
	Version string    `json:"version"`
	From    string    `json:"from"`
	Used    bool      `json:"used"`
	Bytes   int64     `json:"bytes,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// deltaOffer is a delta the chosen release lists from the running version,
// checked for agreement of both repositories (err otherwise). It lives for
// one check only and is never saved.
type deltaOffer struct {
	d      release.Delta
	target *metadata.TargetFiles
	err    error
}

// offerDelta returns the delta of m from the running version, or nil when
// m lists none.
func (a *Agent) offerDelta(r *repos, m *release.Manifest, running string) *deltaOffer {
	d := m.DeltaFrom(running)
	if d == nil {
		return nil
	}
	o := &deltaOffer{d: *d}
	rel, _, err := r.agreed(d.Target)
	if err != nil {
		o.err = err
		return o
	}
	if rel.Length != d.Length || hex.EncodeToString(rel.Hashes["sha256"]) != d.SHA256 {
		o.err = fmt.Errorf("the delta target %s does not have the length and sha256 the manifest lists", d.Target)
		return o
	}
	o.target = rel
	return o
}

// Errors of the delta path; any of them makes the agent fall back to the
// full payload.
var (
	errDeltaSource     = errors.New("agent: the active slot does not hold the delta's source image")
	errDeltaNoReaderAt = errors.New("agent: the slot backend's reader has no random access (io.ReaderAt)")
	errDeltaTarget     = errors.New("agent: the delta's target does not match the manifest's image")
	// errDeltaInterrupted: the link dropped the delta download
	// Config.MaxAttempts times in a row. Not a reason to fetch the larger
	// full payload over the same link: the progress is kept and the next
	// check resumes the delta.
	errDeltaInterrupted = errors.New("agent: the delta download was interrupted")
)

// installDelta writes the release's image into the pending slot from a
// delta: it checks the active slot's image against the delta's source
// hash, downloads the delta (verified against its signed length and
// hashes) into deltaFile, checks that the delta's declared target is the
// manifest's image, and applies it with the active slot as the source;
// Apply checks the bytes it hands to the slot against that target hash, so
// the slot is not read back (as after a full download).
//
// The download saves its progress in s.Pending.Delta (see fetchDelta), so
// a dropped connection is resumed with a Range request within this check,
// and a power loss or a stopped agent (ctx) leaves phase writing with the
// progress and the file for the next check, which resumes it (see
// savedDelta). The same holds after a power loss during the apply: the
// progress then says the delta is complete, and the next check reads the
// file back, verifies it and applies it again into the slot from byte 0.
// Any other failure drops the progress and the file: the caller falls
// back to the full payload.
func (a *Agent) installDelta(ctx context.Context, s *State, m *release.Manifest, o *deltaOffer) (int64, error) {
	n, err := a.tryDelta(ctx, s, m, o)
	if err != nil && (errors.Is(err, ErrPowerLoss) || ctx.Err() != nil || errors.Is(err, errDeltaInterrupted) && s.Pending.Delta != nil) {
		// Keep the progress: the next check resumes.
		return n, err
	}
	if s.Pending.Delta != nil {
		s.Pending.Delta = nil
		if serr := saveState(a.cfg.DataDir, s); serr != nil && err == nil {
			err = serr
		}
	}
	a.dropDeltaFile()
	return n, err
}

// tryDelta is installDelta without the clean-up.
func (a *Agent) tryDelta(ctx context.Context, s *State, m *release.Manifest, o *deltaOffer) (int64, error) {
	if o.err != nil {
		return 0, o.err
	}
	p := s.Pending
	d := o.d
	if d.Length >= p.Length {
		// Not smaller than the full payload: nothing to gain, and the
		// temporary file stays bounded by the payload's size.
		return 0, fmt.Errorf("the %d-byte delta is not smaller than the %d-byte payload", d.Length, p.Length)
	}
	srcSum, err := a.activeHash(ctx, s, p.From, d.SourceLength)
	if err != nil {
		return 0, err
	}
	if srcSum != d.SourceSHA256 {
		return 0, fmt.Errorf("%w: the first %d bytes of slot %s hash to %s, the delta is for %s", errDeltaSource, d.SourceLength, p.From, srcSum, d.SourceSHA256)
	}
	var src [32]byte
	if _, err := hex.Decode(src[:], []byte(srcSum)); err != nil {
		return 0, err
	}
	f, err := a.fetchDelta(ctx, s, m.Version, o)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// The delta must produce exactly the manifest's image: then Apply's check of the
	// written bytes against the header's target hash is the image check, and the slot
	// need not be read back (as after a full download).
	length, sum := m.Image(p.Length, p.SHA256)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("reading the delta: %w", err)
	}
	h, err := delta.ReadHeader(f)
	if err != nil {
		return 0, fmt.Errorf("reading the delta: %w", err)
	}
	if h.TargetSize != length || hex.EncodeToString(h.TargetSHA256[:]) != sum {
		return 0, fmt.Errorf("%w: the delta makes a %d-byte image with SHA-256 %x, the manifest's image has %d bytes and SHA-256 %s",
			errDeltaTarget, h.TargetSize, h.TargetSHA256, length, sum)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("reading the delta: %w", err)
	}
	rd, err := a.slots.OpenReader(ctx, p.From)
	if err != nil {
		return 0, fmt.Errorf("opening slot %s for reading: %w", p.From, err)
	}
	defer rd.Close()
	ra, ok := rd.(io.ReaderAt)
	if !ok {
		return 0, errDeltaNoReaderAt
	}
	w, err := a.openSlot(ctx, p.Slot, 0)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(powerWriter{payload.WritebackAt(w, 0), a.power, "mid-write"}, 1<<20)
	_, err = delta.Apply(ctx, bw, delta.Source{R: ra, Size: d.SourceLength, SHA256: src}, bufio.NewReaderSize(io.LimitReader(f, d.Length), 1<<16))
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("applying the delta from %s: %w", d.From, err)
	}
	return d.Length, nil
}

// activeHash returns the SHA-256 of the first length bytes of the booted
// slot n, from the cache in state when it is for the same slot, version
// and length, else by reading the slot (and caching the result). A slot
// shorter than length gives an empty hash, which matches nothing.
func (a *Agent) activeHash(ctx context.Context, s *State, n slot.Name, length int64) (string, error) {
	if c := s.ActiveHash; c != nil && c.Slot == n && c.Version == s.Version && c.Length == length {
		return c.SHA256, nil
	}
	rd, err := a.slots.OpenReader(ctx, n)
	if err != nil {
		return "", fmt.Errorf("opening slot %s for reading: %w", n, err)
	}
	defer rd.Close()
	h := sha256.New()
	got, err := io.Copy(h, io.LimitReader(rd, length))
	if err != nil {
		return "", fmt.Errorf("hashing slot %s: %w", n, err)
	}
	sum := ""
	if got == length {
		sum = hex.EncodeToString(h.Sum(nil))
	}
	s.ActiveHash = &SlotHash{Slot: n, Version: s.Version, Length: length, SHA256: sum}
	return sum, saveState(a.cfg.DataDir, s)
}

// DeltaCheckpointBytes is how often the delta download saves its progress:
// after this many bytes or CheckpointInterval, whichever comes first, and
// at once, at the exact offset reached, when the connection fails or the
// agent is stopped. Each save is an fsync of deltaFile, then a write of
// the state into the checkpoint journal (transfer.Journal), done before the
// download goes on: deltas
// are small (a few MiB, a few dozen saves). It is one copy buffer
// (payload.BufferSize/4), so every whole buffer written is saved and a
// power loss costs at most the buffer being filled; an idle save
// (payload.Checkpoints.Idle) would add nothing.
const DeltaCheckpointBytes = 256 << 10

// fetchDelta downloads the delta target into deltaFile, verified against
// its signed length and hashes, and returns the file (open for reading and
// writing), with its progress in s.Pending.Delta (see stagedFetch).
func (a *Agent) fetchDelta(ctx context.Context, s *State, version string, o *deltaOffer) (*os.File, error) {
	t := o.target
	hashes := map[string][]byte{}
	for alg, h := range t.Hashes {
		hashes[alg] = h
	}
	key := &Pending{Version: version, SHA256: o.d.SHA256, Length: o.d.Length}
	p := s.Pending
	sf := &stagedFetch{a: a, s: s, what: "delta", path: a.deltaFile(), point: "delta-write", every: DeltaCheckpointBytes,
		url:    a.cfg.Server + "/repo/release/targets/" + targetFileName(o.d.Target, hex.EncodeToString(t.Hashes["sha256"])),
		length: t.Length, hashes: hashes, version: version,
		saved: func() *Download {
			if p.Delta == nil {
				return nil
			}
			return &p.Delta.Download
		},
		record: func(d *Download) {
			p.Delta = nil
			if d != nil {
				p.Delta = &DeltaDownload{From: o.d.From, Target: o.d.Target, Length: o.d.Length, SHA256: o.d.SHA256, Download: *d}
			}
		},
		count: func() *DownloadCount {
			c := s.downloadCount(key)
			c.DeltaFrom = o.d.From
			return c
		},
		interrupted: errDeltaInterrupted,
	}
	f, err := sf.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("downloading the delta: %w", err)
	}
	return f, nil
}

// savedDelta returns the delta progress of the interrupted install in s
// that next may continue: the same release into the same slot (see
// sameDownload), and the same delta as the one offered now. Otherwise it
// returns nil and removes any delta file left behind.
func (a *Agent) savedDelta(s *State, next *Pending, o *deltaOffer) *DeltaDownload {
	prev := s.Pending
	if s.Phase == PhaseWriting && prev != nil && prev.Delta != nil && prev.Download == nil && sameDownload(prev, next) &&
		o != nil && o.err == nil && sameDelta(prev.Delta, o.d) {
		return prev.Delta
	}
	if prev != nil && prev.Delta != nil {
		a.log.Info("the saved delta download is for another release, delta or slot; dropping it", "saved", prev.Version, "saved_from", prev.Delta.From,
			"version", next.Version)
	}
	a.dropDeltaFile()
	return nil
}

// sameDelta reports whether saved delta progress is for the delta d.
func sameDelta(saved *DeltaDownload, d release.Delta) bool {
	return saved.From == d.From && saved.Target == d.Target && saved.Length == d.Length && saved.SHA256 == d.SHA256
}

// deltaFile is where a downloaded delta waits to be applied.
func (a *Agent) deltaFile() string { return filepath.Join(a.cfg.DataDir, "delta.tmp") }

// dropDeltaFile removes a delta file that no saved progress refers to.
func (a *Agent) dropDeltaFile() {
	if err := os.Remove(a.deltaFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("removing a leftover delta", "err", err)
	}
}
