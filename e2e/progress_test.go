//go:build linux

package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/agent/cli"
	"github.com/uptrust/uptrust/internal/progress/ptytest"
	"github.com/uptrust/uptrust/internal/release"
)

// TestCheckShowsDownloadProgress: uptrust-agent check, with stderr on a
// terminal, shows the payload download in one updating line there; stdout
// has the result alone.
func TestCheckShowsDownloadProgress(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.publish("1.1.0", 1, release.KindFix)
	w.rollout("1.1.0", 100)
	d := w.device("d1", 1)
	// Never reboot the machine running the test.
	if err := d.SetConfig(func(c *agent.Config) { c.RebootCommand = []string{"true"} }); err != nil {
		t.Fatal(err)
	}
	p, err := ptytest.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	var stdout bytes.Buffer
	code := cli.Main(context.Background(), []string{"--config", d.ConfigPath(), "check"}, cli.Env{Stdout: &stdout, Stderr: p.Slave})
	tty := p.Output()
	if code != cli.ExitRebooting { // the release was written; the reboot command ran
		t.Fatalf("check: exit %d (want %d)\nstdout %q\nterminal %q", code, cli.ExitRebooting, stdout.String(), tty)
	}
	if !strings.Contains(tty, "\r\x1b[Kdownloading 1.1.0") || !strings.Contains(tty, "downloading 1.1.0: done") {
		t.Errorf("no download progress on the terminal: %q", tty)
	}
	if strings.Contains(stdout.String(), "downloading") || strings.Contains(stdout.String(), "\r") {
		t.Errorf("progress on stdout: %q", stdout.String())
	}
}
