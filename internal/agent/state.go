package agent

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// DownloadCount is what downloading one release's payload cost on the
// wire, for metered links.
type DownloadCount struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	// Length is the payload's signed length.
	Length int64 `json:"length"`
	// Bytes counts every payload byte received for this release, over all
	// checks, requests and restarts: bytes received twice count twice.
	// Bytes received after the last saved checkpoint before a power loss
	// are not counted (less than Config.PowerLossBudget, or what the link
	// moves in Config.PowerLossWindow, plus a buffer; for
	// a compressed payload streamed into the slot, up to the frame
	// boundary saved last).
	Bytes int64 `json:"bytes"`
	// Requests counts payload requests answered with 200 or 206, Resumed
	// those that continued from a saved offset, and Restarts the times
	// progress was thrown away (server ignored the range, bytes did not verify,
	// slot no longer matched).
	Requests int `json:"requests"`
	Resumed  int `json:"resumed,omitempty"`
	Restarts int `json:"restarts,omitempty"`
	// Complete is set once the whole payload arrived and verified.
	Complete bool `json:"complete"`
	// DeltaFrom is set when the payload counted is the release's delta
	// from that version, not its full payload.
	DeltaFrom string `json:"delta_from,omitempty"`
}

// maxDownloads bounds State.Downloads.
const maxDownloads = 8

// Failure records why a release was given up.
type Failure struct {
	Version    string       `json:"version"`
	ErrorClass report.Class `json:"error_class"`
	Reason     string       `json:"reason"`
	At         time.Time    `json:"at"`
}

// Check is the outcome of the last update check, for status.
type Check struct {
	At time.Time `json:"at"`
	// Offered is the version the decision is about: the one installed or
	// refused, else the highest offered.
	Offered string `json:"offered,omitempty"`
	// Action: "none", "installed", "rebooting", "waiting", "rejected", "error".
	Action     string       `json:"action"`
	Reason     string       `json:"reason"`
	ErrorClass report.Class `json:"error_class,omitempty"`
}

// State is state.json.
type State struct {
	FormatVersion int `json:"format_version"`
	// Seq counts the saves of the state; it orders state.json and the
	// checkpoint journal (see transfer.Journal).
	Seq   uint64 `json:"seq,omitempty"`
	Phase Phase  `json:"phase"`
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
	// ActiveHash caches the hash of the booted slot's image, for deltas:
	// set when a release is committed (its image was verified before
	// arming), else computed by reading the slot once (see activeHash).
	ActiveHash *SlotHash `json:"active_hash,omitempty"`
	// LastDelta says whether the latest install used a delta, and if not,
	// why.
	LastDelta *DeltaOutcome `json:"last_delta,omitempty"`
	// Support is the newest accepted support declaration.
	Support *release.Support `json:"support,omitempty"`
	// LastReported avoids reporting the same rejection every poll.
	LastReported string `json:"last_reported,omitempty"`

	// Fields below were added after format version 1 was first written;
	// all are optional, and a state.json without them reads as "no owner
	// choices, nothing waiting, nothing notified".

	// Provisioned is the wall-clock time of provisioning; it stands in for
	// LastRefresh until the first successful refresh.
	Provisioned *time.Time `json:"provisioned,omitempty"`
	// Recovered says what LoadState recovered from when the latest state
	// was unreadable (see stateload.go); nil when nothing was.
	Recovered *Recovery `json:"recovered,omitempty"`
	// LastRefresh is when both repositories last refreshed successfully:
	// verified, unexpired metadata (TUF rejects anything else). It is the
	// reference time of that check (see referenceTime), so it never moves
	// back when the clock does.
	LastRefresh *time.Time `json:"last_refresh,omitempty"`
	// FullRefresh is the last full check of a managed device that found
	// nothing to install, for its conditional checks (quick.go); nil when
	// the next check must be a full one.
	FullRefresh *FullRefresh `json:"full_refresh,omitempty"`
	// Offered lists the versions offered at the last successful refresh,
	// highest first.
	Offered []string `json:"offered,omitempty"`
	// Owner holds the owner's choices. Only owner commands change it.
	Owner Owner `json:"owner"`
	// Waiting lists offered releases held for the owner at the last
	// successful refresh, highest first, with what `consent` shows.
	Waiting []Waiting `json:"waiting,omitempty"`
	// SupportRefused is the latest support declaration refused for ending
	// earlier than the accepted one, while the repository still serves it.
	SupportRefused *SupportRefusal `json:"support_refused,omitempty"`
	// Notified maps the key of every event handed to the notify hook to
	// when it was queued, so each is sent once (bounded, oldest dropped).
	Notified map[string]time.Time `json:"notified,omitempty"`
	// Outbox holds events queued for the notify hook and not yet run.
	Outbox []Event `json:"outbox,omitempty"`
	// Downloads counts the payload bytes received per release, oldest
	// first (the latest maxDownloads releases).
	Downloads []DownloadCount `json:"downloads,omitempty"`
	// ClockBehind is set while the clock reads earlier than the reference
	// time's floor: from a check that found it so until a check that finds
	// the clock ahead again.
	ClockBehind *ClockBehind `json:"clock_behind,omitempty"`
	// Window is the maintenance window of the release last offered, as
	// the last successful check verified it in the fleet repository (the
	// managed device's own view); nil when that release has none. It is
	// kept while the server cannot be reached (window.go).
	Window *KeptWindow `json:"window,omitempty"`
	// OfferedSent is the version the last offered event was sent for, and
	// SkipsSent the skipped events ("version|reason") sent and still
	// current, so that neither is sent at every check (events.go).
	OfferedSent string   `json:"offered_sent,omitempty"`
	SkipsSent   []string `json:"skips_sent,omitempty"`
}

