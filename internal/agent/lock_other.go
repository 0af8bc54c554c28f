//go:build !unix

package agent

import (
	"context"
	"errors"
	"os"
)

// lockState is a no-op where flock(2) is missing: run owner commands while
// the agent is idle there.
func lockState(_ context.Context, dataDir string, _ func()) (func(), error) {
	if _, err := os.Stat(statePath(dataDir)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotProvisioned
	}
	return func() {}, nil
}
