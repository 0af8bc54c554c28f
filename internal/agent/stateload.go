package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/agent/transfer"
	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/report"
)

// Reading the state, whatever happened to the files.
//
// The state lives in state.json; state.prev.json is the one it replaced
// (writeState), and state.journal holds download checkpoints newer than
// state.json (transfer.Journal). floor.json keeps the anti-rollback floor
// apart from all of them: the committed release and the highest security
// version ever committed, written at provisioning and at every commit,
// and only ever raised.
//
// LoadState takes state.json, or a newer journal record. When one of them
// is unreadable (empty, garbage, cut short, of a format this agent does not
// know, or a journal record whose checksum holds but whose content does not
// decode) it falls back to the newest record that decodes: a journal
// record, state.prev.json, or, when nothing decodes, a fresh state rebuilt
// from floor.json (a new rollout seed, the owner's choices lost). Whatever
// it takes, the anti-rollback floor is never below floor.json's, and the
// state says what was recovered (State.Recovered) until a check reported it.

func prevStatePath(dataDir string) string { return filepath.Join(dataDir, "state.prev.json") }
func floorPath(dataDir string) string     { return filepath.Join(dataDir, "floor.json") }

// Recovery says what LoadState recovered from.
type Recovery struct {
	At time.Time `json:"at"`
	// What says in plain words which file was unreadable and what the
	// state was taken from.
	What string `json:"what"`
	// Reported is set once a report said so.
	Reported bool `json:"reported,omitempty"`
}

// floor is floor.json.
type floor struct {
	Version            string `json:"version"`
	SecurityVersion    uint64 `json:"security_version"`
	MaxSecurityVersion uint64 `json:"max_security_version"`
	// Roots maps each repository to the highest root version this device
	// trusted (see checkRootFloor).
	Roots map[string]int64 `json:"roots,omitempty"`
}

// keepFloor records s's committed release and anti-rollback floor in
// floor.json, never lowering the floor already recorded.
func keepFloor(dataDir string, s *State) error {
	f := floor{Version: s.Version, SecurityVersion: s.SecurityVersion, MaxSecurityVersion: s.MaxSecurityVersion}
	if old, err := readFloor(dataDir); err == nil && old != nil {
		f.MaxSecurityVersion = max(f.MaxSecurityVersion, old.MaxSecurityVersion)
		f.Roots = old.Roots
	}
	return writeFloor(dataDir, &f)
}

// writeFloor replaces floor.json with f.
func writeFloor(dataDir string, f *floor) error {
	b, _ := json.Marshal(f)
	if err := atomicfile.WriteFile(floorPath(dataDir), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("agent: saving the anti-rollback floor: %w", err)
	}
	return nil
}

// readFloor reads floor.json; nil when there is none.
func readFloor(dataDir string) (*floor, error) {
	b, err := os.ReadFile(floorPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: anti-rollback floor: %w", err)
	}
	var f floor
	if err := json.Unmarshal(b, &f); err != nil || f.Version == "" {
		return nil, fmt.Errorf("agent: anti-rollback floor %s is unreadable: %v", floorPath(dataDir), err)
	}
	return &f, nil
}

