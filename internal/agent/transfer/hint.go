package transfer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/uptrust/uptrust/internal/agent/payload"
)

// The write hint lets Plain survive the death of the agent's process
// (SIGKILL, a crash, the OOM killer, a watchdog restart) with nothing
// downloaded twice, where checkpoints alone would lose up to the power-loss
// budget (Downloader.LossBudget).
//
// After every write into the slot, Plain records in data/download.hint how
// far the slot is written, with the boot it happened in, and does not sync
// either: that costs one small pwrite per buffer. Within the same boot the
// kernel's page cache still holds (or has written) everything the dead
// process wrote, so the next Plain reads the slot from its saved checkpoint
// up to the hinted offset, hashes those bytes (payload.Resumable.Absorb)
// and downloads only the rest. After a reboot or a power loss the boot ID
// (Downloader.BootID) differs and the hint is ignored: unsynced bytes may
// be lost.
//
// The hint is never trusted for arming: like every resumed image, the slot
// is read back and verified against the signed hashes before Plain
// succeeds, and a mismatch downloads the payload again from byte 0.
const hintFile = "download.hint"

// hintSize is the fixed size of the hint record, rewritten in place.
const hintSize = 256

type hint struct {
	Boot   string `json:"boot"`
	SHA256 string `json:"sha256"`
	Slot   string `json:"slot"`
	Offset int64  `json:"offset"`
}

func (d *Downloader) hintPath() string { return filepath.Join(d.Dir, hintFile) }

// bootID identifies the running boot, or "" (no hint).
func (d *Downloader) bootID(ctx context.Context) string {
	if d.BootID == nil {
		return ""
	}
	return d.BootID(ctx)
}

// hintWriter records the offset reached after every successful write.
// Failing to record only turns the hint off.
type hintWriter struct {
	payload.Writer
	f   *os.File // nil: off
	h   hint
	rec [hintSize]byte
}

// openHint returns w wrapped to record hints for the job's download from
// off, recording nothing when the boot cannot be identified or the file
// cannot be opened. The caller closes the result.
func (t *run) openHint(ctx context.Context, w payload.Writer, off int64) *hintWriter {
	hw := &hintWriter{Writer: w, h: hint{Boot: t.d.bootID(ctx), SHA256: hex.EncodeToString(t.j.Target.Hashes["sha256"]), Slot: t.j.Slot.String(), Offset: off}}
	if hw.h.Boot == "" {
		return hw
	}
	f, err := os.OpenFile(t.d.hintPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.d.Log.Warn("cannot record download hints; a restarted agent resumes from the last checkpoint", "err", err)
		return hw
	}
	hw.f = f
	return hw
}

func (w *hintWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.h.Offset += int64(n)
	if n > 0 && w.f != nil {
		w.record()
	}
	return n, err
}

func (w *hintWriter) record() {
	b, err := json.Marshal(w.h)
	if err != nil || len(b) >= hintSize {
		w.close()
		return
	}
	n := copy(w.rec[:], b)
	for i := n; i < hintSize-1; i++ {
		w.rec[i] = ' '
	}
	w.rec[hintSize-1] = '\n'
	if _, err := w.f.WriteAt(w.rec[:], 0); err != nil {
		w.close()
	}
}

func (w *hintWriter) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// DropHint removes the write hint: the download it describes is over, or
// starts over.
func (d *Downloader) DropHint() { d.remove(d.hintPath(), "removing the download hint") }

// remove removes path, if it exists, logging a failure as what.
func (d *Downloader) remove(path, what string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.Log.Warn(what, "err", err)
	}
}

// absorbHint moves r past the bytes that a process of this boot wrote
// into the job's slot after r's offset and did not live to save, reading
// them back from the slot. It does nothing when there is no usable hint.
func (t *run) absorbHint(ctx context.Context) {
	d, r := t.d, t.r
	b, err := os.ReadFile(d.hintPath())
	if err != nil {
		return
	}
	var h hint
	if err := json.Unmarshal(bytes.TrimSpace(b), &h); err != nil {
		return
	}
	if h.Boot == "" || h.SHA256 != hex.EncodeToString(t.j.Target.Hashes["sha256"]) || h.Slot != t.j.Slot.String() ||
		h.Offset <= r.Offset() || h.Offset > t.j.Target.Length {
		return
	}
	if boot := d.bootID(ctx); h.Boot != boot {
		d.Log.Info("the device restarted since the last slot write; resuming from the checkpoint", "offset", r.Offset())
		return
	}
	from := r.Offset()
	if err := t.absorb(ctx, h.Offset); err != nil {
		d.Log.Warn("cannot reuse the bytes written after the checkpoint; downloading them again", "offset", from, "hint", h.Offset, "err", err)
		return
	}
	d.Log.Info("reusing bytes written after the checkpoint by an agent that stopped", "checkpoint", from, "offset", r.Offset())
}

// absorb reads the slot from r's offset to end into r.
func (t *run) absorb(ctx context.Context, end int64) error {
	rd, err := t.j.Slot.OpenReader(ctx)
	if err != nil {
		return err
	}
	defer rd.Close()
	sk, ok := rd.(io.Seeker)
	if !ok {
		return fmt.Errorf("slot %s cannot seek", t.j.Slot)
	}
	if _, err := sk.Seek(t.r.Offset(), io.SeekStart); err != nil {
		return err
	}
	return t.r.Absorb(ctx, rd, end-t.r.Offset())
}
