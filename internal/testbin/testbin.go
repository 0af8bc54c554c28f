// Package testbin builds uptrust and uptrust-agent once per test binary and
// runs them as a user or a script would, for the tests of cmd/.
package testbin

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Result is how a run of a binary ended.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Main is the body of a TestMain: it builds both binaries into a new
// temporary directory with ldflags (may be empty), stores its path in
// *dir, runs the tests (m is a *testing.M, or a wrapper whose Run calls
// another harness's Main, such as pgtest.Main) and removes the directory.
// It exits the process.
func Main(m interface{ Run() int }, ldflags string, dir *string) {
	d, err := os.MkdirTemp("", "uptrust-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", d + string(os.PathSeparator)}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	args = append(args, "github.com/uptrust/uptrust/cmd/uptrust", "github.com/uptrust/uptrust/cmd/uptrust-agent")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binaries: %v\n%s", err, out)
		os.RemoveAll(d)
		os.Exit(1)
	}
	*dir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// CleanEnv is the process environment without UPTRUST_ variables, so that
// the caller's settings cannot leak into a test, and without PATH when
// dropPath is set (the caller sets its own).
func CleanEnv(dropPath bool) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "UPTRUST_") || (dropPath && strings.HasPrefix(kv, "PATH=")) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Run runs cmd with its output captured and returns how it ended; a
// command that cannot start fails t.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return Result{code, stdout.String(), stderr.String()}
}