// LoadState reads the state of the data directory (see above).
func LoadState(dataDir string) (*State, error) {
	s, problems, err := loadLatest(dataDir)
	if err != nil {
		return nil, err
	}
	f, ferr := readFloor(dataDir)
	if ferr != nil {
		problems = append(problems, ferr.Error())
	}
	if s == nil {
		if f == nil {
			return nil, fmt.Errorf("agent: the state is unreadable and no anti-rollback floor was kept (%s); re-provision the device",
				strings.Join(problems, "; "))
		}
		seed := make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("agent: seed: %w", err)
		}
		s = &State{FormatVersion: 1, Phase: PhaseIdle, Version: f.Version, SecurityVersion: f.SecurityVersion,
			MaxSecurityVersion: f.MaxSecurityVersion, Seed: seed, Failed: map[string]Failure{},
			Owner: Owner{Consents: map[string]time.Time{}}, Notified: map[string]time.Time{}}
		problems = append(problems, fmt.Sprintf("rebuilt the state from %s: running %s, anti-rollback floor %d kept; a new rollout seed, the owner's choices and the failed-release list were lost",
			floorPath(dataDir), f.Version, f.MaxSecurityVersion))
	}
	if f != nil && f.MaxSecurityVersion > s.MaxSecurityVersion {
		problems = append(problems, fmt.Sprintf("raised the anti-rollback floor from %d to %d (floor.json)", s.MaxSecurityVersion, f.MaxSecurityVersion))
		s.MaxSecurityVersion = f.MaxSecurityVersion
	}
	if f == nil && ferr == nil {
		// A data directory from before floor.json: keep the floor now.
		if err := keepFloor(dataDir, s); err != nil {
			return nil, err
		}
	}
	if len(problems) > 0 {
		s.Recovered = &Recovery{At: time.Now().UTC(), What: strings.Join(problems, "; ")}
	}
	return s, nil
}

// loadLatest returns the newest state that decodes: state.json or a newer
// journal record, else the newest of the journal's records and
// state.prev.json. problems says what was unreadable; s is nil when nothing
// decodes. It returns ErrNotProvisioned when there is no state at all.
func loadLatest(dataDir string) (s *State, problems []string, err error) {
	recs, err := transfer.JournalRecords(dataDir)
	if err != nil {
		return nil, nil, err
	}
	cur, err := readStateFile(statePath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		if _, perr := os.Stat(prevStatePath(dataDir)); errors.Is(perr, os.ErrNotExist) && len(recs) == 0 {
			return nil, nil, ErrNotProvisioned
		}
		err = fmt.Errorf("agent: %s is missing", statePath(dataDir))
	}
	if err != nil {
		problems = append(problems, err.Error())
	}
	// A journal record newer than the state taken so far is the latest
	// state (a download checkpoint); one that does not decode is passed
	// over.
	var best *State
	if cur != nil {
		best = cur
	}
	for _, r := range recs {
		if best != nil && r.Seq <= best.Seq {
			continue
		}
		js, err := decodeState(r.State, transfer.JournalPath(dataDir))
		if err == nil && js.Seq != r.Seq {
			err = fmt.Errorf("agent: journal record %d holds the state of save %d", r.Seq, js.Seq)
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		best = js
		break
	}
	if cur == nil {
		prev, err := readStateFile(prevStatePath(dataDir))
		switch {
		case err == nil && (best == nil || prev.Seq > best.Seq):
			best = prev
		case err != nil && !errors.Is(err, os.ErrNotExist):
			problems = append(problems, err.Error())
		}
	}
	if best != nil && len(problems) > 0 {
		problems = append(problems, fmt.Sprintf("took the state of save %d", best.Seq))
	}
	return best, problems, nil
}

// reportRecovery queues, once, the report that the state had to be
// recovered (class state-recovered); the flag is saved with the cycle's
// next save.
func (a *Agent) reportRecovery(ctx context.Context, s *State) {
	r := s.Recovered
	if r == nil || r.Reported {
		return
	}
	a.log.Warn("the agent's state was recovered", "what", r.What)
	a.enqueue(ctx, a.cfg.Product, s.Version, report.OutcomeFailed, report.ClassStateRecovered)
	r.Reported = true
}

// readStateFile reads and decodes one state file.
func readStateFile(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("agent: state: %w", err)
	}
	return decodeState(b, path)
}

// decodeState parses an encoded state read from path.
func decodeState(b []byte, path string) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("agent: state %s is corrupt: %w", path, err)
	}
	if s.FormatVersion != 1 {
		return nil, fmt.Errorf("agent: state %s: format %d not supported", path, s.FormatVersion)
	}
	if s.Failed == nil {
		s.Failed = map[string]Failure{}
	}
	if s.Owner.Consents == nil {
		s.Owner.Consents = map[string]time.Time{}
	}
	if s.Notified == nil {
		s.Notified = map[string]time.Time{}
	}
	return &s, nil
}
