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
)

// installDelta writes the release's image into the pending slot from a
// delta: it checks the active slot's image against the delta's source
// hash, downloads the delta (verified against its signed length and
// hashes) into a temporary file in the data directory, applies it with the
// active slot as the source and verifies the resulting image against the
// manifest. It saves no progress: after a power loss the install restarts
// (phase writing without Download, see resume).
func (a *Agent) installDelta(ctx context.Context, s *State, m *release.Manifest, o *deltaOffer) (int64, error) {
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
	tmp, err := a.fetchDelta(ctx, s, m.Version, o)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	f, err := os.Open(tmp)
	if err != nil {
		return 0, err
	}
	defer f.Close()
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
	bw := bufio.NewWriterSize(powerWriter{payload.WritebackAt(w, 0), a.power}, 1<<20)
	_, err = delta.Apply(ctx, bw, delta.Source{R: ra, Size: d.SourceLength, SHA256: src}, bufio.NewReaderSize(f, 1<<16))
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
	length, sum := m.Image(p.Length, p.SHA256)
	want, err := hex.DecodeString(sum)
	if err != nil {
		return 0, err
	}
	if err := a.verifyImage(ctx, &Pending{Slot: p.Slot, ImageLength: length}, want); err != nil {
		return 0, err
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

// fetchDelta downloads the delta target into a temporary file in the data
// directory, verified against its signed length and hashes, and returns
// the file's path.
func (a *Agent) fetchDelta(ctx context.Context, s *State, version string, o *deltaOffer) (string, error) {
	t := o.target
	hashes := map[string][]byte{}
	for alg, h := range t.Hashes {
		hashes[alg] = h
	}
	v, err := payload.NewResumable(t.Length, hashes)
	if err != nil {
		return "", err
	}
	url := a.cfg.Server + "/repo/release/targets/" + targetFileName(o.d.Target, hex.EncodeToString(t.Hashes["sha256"]))
	res, err := a.http.GetFrom(ctx, url, t.Length, 0, "")
	if err != nil {
		return "", fmt.Errorf("downloading the delta: %w", err)
	}
	defer res.Close()
	key := &Pending{Version: version, SHA256: o.d.SHA256, Length: o.d.Length}
	count := func() *DownloadCount {
		c := s.downloadCount(key)
		c.DeltaFrom = o.d.From
		return c
	}
	count().Requests++
	path := a.deltaFile()
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	_, err = v.Install(ctx, &counter{r: res, add: func(n int) { count().Bytes += int64(n) }}, f, payload.Checkpoints{})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("downloading the delta: %w", err)
	}
	count().Complete = true
	return path, nil
}

// deltaFile is where a downloaded delta waits to be applied.
func (a *Agent) deltaFile() string { return filepath.Join(a.cfg.DataDir, "delta.tmp") }

// dropDeltaFile removes a delta a power loss left behind.
func (a *Agent) dropDeltaFile() {
	if err := os.Remove(a.deltaFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("removing a leftover delta", "err", err)
	}
}
