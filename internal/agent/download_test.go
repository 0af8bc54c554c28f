package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/payload"
	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/units"
)

func TestConfigDownloadRateLimit(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, with(baseConfig(), "download_rate_limit", "512KiB")))
	if err != nil {
		t.Fatal(err)
	}
	if c.DownloadRateLimit != 512<<10 {
		t.Fatalf("download_rate_limit = %d", c.DownloadRateLimit)
	}
	if _, err := LoadConfig(writeConfig(t, with(baseConfig(), "download_rate_limit", "512"))); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Fatalf("512 bytes/s: err = %v, want a minimum error", err)
	}
	c = &Config{Server: "https://u.example", Product: "p", Hardware: "h", DataDir: "d", ReleaseRoot: "r", FleetRoot: "f",
		Slot: SlotConfig{Backend: "file", Dir: "s"}, DownloadRateLimit: -1}
	if err := c.Validate(); err == nil {
		t.Fatal("a negative rate limit validated")
	}
}

func TestConfigPowerLossBudget(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, baseConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if c.PowerLossBudget != DefaultPowerLossBudget {
		t.Fatalf("default power_loss_budget = %v, want %v", c.PowerLossBudget, units.ByteSize(DefaultPowerLossBudget))
	}
	for in, want := range map[any]units.ByteSize{"4MiB": 4 << 20, "768KiB": 768 << 10, 1 << 20: 1 << 20} {
		c, err := LoadConfig(writeConfig(t, with(baseConfig(), "power_loss_budget", in)))
		if err != nil || c.PowerLossBudget != want || c.lossBudget() != int64(want) {
			t.Fatalf("power_loss_budget %v: %v, %v; want %v", in, c, err, want)
		}
	}
	for in, msg := range map[any]string{"100KiB": "below the checkpoint interval", "lots": "want a number of bytes", -5: "out of range"} {
		if _, err := LoadConfig(writeConfig(t, with(baseConfig(), "power_loss_budget", in))); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("power_loss_budget %v: err = %v, want %q", in, err, msg)
		}
	}
	if c := (&Config{}); c.lossBudget() != DefaultPowerLossBudget {
		t.Fatalf("an unvalidated config's budget is %d, want the default", c.lossBudget())
	}
}

// power_loss_window: 250ms when absent (so existing configs get it), "0s"
// turns it off (the budget alone), bad values are refused naming the field.
func TestConfigPowerLossWindow(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, baseConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if c.PowerLossWindow == nil || time.Duration(*c.PowerLossWindow) != DefaultPowerLossWindow || c.lossWindow() != DefaultPowerLossWindow {
		t.Fatalf("default power_loss_window = %v, want %v", c.PowerLossWindow, DefaultPowerLossWindow)
	}
	for in, want := range map[string]time.Duration{"0s": 0, "100ms": 100 * time.Millisecond, "2s": 2 * time.Second} {
		c, err := LoadConfig(writeConfig(t, with(baseConfig(), "power_loss_window", in)))
		if err != nil || c.lossWindow() != want {
			t.Fatalf("power_loss_window %v: %v, %v; want %v", in, c, err, want)
		}
	}
	for in, msg := range map[string]string{"-1s": `power_loss_window: "-1s" is negative`, "1m": "power_loss_window 1m0s is outside 0s..10s",
		"soon": `power_loss_window: duration "soon"`} {
		if _, err := LoadConfig(writeConfig(t, with(baseConfig(), "power_loss_window", in))); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("power_loss_window %v: err = %v, want %q", in, err, msg)
		}
	}
	if c := (&Config{}); c.lossWindow() != DefaultPowerLossWindow {
		t.Fatalf("an unvalidated config's window is %v, want the default", c.lossWindow())
	}
}

func TestDownloadCountBounded(t *testing.T) {
	s := &State{}
	for i := range maxDownloads + 3 {
		p := &Pending{Version: fmt.Sprintf("1.%d.0", i), SHA256: "aa", Length: 10}
		s.downloadCount(p).Bytes += int64(i)
		s.downloadCount(p).Bytes++ // the same counter again
	}
	if len(s.Downloads) != maxDownloads || s.Downloads[0].Version != "1.3.0" || s.Downloads[maxDownloads-1].Bytes != maxDownloads+3 {
		t.Fatalf("downloads %+v", s.Downloads)
	}
	// Another payload of the same version counts apart.
	s.downloadCount(&Pending{Version: "1.10.0", SHA256: "bb"}).Bytes = 7
	if c := s.downloadCount(&Pending{Version: "1.10.0", SHA256: "aa"}); c.Bytes != 11 {
		t.Fatalf("counter of 1.10.0/aa = %+v", c)
	}
}

