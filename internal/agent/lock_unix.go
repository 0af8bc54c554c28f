//go:build unix

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockState takes the exclusive lock that serializes every
// read-modify-write of state.json: an agent's whole check cycle, and each
// owner command. Without it an owner's consent written while a cycle runs
// would be overwritten when the cycle saves. onBusy, if not nil, is called
// once when the lock is held by someone else; lockState then waits for it
// until ctx ends. The lock is a flock(2) on DataDir/state.lock, released by
// unlock or by the process's death.
func lockState(ctx context.Context, dataDir string, onBusy func()) (unlock func(), err error) {
	if _, err := os.Stat(statePath(dataDir)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotProvisioned
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "state.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: state lock: %w", err)
	}
	fd := int(f.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(fd, syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("agent: state lock: %w", err)
		}
		if onBusy != nil {
			onBusy()
			onBusy = nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("agent: waiting for the state lock: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
