package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Owner commands. Each one changes state.json under the state lock, so a
// running agent cycle neither loses nor overwrites the change; it applies
// from the next check on. None touches the network.

// ErrNotWaiting is returned by Consent for a version that does not wait
// for the owner.
var ErrNotWaiting = errors.New("it does not wait for consent")

// WaitingRelease returns what the last check recorded about a release
// held for the owner, for `uptrust-agent consent` to show before it asks.
func WaitingRelease(dataDir, version string) (*Waiting, error) {
	s, err := LoadState(dataDir)
	if err != nil {
		return nil, err
	}
	return findWaiting(s, version)
}

func findWaiting(s *State, version string) (*Waiting, error) {
	for i := range s.Waiting {
		if s.Waiting[i].Version == version {
			return &s.Waiting[i], nil
		}
	}
	if len(s.Waiting) == 0 {
		return nil, fmt.Errorf("agent: %s: %w: no release waits (as of the last successful check; uptrust-agent check looks again)",
			version, ErrNotWaiting)
	}
	var vs []string
	for _, w := range s.Waiting {
		vs = append(vs, w.Version)
	}
	return nil, fmt.Errorf("agent: %s: %w (waiting: %s)", version, ErrNotWaiting, strings.Join(vs, ", "))
}

// Consent records the owner's consent to installing version, which must be
// waiting (State.Waiting). The release installs at the next check even if
// it has adverse impact, is of a kind the maker does not install
// automatically, automatic updates are off or postponed.
func Consent(ctx context.Context, dataDir, version string, now time.Time, onBusy func()) error {
	return updateState(ctx, dataDir, onBusy, func(s *State) error {
		if _, err := findWaiting(s, version); err != nil {
			return err
		}
		s.Owner.Consents[version] = now.UTC()
		s.Owner.record(OwnerChange{At: now.UTC(), Action: "consent", Version: version})
		return nil
	})
}

// Postpone holds automatic installs for d from now, within the maker's
// MaxPostponeDays (see PostponeUntil). It returns the end of the
// postponement.
func Postpone(ctx context.Context, dataDir string, d time.Duration, now time.Time, onBusy func()) (time.Time, error) {
	var until time.Time
	err := updateState(ctx, dataDir, onBusy, func(s *State) error {
		u, since, err := PostponeUntil(s.Support.EffectivePolicy(), &s.Owner, now.UTC(), d)
		if err != nil {
			return err
		}
		until = u
		s.Owner.PostponedUntil, s.Owner.PostponedSince = &u, &since
		s.Owner.record(OwnerChange{At: now.UTC(), Action: "postpone", Until: &u})
		return nil
	})
	return until, err
}

// CancelPostpone ends a postponement now. It reports whether one was in
// force.
func CancelPostpone(ctx context.Context, dataDir string, now time.Time, onBusy func()) (bool, error) {
	var was bool
	err := updateState(ctx, dataDir, onBusy, func(s *State) error {
		was = s.Owner.PostponedUntil != nil && now.Before(*s.Owner.PostponedUntil)
		s.Owner.PostponedUntil, s.Owner.PostponedSince = nil, nil
		if was {
			s.Owner.record(OwnerChange{At: now.UTC(), Action: "postpone-cancel"})
		}
		return nil
	})
	return was, err
}

// SetAutoUpdates turns automatic updates on or off. Turning them off is
// recorded with its time and shown in status as a warning until they are
// turned on again. It reports whether anything changed.
func SetAutoUpdates(ctx context.Context, dataDir string, on bool, now time.Time, onBusy func()) (bool, error) {
	var changed bool
	err := updateState(ctx, dataDir, onBusy, func(s *State) error {
		off := s.Owner.AutoUpdatesOffSince != nil
		if on != off {
			return nil
		}
		changed = true
		if on {
			s.Owner.AutoUpdatesOffSince = nil
			s.Owner.record(OwnerChange{At: now.UTC(), Action: "auto-updates-on"})
			return nil
		}
		t := now.UTC()
		s.Owner.AutoUpdatesOffSince = &t
		s.Owner.record(OwnerChange{At: t, Action: "auto-updates-off"})
		return nil
	})
	return changed, err
}

// updateState runs change on the state under the state lock and saves the
// result unless change fails.
func updateState(ctx context.Context, dataDir string, onBusy func(), change func(*State) error) error {
	unlock, err := lockState(ctx, dataDir, onBusy)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := LoadState(dataDir)
	if err != nil {
		return err
	}
	if err := change(s); err != nil {
		return err
	}
	return saveState(dataDir, s)
}