// TestStateKeepsDownloadProgress: the saved progress survives state.json
// with its hash states, and restores into a Resumable at the same offset.
// An "etag" that an older agent saved with it is read and ignored, and
// not written again (the progress used to carry the server's ETag).
func TestStateKeepsDownloadProgress(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg, _ := statusFixture(t, now, "")
	data := bytes.Repeat([]byte("firmware"), 1000)
	r, err := payload.NewResumable(int64(len(data)), map[string][]byte{"sha256": make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	var saved payload.Progress
	src := &dropAfter{data: data, n: 3000}
	_, err = r.Install(context.Background(), src, nopWriter{}, payload.Checkpoints{Save: func(p payload.Progress) (func() error, error) {
		return func() error { saved = p; return nil }, nil
	}})
	if err == nil || saved.Offset != 3000 {
		t.Fatalf("install: %v, saved at %d", err, saved.Offset)
	}
	s, _ := LoadState(cfg.DataDir)
	s.Phase = PhaseWriting
	s.Pending = &Pending{Version: "1.1.0", Length: int64(len(data)), Progress: &transfer.Progress{Route: transfer.RouteSlot, Progress: saved}}
	if err := saveState(cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(statePath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	old := bytes.Replace(b, []byte(`"route":`), []byte(`"etag": "\"device-1\"", "route":`), 1)
	if bytes.Equal(old, b) {
		t.Fatalf("no progress route in the saved state:\n%s", b)
	}
	if err := os.WriteFile(statePath(cfg.DataDir), old, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := LoadState(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	d := back.Pending.Progress
	r2, _ := payload.NewResumable(int64(len(data)), map[string][]byte{"sha256": make([]byte, 32)})
	if err := r2.Restore(d.Progress); err != nil || d.Route != transfer.RouteSlot || r2.Offset() != 3000 {
		t.Fatalf("restored %+v: %v", d, err)
	}
	if err := saveState(cfg.DataDir, back); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(statePath(cfg.DataDir)); err != nil || bytes.Contains(b, []byte("etag")) || bytes.Contains(b, []byte("device-1")) {
		t.Fatalf("saved again (%v):\n%s", err, b)
	}
}

type dropAfter struct {
	data []byte
	n    int
}

func (d *dropAfter) Read(p []byte) (int, error) {
	if d.n == 0 {
		return 0, fmt.Errorf("connection reset")
	}
	k := copy(p[:min(len(p), d.n)], d.data)
	d.data, d.n = d.data[k:], d.n-k
	return k, nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriter) Sync() error                 { return nil }

func TestStatusShowsDownload(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg, slots := statusFixture(t, now, "")
	cfg.DownloadRateLimit = 2 << 20
	s, _ := LoadState(cfg.DataDir)
	s.Phase = PhaseWriting
	s.Pending = &Pending{Version: "1.1.0", SHA256: "aa", Length: 512 << 20,
		Progress: &transfer.Progress{Route: transfer.RouteSlot, Progress: payload.Progress{Offset: 256 << 20}}}
	*s.downloadCount(&Pending{Version: "1.0.9", SHA256: "cc"}) = DownloadCount{Version: "1.0.9", SHA256: "cc", Length: 100, Bytes: 100, Requests: 1, Complete: true}
	*s.downloadCount(s.Pending) = DownloadCount{Version: "1.1.0", SHA256: "aa", Length: 512 << 20, Bytes: 300 << 20, Requests: 3, Resumed: 1, Restarts: 1}
	if err := saveState(cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(context.Background(), cfg, slots, now)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	st.WriteText(&text)
	want := "download:         1.1.0, payload 536870912 bytes (512.0 MiB): 314572800 bytes (300.0 MiB) received in 3 requests " +
		"(1 resumed, 1 restarted from zero); 268435456 bytes (256.0 MiB) saved, resumes from there; limit 2MiB/s\n"
	if !strings.Contains(text.String(), want) {
		t.Fatalf("status text:\n%s\nwant the line\n%s", text.String(), want)
	}
	b, _ := json.Marshal(st)
	for _, field := range []string{`"download":{"version":"1.1.0"`, `"download_saved":268435456`, `"download_rate_limit":"2MiB"`} {
		if !bytes.Contains(b, []byte(field)) {
			t.Errorf("status JSON lacks %s: %s", field, b)
		}
	}

	// Installed and idle: the last release downloaded is shown.
	s.Phase, s.Pending = PhaseIdle, nil
	s.Downloads[1].Complete = true
	if err := saveState(cfg.DataDir, s); err != nil {
		t.Fatal(err)
	}
	st, _ = ReadStatus(context.Background(), cfg, slots, now)
	text.Reset()
	st.WriteText(&text)
	if !strings.Contains(text.String(), "received in 3 requests (1 resumed, 1 restarted from zero); complete") {
		t.Fatalf("status text after the install:\n%s", text.String())
	}
}
