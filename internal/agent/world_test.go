package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/server"
)

// testWorld is a project and a running server on loopback, for unit tests
// of the agent's check cycle (decide, install) against real repositories.
// The tests under e2e/ drive whole devices through hostile proxies; these
// look at the agent's own steps.
type testWorld struct {
	t      *testing.T
	p      *project.Project
	srv    *server.Server
	url    string
	images map[string][]byte
}

// newTestWorld publishes the factory release 1.0.0 of the thermostat.
func newTestWorld(t *testing.T) *testWorld {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	p, err := project.Init(ctx, filepath.Join(dir, "project"), project.InitOptions{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	until := time.Now().AddDate(3, 0, 0).Format(time.DateOnly)
	if err := p.AddProduct(ctx, project.ProductSpec{Name: "thermostat", Hardware: []string{"rev-a"}, SupportUntil: until}); err != nil {
		t.Fatal(err)
	}
	w := &testWorld{t: t, p: p, images: map[string][]byte{}}
	w.publish(project.ReleaseSpec{Version: "1.0.0", Kind: release.KindFeature, SecurityVersion: 1})
	srv, err := server.New(server.Config{Source: p, Reports: p, Resigner: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	w.reload()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Run(sctx, ln, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	w.url = "http://" + ln.Addr().String()
	return w
}

// testImage is the deterministic image of a version: 768 KiB, half of it
// shared by every version so that deltas are small.
func testImage(version string) []byte {
	r := rand.New(rand.NewPCG(uint64(len(version)), uint64(version[len(version)-1])))
	b := make([]byte, 768<<10)
	for i := range b {
		if i < len(b)/2 {
			b[i] = byte(i * 7)
		} else {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

// publish adds the release s describes (product and payload filled in) and
// reloads the server.
func (w *testWorld) publish(s project.ReleaseSpec) {
	w.t.Helper()
	img := testImage(s.Version)
	w.images[s.Version] = img
	s.Product, s.Payload = "thermostat", bytes.NewReader(img)
	if _, err := w.p.AddRelease(context.Background(), s); err != nil {
		w.t.Fatalf("publishing %s: %v", s.Version, err)
	}
	w.reload()
}

func (w *testWorld) rollout(version string, percent int) {
	w.t.Helper()
	if _, err := w.p.StartRollout(context.Background(), "thermostat", version, percent); err != nil {
		w.t.Fatal(err)
	}
	w.reload()
}

func (w *testWorld) reload() {
	w.t.Helper()
	if w.srv == nil {
		return
	}
	if err := w.srv.Reload(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

// testDevice is a device on file slots, provisioned with the factory
// release, whose agent (a new one per start, as after a reboot) talks to
// the world's server.
type testDevice struct {
	t       *testing.T
	cfg     *Config
	slots   string
	healthy bool
	power   func(string) error
	// change, when set, adjusts the configuration before each start.
	change func(*Config)
	// clock, when set, is the agents' clock.
	clock clock.Clock
}

func (w *testWorld) device() *testDevice {
	w.t.Helper()
	dir := w.t.TempDir()
	d := &testDevice{t: w.t, slots: filepath.Join(dir, "slots"), healthy: true}
	if err := fileslot.Create(d.slots, bytes.NewReader(w.images["1.0.0"]), 3); err != nil {
		w.t.Fatal(err)
	}
	for name, repo := range map[string]string{"release.json": "release", "fleet.json": "fleet"} {
		b, err := os.ReadFile(project.DeviceRootPath(w.p.Dir, repo))
		if err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			w.t.Fatal(err)
		}
	}
	d.cfg = &Config{Server: w.url, Product: "thermostat", Hardware: "rev-a", DataDir: filepath.Join(dir, "data"),
		ReleaseRoot: filepath.Join(dir, "release.json"), FleetRoot: filepath.Join(dir, "fleet.json"),
		Slot: SlotConfig{Backend: "file", Dir: d.slots}}
	if err := d.cfg.Validate(); err != nil {
		w.t.Fatal(err)
	}
	if err := Provision(d.cfg.DataDir, "1.0.0", 1); err != nil {
		w.t.Fatal(err)
	}
	return d
}

// agent starts an agent on the device.
func (d *testDevice) agent() *Agent {
	d.t.Helper()
	cfg := *d.cfg
	if d.change != nil {
		d.change(&cfg)
	}
	a, err := New(&cfg, Options{Slots: fileslot.New(d.slots), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		HTTP:   &fetch.Config{ConnectTimeout: time.Second, StallTimeout: 2 * time.Second, MaxAttempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		Reboot: func(context.Context) error { return ErrRebooting },
		Health: func(context.Context) error {
			if d.healthy {
				return nil
			}
			return errors.New("unhealthy")
		},
		PowerLoss: d.power, Clock: d.clock})
	if err != nil {
		d.t.Fatal(err)
	}
	return a
}

// cycle runs checks, booting the device whenever the agent reboots it,
// until a check ends without a reboot; it returns that check's result.
func (d *testDevice) cycle() (*Check, error) {
	d.t.Helper()
	for range 8 {
		chk, err := d.agent().Check(context.Background())
		if !errors.Is(err, ErrRebooting) {
			return chk, err
		}
		if _, err := fileslot.Boot(d.slots); err != nil {
			d.t.Fatal(err)
		}
	}
	d.t.Fatal("still rebooting after 8 restarts")
	return nil, nil
}

// state is the device's persisted state.
func (d *testDevice) state() *State {
	d.t.Helper()
	s, err := LoadState(d.cfg.DataDir)
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}
