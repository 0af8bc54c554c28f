package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/agent/fetch"
	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/progress"
)

// ErrRebooting is returned by Check when the cycle ended by asking the
// device to restart. With a real reboot command the process is usually
// killed before it sees it; simulations boot the device and start a new
// Agent.
var ErrRebooting = errors.New("agent: device is rebooting")

// ErrPowerLoss is what a PowerLoss hook returns to cut a cycle short, as if
// power had failed at that point.
var ErrPowerLoss = errors.New("agent: simulated power loss")

// Options are the agent's collaborators. Zero fields take production
// defaults derived from the Config.
type Options struct {
	Slots  slot.Backend
	Clock  clock.Clock
	Logger *slog.Logger
	// Reboot restarts the device. Default: run Config.RebootCommand and
	// return ErrRebooting.
	Reboot func(ctx context.Context) error
	// Health checks the system after booting a new release. Default: run
	// Config.HealthCheck, if any.
	Health func(ctx context.Context) error
	// PowerLoss, when set, is called at every persisted step with the
	// step's name; a non-nil result aborts the cycle there (tests inject
	// power loss with it).
	PowerLoss func(point string) error
	// HTTP overrides the fetch client configuration (tests).
	HTTP *fetch.Config
	// Step, when set, is told of every step of the state machine once it
	// is persisted, before its power-loss point (tests check with it that
	// they walk the whole table).
	Step func(Transition)
	// BuildTime is when the agent binary was built (zero: unknown). The
	// agent never verifies metadata against an earlier time (see
	// referenceTime).
	BuildTime time.Time
	// Progress shows payload and delta downloads; nil shows nothing.
	Progress *progress.Bar
	// AgentVersion is the agent's own version, for a managed device's
	// inventory ("" leaves it out).
	AgentVersion string
}

// Agent runs update cycles for one device. It is not safe for concurrent
// use: one agent per data directory.
type Agent struct {
	cfg     *Config
	slots   slot.Backend
	http    *fetch.Client
	reports *fetch.Client // for reports only (see FlushReports)
	clock   clock.Clock
	log     *slog.Logger
	reboot  func(ctx context.Context) error
	health  func(ctx context.Context) error
	power   func(point string) error
	step    func(Transition)
	queue   *reportQueue
	// buildTime is Options.BuildTime.
	buildTime time.Time
	// bar is Options.Progress.
	bar *progress.Bar
	// devKey and devKeyID are the managed device's key, loaded at the
	// first check (loadDeviceKey); nil in anonymous mode.
	devKey       ed25519.PrivateKey
	devKeyID     string
	agentVersion string
	// eventsDown is set for the rest of a cycle once an update event
	// failed (events.go).
	eventsDown bool
	// dlHook is told of the bytes of the download in progress, for its
	// downloading events (showDownload).
	dlHook func(int64)
}

// New builds an agent. It does not touch the network.
func New(cfg *Config, o Options) (*Agent, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.Slots == nil {
		s, err := OpenSlots(cfg.Slot, o.Logger)
		if err != nil {
			return nil, err
		}
		o.Slots = s
	}
	fc := fetch.Config{CAFile: cfg.CAFile, AllowInsecureHTTP: cfg.AllowInsecureHTTP,
		StallTimeout: time.Duration(cfg.StallTimeout), MaxAttempts: cfg.MaxAttempts, RateLimit: int64(cfg.DownloadRateLimit),
		MetadataTimeout: time.Duration(cfg.MetadataTimeout), MinRate: int64(cfg.MinTransferRate), MinRateWindow: time.Duration(cfg.MinTransferWindow)}
	if o.HTTP != nil {
		fc = *o.HTTP
		fc.CAFile, fc.AllowInsecureHTTP = cfg.CAFile, cfg.AllowInsecureHTTP
		if fc.RateLimit == 0 {
			fc.RateLimit = int64(cfg.DownloadRateLimit)
		}
		if fc.MetadataTimeout == 0 {
			fc.MetadataTimeout = time.Duration(cfg.MetadataTimeout)
		}
		if fc.MinRate == 0 {
			fc.MinRate, fc.MinRateWindow = int64(cfg.MinTransferRate), time.Duration(cfg.MinTransferWindow)
		}
	}
	a := &Agent{}
	if cfg.Managed() {
		// Every request of the check client is signed with the device key
		// (managed.go); the reports client below stays anonymous.
		fc.Wrap = func(base http.RoundTripper) http.RoundTripper { return &deviceSigner{base: base, a: a} }
	}
	hc, err := fetch.New(fc)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	// Reports go on a client of their own, one connection per report, so
	// that no report shares a connection with a check's requests.
	rc := fc
	rc.OneConnectionPerRequest = true
	rc.Wrap = nil
	reports, err := fetch.New(rc)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := hc.CheckURL(cfg.Server); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	*a = Agent{cfg: cfg, slots: o.Slots, http: hc, reports: reports, clock: o.Clock, log: o.Logger,
		reboot: o.Reboot, health: o.Health, power: o.PowerLoss, step: o.Step,
		queue: &reportQueue{dir: filepath.Join(cfg.DataDir, "reports")}, buildTime: o.BuildTime, bar: o.Progress,
		agentVersion: o.AgentVersion}
	if a.reboot == nil {
		a.reboot = a.rebootCommand
	}
	if a.health == nil {
		a.health = a.healthCommand
	}
	if a.power == nil {
		a.power = func(string) error { return nil }
	}
	return a, nil
}

