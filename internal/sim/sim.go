// Package sim simulates devices for the demo and the end-to-end tests: each
// device is a directory with file-backed A/B slots and a U-Boot-like
// environment, and runs the real agent code. A reboot is simulated by
// running the bootloader logic (fileslot.Boot) and starting a new Agent,
// exactly as a real device would start a new process.
package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/clock"
)

// Spec describes a simulated device at the factory.
type Spec struct {
	Name     string
	Server   string
	Product  string
	Hardware string
	// ReleaseRoot and FleetRoot are the trusted root.json documents.
	ReleaseRoot, FleetRoot []byte
	// Factory is the image in slot a, running Version with SecurityVersion.
	Factory []byte
	// FactoryReader, when set, is read instead of Factory.
	FactoryReader   io.Reader
	Version         string
	SecurityVersion uint64
	// BootLimit for the trial (default 3).
	BootLimit int
	// RebootCommand goes into agent.json for runs of the uptrust-agent
	// binary on this device (default: the agent's default).
	RebootCommand []string
	// Mode is the agent's mode: agent.ModeAnonymous (the default) or
	// agent.ModeManaged, which enrols with EnrollmentToken and signs its
	// requests with the key in KeyFile (relative to the device's
	// directory; the agent's default, in its data directory, when empty;
	// created at the first start).
	Mode            string
	EnrollmentToken string
	KeyFile         string
}

// Device is one simulated device.
type Device struct {
	Name   string
	Dir    string
	Config *agent.Config
	// Health is the device's health check after booting a new release;
	// nil means healthy.
	Health func(ctx context.Context) error
	// PowerLoss is passed to the agent (see agent.Options).
	PowerLoss func(point string) error
	// Step is passed to the agent (see agent.Options).
	Step func(agent.Transition)
	// Fault is passed to the file slot backend (see fileslot.Backend).
	Fault func(op string, at fileslot.FaultPoint) error
	// HTTP overrides the agent's fetch configuration.
	HTTP   *fetch.Config
	Clock  clock.Clock
	Logger *slog.Logger
	// Reboots counts simulated restarts.
	Reboots int
}

// New provisions a device in dir: slots, roots, agent.json and state.
func New(dir string, s Spec) (*Device, error) {
	if s.BootLimit == 0 {
		s.BootLimit = 3
	}
	slots := filepath.Join(dir, "slots")
	factory := s.FactoryReader
	if factory == nil {
		factory = bytesReader(s.Factory)
	}
	if err := fileslot.Create(slots, factory, s.BootLimit); err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{"release-root.json": s.ReleaseRoot, "fleet-root.json": s.FleetRoot} {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	cfg := agent.Config{Server: s.Server, Product: s.Product, Hardware: s.Hardware, DataDir: "data",
		Slot: agent.SlotConfig{Backend: "file", Dir: "slots"}, ReleaseRoot: "release-root.json", FleetRoot: "fleet-root.json", RebootCommand: s.RebootCommand,
		Mode: s.Mode, EnrollmentToken: s.EnrollmentToken, KeyFile: s.KeyFile}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(dir, "agent.json")
	if err := atomicfile.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	loaded, err := agent.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	if err := agent.Provision(loaded.DataDir, s.Version, s.SecurityVersion); err != nil {
		return nil, err
	}
	return &Device{Name: s.Name, Dir: dir, Config: loaded}, nil
}

// ConfigPath is the device's agent.json, for runs of the uptrust-agent
// command line (internal/agent/cli) on this device.
func (d *Device) ConfigPath() string { return filepath.Join(d.Dir, "agent.json") }

// SetConfig changes the device's agent configuration, as its integrator
// would by editing agent.json: change edits the loaded config, which is
// validated, written back and used by every agent started afterwards.
func (d *Device) SetConfig(change func(*agent.Config)) error {
	c := *d.Config
	change(&c)
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := atomicfile.WriteFile(d.ConfigPath(), b, 0o644); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	loaded, err := agent.LoadConfig(d.ConfigPath())
	if err != nil {
		return err
	}
	d.Config = loaded
	return nil
}

func bytesReader(b []byte) io.Reader { return &byteReader{b: b} }

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// SlotsDir is the file slot directory.
func (d *Device) SlotsDir() string { return filepath.Join(d.Dir, "slots") }

// Backend returns the device's slot backend with the fault hook installed.
func (d *Device) Backend() *fileslot.Backend {
	b := fileslot.New(d.SlotsDir())
	b.Fault = d.Fault
	return b
}

// Agent starts a new agent process on the device.
func (d *Device) Agent() (*agent.Agent, error) {
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return agent.New(d.Config, agent.Options{
		Slots:     d.Backend(),
		Clock:     d.Clock,
		Logger:    logger,
		Reboot:    func(context.Context) error { return agent.ErrRebooting },
		Health:    d.health,
		PowerLoss: d.PowerLoss,
		HTTP:      d.HTTP,
		Step:      d.Step,
	})
}

func (d *Device) health(ctx context.Context) error {
	if d.Health == nil {
		return nil
	}
	return d.Health(ctx)
}

// Boot power-cycles the device: the bootloader logic runs and the system
// comes up on the chosen slot.
func (d *Device) Boot() (slot.Name, error) {
	d.Reboots++
	return fileslot.Boot(d.SlotsDir())
}

// maxReboots bounds one Cycle.
const maxReboots = 8

// Cycle runs one check; whenever the agent asks for a reboot, the device
// boots and a new agent resumes, until the agent settles. Then the queued
// reports are sent, as `uptrust-agent run` sends them at a random moment
// before the next check.
func (d *Device) Cycle(ctx context.Context) (*agent.Check, error) {
	for i := 0; ; i++ {
		a, err := d.Agent()
		if err != nil {
			return nil, err
		}
		chk, err := a.Check(ctx)
		if !errors.Is(err, agent.ErrRebooting) {
			// The reports this cycle queued, sent as the running agent
			// would send them later, between two checks.
			a.FlushReports(ctx)
			return chk, err
		}
		if i == maxReboots {
			return chk, fmt.Errorf("sim: %s: still rebooting after %d restarts", d.Name, maxReboots)
		}
		if _, err := d.Boot(); err != nil {
			return nil, err
		}
	}
}

// Status reads the agent's status.
func (d *Device) Status(ctx context.Context) (*agent.Status, error) {
	now := clock.Clock(clock.Real{})
	if d.Clock != nil {
		now = d.Clock
	}
	return agent.ReadStatus(ctx, d.Config, d.Backend(), now.Now())
}

// BootedImage returns the booted slot and the SHA-256 of the first n bytes
// of its image (n is the image length the caller expects).
func (d *Device) BootedImage(ctx context.Context, n int64) (slot.Name, string, error) {
	st, err := d.Backend().State(ctx)
	if err != nil {
		return "", "", err
	}
	f, err := os.Open(filepath.Join(d.SlotsDir(), fileslot.ImageFile(st.Booted)))
	if err != nil {
		return st.Booted, "", fmt.Errorf("sim: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		return st.Booted, "", fmt.Errorf("sim: booted slot %s shorter than %d bytes: %w", st.Booted, n, err)
	}
	return st.Booted, hex.EncodeToString(h.Sum(nil)), nil
}
