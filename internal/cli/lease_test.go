package cli_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/project"
)

// TestServeReleasesResignLease: a running serve holds the re-signing lease
// (another holder is refused), and gives it up when it shuts down, so that
// another replica can take it at once instead of after ResignLeaseTTL.
func TestServeReleasesResignLease(t *testing.T) {
	dir := devProject(t)
	other := openProject(t, dir)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"serve", "--dir", dir, "--listen", "127.0.0.1:0"},
			cli.Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }})
	}()
	// Wait until serve's resign tick has taken the lease; a probe that
	// finds it free gives it back at once.
	for {
		held, err := other.Store.AcquireLease(t.Context(), project.ResignLease, "probe", time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !held {
			break
		}
		if err := other.Store.ReleaseLease(t.Context(), project.ResignLease, "probe"); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before taking the lease", code)
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if held, err := other.Store.AcquireLease(t.Context(), project.ResignLease, "probe", time.Minute, time.Now()); err != nil || !held {
		t.Errorf("after serve stopped: AcquireLease %v, %v; want the lease released", held, err)
	}
}