// downloadCount returns the counter of p's release, adding it (and dropping
// the oldest beyond maxDownloads) if there is none.
func (s *State) downloadCount(p *Pending) *DownloadCount {
	for i := range s.Downloads {
		if d := &s.Downloads[i]; d.Version == p.Version && d.SHA256 == p.SHA256 {
			return d
		}
	}
	s.Downloads = append(s.Downloads, DownloadCount{Version: p.Version, SHA256: p.SHA256, Length: p.Length})
	if n := len(s.Downloads); n > maxDownloads {
		s.Downloads = append([]DownloadCount(nil), s.Downloads[n-maxDownloads:]...)
	}
	return &s.Downloads[len(s.Downloads)-1]
}

// Owner is what the device's owner decided, within the maker's policy
// (release.Policy in the accepted support declaration).
type Owner struct {
	// Consents maps a version to when the owner consented to installing
	// it. A consent lifts every owner rule for that version only.
	Consents map[string]time.Time `json:"consents,omitempty"`
	// PostponedUntil: automatic installs wait until then.
	PostponedUntil *time.Time `json:"postponed_until,omitempty"`
	// PostponedSince is when the current, uninterrupted postponement
	// began; the maker's MaxPostponeDays counts from it, so renewing a
	// postponement cannot stretch it beyond the limit.
	PostponedSince *time.Time `json:"postponed_since,omitempty"`
	// AutoUpdatesOffSince is set while the owner has turned automatic
	// updates off.
	AutoUpdatesOffSince *time.Time `json:"auto_updates_off_since,omitempty"`
	// History lists the owner's decisions, oldest first (the latest
	// maxHistory).
	History []OwnerChange `json:"history,omitempty"`
}

// OwnerChange is one decision of the owner.
type OwnerChange struct {
	At time.Time `json:"at"`
	// Action: "consent", "postpone", "postpone-cancel", "auto-updates-off"
	// or "auto-updates-on".
	Action  string     `json:"action"`
	Version string     `json:"version,omitempty"`
	Until   *time.Time `json:"until,omitempty"`
}

// maxHistory bounds Owner.History.
const maxHistory = 100

// record appends c to the history, dropping the oldest beyond maxHistory.
func (o *Owner) record(c OwnerChange) {
	o.History = append(o.History, c)
	if n := len(o.History); n > maxHistory {
		o.History = append([]OwnerChange(nil), o.History[n-maxHistory:]...)
	}
}

// Waiting is an offered release that passed every check of the agent and
// is held by an owner rule (see Judge). It keeps what the owner needs to
// decide offline: notes, impact reasons, advisories.
type Waiting struct {
	Version string       `json:"version"`
	Kind    release.Kind `json:"kind"`
	// Hold is the rule that holds it: HoldAdverse, HoldKind, HoldAutoOff
	// or HoldPostponed.
	Hold string `json:"hold"`
	// Reason says in plain words why it waits and how to install it.
	Reason string `json:"reason"`
	// ImpactReasons are the manifest's adverse impacts in plain words.
	ImpactReasons []string           `json:"impact_reasons,omitempty"`
	Notes         string             `json:"notes,omitempty"`
	Advisories    []release.Advisory `json:"advisories,omitempty"`
	// SecurityOnlyOf is set on a security-only build: the feature build
	// it carries the security fixes of.
	SecurityOnlyOf string `json:"security_only_of,omitempty"`
	// Since is when the release was first found waiting.
	Since time.Time `json:"since"`
}

// SupportRefusal records a support declaration the agent refused because
// it ends earlier than the one accepted before.
type SupportRefusal struct {
	OfferedUntil  string    `json:"offered_until"`
	OfferedIssued time.Time `json:"offered_issued"`
	AcceptedUntil string    `json:"accepted_until"`
	// At is when the agent first refused it.
	At time.Time `json:"at"`
}

func statePath(dataDir string) string { return filepath.Join(dataDir, "state.json") }

// ErrNotProvisioned is returned when the data directory has no state yet.
var ErrNotProvisioned = errors.New("agent: device not provisioned (run uptrust-agent provision)")

// saveState writes state.json atomically and durably.
func saveState(dataDir string, s *State) error {
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	return writeState(dataDir, b)
}

// encodeState is the content of state.json for s, as its next save: it
// advances s.Seq.
func encodeState(s *State) ([]byte, error) {
	s.Seq++
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("agent: state: %w", err)
	}
	return append(b, '\n'), nil
}

// writeState replaces state.json with b atomically and durably. The
// state.json it replaces stays as state.prev.json (a hard link, made before
// the replacement and made durable with it), for LoadState to fall back to
// if the new one is ever unreadable.
func writeState(dataDir string, b []byte) error {
	prev := prevStatePath(dataDir)
	if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent: saving state: %w", err)
	}
	if err := os.Link(statePath(dataDir), prev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent: saving state: keeping the previous one: %w", err)
	}
	if err := atomicfile.WriteFile(statePath(dataDir), b, 0o600); err != nil {
		return fmt.Errorf("agent: saving state: %w", err)
	}
	return nil
}

// Provision creates the data directory's initial state: the factory
// version running from the booted slot, a fresh random rollout seed and the
// provisioning time (wall clock). It refuses to overwrite existing state.
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
	now := time.Now().UTC()
	s := &State{FormatVersion: 1, Phase: PhaseIdle, Version: version,
		SecurityVersion: securityVersion, MaxSecurityVersion: securityVersion, Seed: seed, Failed: map[string]Failure{},
		Provisioned: &now}
	if err := keepFloor(dataDir, s); err != nil {
		return err
	}
	return saveState(dataDir, s)
}
