package mirror

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/atomicfile"
)

// stateFormat is the version of the state file. History:
//
//	1 (2026-11): files by URL path with sha256, size and unpublished time.
const stateFormat = 1

// State is what a mirror directory holds, as far as this package wrote it:
// the state file DIR/.uptrust-mirror.json. It lists only public facts (URL
// paths, sizes and hashes of published files).
type State struct {
	Format int `json:"format"`
	// Files maps URL paths to the file the mirror holds there.
	Files map[string]FileState `json:"files"`
}

// FileState is one file of a mirror.
type FileState struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Unpublished is when the file stopped being published; zero while
	// it is published.
	Unpublished time.Time `json:"unpublished,omitzero"`
}

// merge returns the files of s and of next, next winning: the intent
// recorded before a run acts.
func (s State) merge(next State) State {
	out := State{Files: maps.Clone(s.Files)}
	if out.Files == nil {
		out.Files = map[string]FileState{}
	}
	maps.Copy(out.Files, next.Files)
	return out
}

func loadState(dir string) (State, error) {
	path := filepath.Join(dir, stateName)
	b, err := os.ReadFile(path)
	if err != nil {
		return State{}, fmt.Errorf("mirror: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("mirror: %s: %w", path, err)
	}
	if s.Format != stateFormat {
		return State{}, fmt.Errorf("mirror: %s: format %d not supported (want %d)", path, s.Format, stateFormat)
	}
	for p := range s.Files {
		if err := checkPath(p); err != nil {
			return State{}, fmt.Errorf("mirror: %s: %w", path, err)
		}
	}
	return s, nil
}

func saveState(dir string, s State) error {
	s.Format = stateFormat
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, stateName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("mirror: saving state: %w", err)
	}
	return nil
}
