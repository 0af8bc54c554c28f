//go:build linux

package cli_test

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/progress/ptytest"
)

// runOnTerminal runs the command line with stderr on a pseudo-terminal and
// returns the exit status, stdout and what the terminal showed.
func runOnTerminal(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	p, err := ptytest.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	var stdout bytes.Buffer
	code := cli.Main(t.Context(), args, cli.Env{Stdout: &stdout, Stderr: p.Slave, Getenv: func(string) string { return "" }})
	return code, stdout.String(), p.Output()
}

// TestReleaseAddProgress: release add shows its phases on a terminal
// (hashing, compressing, building the delta from the earlier release) in
// one updating line on stderr, and stdout keeps only the result.
func TestReleaseAddProgress(t *testing.T) {
	dir := devProject(t)
	img := make([]byte, 1<<20)
	rand.Read(img)
	v1 := writeFile(t, t.TempDir(), "v1.img", string(img))
	img[1000] ^= 1
	v2 := writeFile(t, t.TempDir(), "v2.img", string(img))

	code, stdout, tty := runOnTerminal(t, "release", "add", "thermostat", "1.0.0", v1, "--kind", "fix", "--security-version", "1", "--dir", dir)
	if code != 0 || !strings.Contains(tty, "\r\x1b[Khashing and storing") || !strings.Contains(tty, "hashing and storing: done, 1.0 MiB") {
		t.Fatalf("release add 1.0.0: exit %d, terminal %q", code, tty)
	}
	if strings.Contains(stdout, "hashing") || strings.Contains(stdout, "\r") || !strings.HasPrefix(stdout, "published thermostat 1.0.0") {
		t.Errorf("progress on stdout: %q", stdout)
	}

	code, stdout, tty = runOnTerminal(t, "release", "add", "thermostat", "1.1.0", v2, "--kind", "fix", "--security-version", "1",
		"--compress", "zstd", "--delta-from", "1.0.0", "--dir", dir)
	for _, want := range []string{"reading the image", "indexing 1.0.0 for the delta", "\r\x1b[Kbuilding the delta from 1.0.0",
		"building the delta from 1.0.0: done, 1.0 MiB", "\r\x1b[Kcompressing and hashing", "compressing and hashing: done"} {
		if !strings.Contains(tty, want) {
			t.Errorf("release add --delta-from --compress: terminal lacks %q:\n%q", want, tty)
		}
	}
	if code != 0 || strings.Contains(stdout, "\r") || strings.Contains(stdout, "delta from 1.0.0: done") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}

// TestMirrorProgressPlain: with stderr not a terminal, mirror export
// writes plain progress lines there, none on stdout.
func TestMirrorProgressPlain(t *testing.T) {
	dir := devProject(t)
	payload := writeFile(t, t.TempDir(), "fw.img", strings.Repeat("x", 4096))
	mustRun(t, nil, "release", "add", "thermostat", "1.0.0", payload, "--kind", "fix", "--security-version", "1", "--dir", dir)
	out := filepath.Join(t.TempDir(), "mirror")
	r := mustRun(t, nil, "mirror", "export", out, "--dir", dir)
	if !strings.Contains(r.stderr, "writing the mirror "+out+": ") || !strings.Contains(r.stderr, "writing the mirror "+out+": done") ||
		strings.Contains(r.stderr, "\r") {
		t.Errorf("mirror export progress on stderr:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout, "writing the mirror") {
		t.Errorf("progress on stdout:\n%s", r.stdout)
	}
	code, stdout, tty := runOnTerminal(t, "mirror", "sync", out, "--dir", dir)
	if code != 0 || !strings.Contains(tty, "\r\x1b[Kwriting the mirror") || strings.Contains(stdout, "writing the mirror") {
		t.Errorf("mirror sync on a terminal: exit %d, stdout %q, terminal %q", code, stdout, tty)
	}
}
