package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/transfer"
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
func offerDelta(r *repos, m *release.Manifest, running string) *deltaOffer {
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

// errDeltaSource: the active slot does not hold the image the delta is
// for. Like every failure of the delta path (see installDelta), it makes
// the agent fall back to the full payload.
var errDeltaSource = errors.New("agent: the active slot does not hold the delta's source image")

// installDelta writes the release's image into the pending slot from a
// delta: it checks the active slot's image against the delta's source
// hash, then downloads the delta and applies it from the active slot
// (transfer.Downloader.Delta), with its progress in s.Pending.Progress
// and the delta in s.Pending.Delta.
//
// A power loss or a stopped agent (ctx) leaves phase writing with the
// progress and the file for the next check, which resumes it (see
// savedProgress), and so does a link that keeps dropping the download
// (transfer.ErrDeltaInterrupted) once progress is saved. Any other failure
// drops the progress and the file: the caller falls back to the full
// payload.
func (a *Agent) installDelta(ctx context.Context, s *State, m *release.Manifest, o *deltaOffer) (int64, error) {
	n, err := a.tryDelta(ctx, s, m, o)
	if err != nil && (errors.Is(err, ErrPowerLoss) || ctx.Err() != nil || errors.Is(err, transfer.ErrDeltaInterrupted) && s.Pending.Delta != nil) {
		// Keep the progress: the next check resumes.
		return n, err
	}
	if s.Pending.Delta != nil {
		s.Pending.Progress, s.Pending.Delta = nil, nil
		if serr := a.record(s); serr != nil && err == nil {
			err = serr
		}
	}
	a.dropDeltaFile()
	return n, err
}

// tryDelta is installDelta without the clean-up.
func (a *Agent) tryDelta(ctx context.Context, s *State, m *release.Manifest, o *deltaOffer) (int64, error) {
	p := s.Pending
	d := o.d
	if err := deltaWorth(o, p.Length); err != nil {
		return 0, err
	}
	srcSum, err := a.activeHash(ctx, s, p.From, d.SourceLength)
	if err != nil {
		return 0, err
	}
	if err := deltaSource(d, p.From, srcSum); err != nil {
		return 0, err
	}
	var src [32]byte
	if _, err := hex.Decode(src[:], []byte(srcSum)); err != nil {
		return 0, err
	}
	// The delta must produce exactly the manifest's image.
	length, sum := m.Image(p.Length, p.SHA256)
	key := &Pending{Version: m.Version, SHA256: d.SHA256, Length: d.Length}
	j := transfer.Job{Version: m.Version, Target: transfer.NewTarget(a.cfg.Server, d.Target, o.target), Slot: a.slot(p.Slot),
		Saved: p.deltaProgress(), Rec: &recorder{a: a, s: s, key: key, deltaFrom: d.From, set: func(pr *transfer.Progress) { p.setDeltaProgress(d, pr) }}}
	done := a.showDownload(ctx, m.Version, "the delta from "+d.From+" to "+m.Version, d.Length, j.Saved)
	err = a.transfers().Delta(ctx, j, transfer.Source{Slot: a.slot(p.From), Version: d.From, Length: d.SourceLength, SHA256: src},
		transfer.Image{Length: length, SHA256: sum})
	done()
	if err != nil {
		return 0, err
	}
	return d.Length, nil
}

// deltaWorth says why the delta offer o cannot serve an install whose full
// payload has payloadLength bytes, before anything is read: the two
// repositories disagree on it, or it is not smaller than the payload
// (nothing to gain, and the temporary file stays bounded by the payload's
// size). Pure.
func deltaWorth(o *deltaOffer, payloadLength int64) error {
	switch {
	case o.err != nil:
		return o.err
	case o.d.Length >= payloadLength:
		return fmt.Errorf("the %d-byte delta is not smaller than the %d-byte payload", o.d.Length, payloadLength)
	}
	return nil
}

// deltaSource says why the delta d cannot apply to the active slot from,
// whose first d.SourceLength bytes hash to active (hex; "" when the slot
// is shorter): the delta is for another source image. Pure.
func deltaSource(d release.Delta, from slot.Name, active string) error {
	if active != d.SourceSHA256 {
		return fmt.Errorf("%w: the first %d bytes of slot %s hash to %s, the delta is for %s", errDeltaSource, d.SourceLength, from, active, d.SourceSHA256)
	}
	return nil
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
	return sum, a.record(s)
}

// sameDelta reports whether saved delta progress is for the delta d.
func sameDelta(saved *DeltaID, d release.Delta) bool {
	return saved.From == d.From && saved.Target == d.Target && saved.Length == d.Length && saved.SHA256 == d.SHA256
}
