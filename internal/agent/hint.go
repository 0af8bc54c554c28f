package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/slot"
)

// The write hint lets a download survive the death of the agent's process
// (SIGKILL, a crash, the OOM killer, a watchdog restart) with nothing
// downloaded twice, where checkpoints alone would lose up to the power-loss
// budget (Config.PowerLossBudget).
//
// After every write into the slot, the agent records in data/download.hint
// how far the slot is written, with the boot it happened in, and does not
// sync either: that costs one small pwrite per buffer. Within the same boot
// the kernel's page cache still holds (or has written) everything the dead
// process wrote, so the next agent reads the slot from its saved checkpoint
// up to the hinted offset, hashes those bytes (payload.Resumable.Absorb)
// and downloads only the rest. After a reboot or a power loss the boot ID
// differs and the hint is ignored: unsynced bytes may be lost.
//
// The hint is never trusted for arming: like every resumed image, the slot
// is read back and verified against the signed hashes before it is armed,
// and a mismatch downloads the payload again from byte 0.
const hintFile = "download.hint"

// hintSize is the fixed size of the hint record, rewritten in place.
const hintSize = 256

type hint struct {
	Boot   string    `json:"boot"`
	SHA256 string    `json:"sha256"`
	Slot   slot.Name `json:"slot"`
	Offset int64     `json:"offset"`
}

func (a *Agent) hintPath() string { return filepath.Join(a.cfg.DataDir, hintFile) }

// kernelBootID is where Linux keeps an ID that changes at every boot.
var kernelBootID = "/proc/sys/kernel/random/boot_id"

// bootID identifies the running boot: the kernel's boot ID, plus the
// simulated power cycles of a backend that counts them (slot.BootCounter).
// It returns "" when it cannot tell, which turns the hint off.
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

// hintWriter records the offset reached after every successful write.
// Failing to record only turns the hint off.
type hintWriter struct {
	payload.Writer
	f   *os.File // nil: off
	h   hint
	rec [hintSize]byte
}

// openHint returns w wrapped to record hints for p's download from off, or
// w itself when the boot cannot be identified or the file cannot be opened.
// The caller closes the result's file with closeHint.
func (a *Agent) openHint(ctx context.Context, w payload.Writer, p *Pending, off int64) *hintWriter {
	hw := &hintWriter{Writer: w, h: hint{Boot: a.bootID(ctx), SHA256: p.SHA256, Slot: p.Slot, Offset: off}}
	if hw.h.Boot == "" {
		return hw
	}
	f, err := os.OpenFile(a.hintPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		a.log.Warn("cannot record download hints; a restarted agent resumes from the last checkpoint", "err", err)
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

// dropHint removes the hint: the download it describes is over, or starts
// over.
func (a *Agent) dropHint() {
	if err := os.Remove(a.hintPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("removing the download hint", "err", err)
	}
}

// absorbHint moves r past the bytes that an agent process of this boot
// wrote into p's slot after r's offset and did not live to save, reading
// them back from the slot. It does nothing when there is no usable hint.
func (a *Agent) absorbHint(ctx context.Context, p *Pending, r *payload.Resumable) {
	b, err := os.ReadFile(a.hintPath())
	if err != nil {
		return
	}
	var h hint
	if err := json.Unmarshal(bytes.TrimSpace(b), &h); err != nil {
		return
	}
	if h.Boot == "" || h.SHA256 != p.SHA256 || h.Slot != p.Slot || h.Offset <= r.Offset() || h.Offset > p.Length {
		return
	}
	if boot := a.bootID(ctx); h.Boot != boot {
		a.log.Info("the device restarted since the last slot write; resuming from the checkpoint", "offset", r.Offset())
		return
	}
	from := r.Offset()
	if err := a.absorb(ctx, p.Slot, r, h.Offset); err != nil {
		a.log.Warn("cannot reuse the bytes written after the checkpoint; downloading them again", "offset", from, "hint", h.Offset, "err", err)
		return
	}
	a.log.Info("reusing bytes written after the checkpoint by an agent that stopped", "checkpoint", from, "offset", r.Offset())
}

// absorb reads slot n from r's offset to end into r.
func (a *Agent) absorb(ctx context.Context, n slot.Name, r *payload.Resumable, end int64) error {
	rd, err := a.slots.OpenReader(ctx, n)
	if err != nil {
		return err
	}
	defer rd.Close()
	sk, ok := rd.(io.Seeker)
	if !ok {
		return fmt.Errorf("slot %s cannot seek", n)
	}
	if _, err := sk.Seek(r.Offset(), io.SeekStart); err != nil {
		return err
	}
	return r.Absorb(ctx, rd, end-r.Offset())
}
