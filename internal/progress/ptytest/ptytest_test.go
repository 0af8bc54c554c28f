//go:build linux

package ptytest

import (
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/progress"
)

// TestBarOnRealTerminal: ForFile on a pseudo-terminal draws the updating
// line; on a plain file it does not.
func TestBarOnRealTerminal(t *testing.T) {
	p, err := Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	b := progress.ForFile(p.Slave, false)
	b.Start("uploading", 10)
	b.Add(10)
	b.Done()
	out := p.Output()
	if !strings.Contains(out, "\r\x1b[Kuploading") || !strings.Contains(out, "uploading: done, 10 B") {
		t.Errorf("terminal output %q", out)
	}
	if progress.ForFile(p.Slave, true) != nil {
		t.Error("a quiet bar on a terminal shows progress")
	}
}
