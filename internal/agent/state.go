package agent

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/agent/slot"
	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/release"
)

// Phase is where the install state machine stands. Each phase is persisted
// before the action it names begins.
type Phase string

// Phases, in the order of an install.
const (
	// PhaseIdle: nothing in progress.
	PhaseIdle Phase = "idle"
	// PhaseWriting: the inactive slot is being written; its content is
	// not trusted. Resumed by starting over.
	PhaseWriting Phase = "writing"
	// PhaseArming: the slot was written and verified; the bootloader is
	// being armed. Resumed by arming again (idempotent).
	PhaseArming Phase = "arming"
	// PhaseRebooting: the bootloader is armed and the device restarts
	// into the new slot on trial.
	PhaseRebooting Phase = "rebooting"
	// PhaseCommitting: the new slot booted and passed the health check;
	// the bootloader is being told to keep it.
	PhaseCommitting Phase = "committing"
	// PhaseReverting: the new slot failed; the bootloader is being told to
	// go back, then the device restarts.
	PhaseReverting Phase = "reverting"
)

// Pending is the release being installed.
type Pending struct {
	Product         string    `json:"product"`
	Version         string    `json:"version"`
	SecurityVersion uint64    `json:"security_version"`
	Target          string    `json:"target"`
	Length          int64     `json:"length"`
	SHA256          string    `json:"sha256"`
	Slot            slot.Name `json:"slot"`
	// From is the slot and version that ran before; rollback returns to it.
	From        slot.Name `json:"from"`
	FromVersion string    `json:"from_version"`
	// Failure is set once the new slot has been judged bad.
	Failure *Failure `json:"failure,omitempty"`
}

// Failure records why a release was given up.
type Failure struct {
	Version    string    `json:"version"`
	ErrorClass string    `json:"error_class"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

// Check is the outcome of the last update check, for status.
type Check struct {
	At time.Time `json:"at"`
	// Offered is the version the repositories agree on, if any.
	Offered string `json:"offered,omitempty"`
	// Action: "none", "installed", "rebooting", "waiting", "rejected", "error".
	Action     string `json:"action"`
	Reason     string `json:"reason"`
	ErrorClass string `json:"error_class,omitempty"`
}

// State is state.json.
type State struct {
	FormatVersion int   `json:"format_version"`
	Phase         Phase `json:"phase"`
	// Version and SecurityVersion of the committed release in the booted slot.
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
	// MaxSecurityVersion is the highest security version ever committed.
	// It never decreases.
	MaxSecurityVersion uint64   `json:"max_security_version"`
	Pending            *Pending `json:"pending,omitempty"`
	// Failed lists releases given up on, by version; they are not retried.
	Failed map[string]Failure `json:"failed,omitempty"`
	// Seed is the device's private rollout seed. It never leaves the device.
	Seed []byte `json:"seed"`
	// LastCheck is the result of the latest check cycle.
	LastCheck *Check `json:"last_check,omitempty"`
	// Support is the newest accepted support declaration.
	Support *release.Support `json:"support,omitempty"`
	// LastReported avoids reporting the same rejection every poll.
	LastReported string `json:"last_reported,omitempty"`
}

func statePath(dataDir string) string { return filepath.Join(dataDir, "state.json") }

// ErrNotProvisioned is returned when the data directory has no state yet.
var ErrNotProvisioned = errors.New("agent: device not provisioned (run uptrust-agent provision)")

// LoadState reads state.json.
func LoadState(dataDir string) (*State, error) {
	b, err := os.ReadFile(statePath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotProvisioned
	}
	if err != nil {
		return nil, fmt.Errorf("agent: state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("agent: state %s is corrupt: %w", statePath(dataDir), err)
	}
	if s.FormatVersion != 1 {
		return nil, fmt.Errorf("agent: state format %d not supported", s.FormatVersion)
	}
	if s.Failed == nil {
		s.Failed = map[string]Failure{}
	}
	return &s, nil
}

// saveState writes state.json atomically and durably.
func saveState(dataDir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	if err := atomicfile.WriteFile(statePath(dataDir), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("agent: saving state: %w", err)
	}
	return nil
}

// Provision creates the data directory's initial state: the factory
// version running from the booted slot and a fresh random rollout seed. It
// refuses to overwrite existing state.
func Provision(dataDir, version string, securityVersion uint64) error {
	if _, err := os.Stat(statePath(dataDir)); err == nil {
		return fmt.Errorf("agent: %s is provisioned already", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return fmt.Errorf("agent: seed: %w", err)
	}
	return saveState(dataDir, &State{FormatVersion: 1, Phase: PhaseIdle, Version: version,
		SecurityVersion: securityVersion, MaxSecurityVersion: securityVersion, Seed: seed, Failed: map[string]Failure{}})
}