func (a *Agent) rebootCommand(ctx context.Context) error {
	a.log.Info("rebooting into the new slot", "command", a.cfg.RebootCommand)
	cmd := exec.CommandContext(ctx, a.cfg.RebootCommand[0], a.cfg.RebootCommand[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("agent: reboot command: %w: %s", err, out)
	}
	return ErrRebooting
}

func (a *Agent) healthCommand(ctx context.Context) error {
	if len(a.cfg.HealthCheck) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.cfg.HealthCheck[0], a.cfg.HealthCheck[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("health check %s: %w: %s", a.cfg.HealthCheck[0], err, trim(out))
	}
	return nil
}

func trim(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// Check runs one cycle: it first finishes whatever a previous run left
// (trial boot, commit, rollback), then, when idle or in the middle of a
// resumable download, checks for an update and installs it. It returns the check record also stored in state.json.
//
// The cycle holds the state lock (see lockState) throughout, so owner
// commands wait for it rather than lose their change. Events for the owner
// are queued in state with the step that caused them and handed to the
// notify hook at the end of the cycle, or before a reboot.
func (a *Agent) Check(ctx context.Context) (*Check, error) {
	unlock, err := lockState(ctx, a.cfg.DataDir, func() { a.log.Info("waiting for another agent process or an owner command to release the state") })
	if err != nil {
		return nil, err
	}
	defer unlock()
	a.eventsDown = false
	if a.cfg.Managed() {
		// The key signs the outcome events of the reports flushed below and
		// the events of a step resumed after a restart; a key that cannot be
		// loaded is the enrolment's error (managedGate).
		if err := a.loadDeviceKey(); err != nil {
			a.log.Warn("device key", "err", err)
		}
	}
	s, err := LoadState(a.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a.reportRecovery(ctx, s)
	// Reports a check queues leave later, never right after its requests
	// (see FlushReports): what earlier cycles queued goes now, before
	// this check's requests and on connections of its own.
	a.FlushReports(ctx)
	if err := a.resume(ctx, s); err != nil {
		return s.LastCheck, err
	}
	if s.Phase != PhaseIdle && s.Phase != PhaseWriting {
		return s.LastCheck, a.deliver(ctx, s)
	}
	// Notices that depend on time alone go out before the network is
	// touched, so that they reach the owner even when this check never
	// ends (a server that trickles, an agent stopped mid-check).
	a.watch(s, a.clock.Now())
	if err := a.deliver(ctx, s); err != nil {
		return s.LastCheck, err
	}
	if a.cfg.Managed() {
		if chk, stop, err := a.managedGate(ctx, s); stop {
			return chk, err
		}
	}
	chk, err := a.checkAndInstall(ctx, s)
	if a.cfg.Managed() && err == nil && chk != nil && (chk.Action == "error" || chk.Action == "rejected") {
		chk = a.recheckEnrolment(ctx, s, chk)
	}
	if errors.Is(err, ErrPowerLoss) || errors.Is(err, ErrRebooting) {
		return chk, err
	}
	a.watch(s, a.clock.Now())
	if derr := a.deliver(ctx, s); derr != nil && err == nil {
		err = derr
	}
	return chk, err
}

// Run checks at jittered intervals until ctx ends. Failures are logged and
// retried at the next interval.
func (a *Agent) Run(ctx context.Context) error {
	for {
		chk, err := a.Check(ctx)
		switch {
		case errors.Is(err, ErrRebooting):
			return err
		case err != nil && ctx.Err() == nil:
			a.log.Warn("update check failed", "err", err)
		case chk != nil:
			a.log.Info("update check", "action", chk.Action, "offered", chk.Offered, "reason", chk.Reason)
		}
		wait := jitter(time.Duration(a.cfg.PollInterval))
		if w, ok := windowWait(a.cfg.DataDir, a.clock.Now()); ok && w < wait {
			// A release waits in the slot for the maintenance window:
			// check when it opens rather than a poll interval later.
			wait = w
		}
		flush := reportDelay(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(flush):
		}
		a.FlushReports(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait - flush):
		}
	}
}
