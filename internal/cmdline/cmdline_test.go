package cmdline

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// testProgram has one command, "do", whose run returns err and records
// the flags and positionals it got.
func testProgram(err error, got *[]string) (*Program, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	p := &Program{Name: "prog", Synopsis: "test program", Stdout: &stdout, Stderr: &stderr,
		ExitCodes: []ExitCode{{3, "a shall is not met"}},
		Commands: []*Command{{Name: "group", Synopsis: "a group", Sub: []*Command{{
			Name: "do", Args: "A B", Synopsis: "do it",
			Flags: func(fs *flag.FlagSet) RunFunc {
				n := fs.Int("n", 1, "how many")
				v := fs.Bool("v", false, "verbose")
				return func(ctx context.Context, args []string) error {
					*got = append([]string{fmt.Sprintf("n=%d v=%v", *n, *v)}, args...)
					return err
				}
			}}}}}}
	return p, &stdout, &stderr
}

func TestParseFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"a", "-n", "3", "b"}, []string{"n=3 v=false", "a", "b"}},
		{[]string{"--v", "a", "b", "--n=4"}, []string{"n=4 v=true", "a", "b"}},
		{[]string{"a", "--", "-n", "5"}, []string{"n=1 v=false", "a", "-n", "5"}},
	} {
		var got []string
		p, _, stderr := testProgram(nil, &got)
		if code := p.Main(t.Context(), append([]string{"group", "do"}, tc.args...)); code != 0 || !slices.Equal(got, tc.want) {
			t.Errorf("do %q: exit %d, got %q, want %q (%s)", tc.args, code, got, tc.want, stderr)
		}
	}
}

// TestExitStatus: the runner maps nil to 0, an error to 1, a UsageError
// or a bad flag to 2 with the usage line, and an *ExitError, wrapped or
// not, to its Code with its message.
func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		args   []string
		want   int
		stderr string
	}{
		{nil, nil, 0, ""},
		{errors.New("broken"), nil, 1, "prog: broken\n"},
		{Usagef("want A B"), nil, 2, "usage: prog group do [flags] A B"},
		{nil, []string{"--nope"}, 2, "flag provided but not defined: -nope"},
		{&ExitError{Code: 3, Err: errors.New("5.3-2 not met")}, nil, 3, "prog: 5.3-2 not met\n"},
		{fmt.Errorf("compliance: %w", &ExitError{Code: 3, Err: errors.New("not met")}), nil, 3, "prog: compliance: not met\n"},
		{&ExitError{Code: 5}, nil, 5, ""},
	} {
		var got []string
		p, _, stderr := testProgram(tc.err, &got)
		code := p.Main(t.Context(), append([]string{"group", "do", "a", "b"}, tc.args...))
		if code != tc.want || !strings.Contains(stderr.String(), tc.stderr) || (tc.stderr == "" && stderr.Len() != 0) {
			t.Errorf("run returning %v: exit %d, stderr %q; want %d, %q", tc.err, code, stderr, tc.want, tc.stderr)
		}
	}
}

// TestHelpExitsZero: --help, -h and help CMD print the command's help on
// stdout and exit 0 without running it; a group without a subcommand is a
// usage error.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"group", "do", "--help"}, {"group", "do", "x", "-h"}, {"help", "group", "do"}} {
		var got []string
		p, stdout, _ := testProgram(errors.New("must not run"), &got)
		code := p.Main(t.Context(), args)
		out := stdout.String()
		if code != 0 || got != nil || !strings.Contains(out, "usage: prog group do [flags] A B") ||
			!strings.Contains(out, "--n int\n    \thow many (default 1)") || !strings.Contains(out, "--v\n") ||
			!strings.Contains(out, "  3  a shall is not met") {
			t.Errorf("%q: exit %d, ran %v:\n%s", args, code, got, out)
		}
	}
	var got []string
	p, _, stderr := testProgram(nil, &got)
	if code := p.Main(t.Context(), []string{"group"}); code != 2 || !strings.Contains(stderr.String(), "do A B") {
		t.Errorf("group without subcommand: exit %d\n%s", code, stderr)
	}
}

func TestVersionOf(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	v := versionOf("", "", info)
	if v != (Version{Version: "devel", Commit: "abc123", BuildTime: "2026-12-01T10:00:00Z", GoVersion: "go1.26.8", Modified: true}) {
		t.Errorf("stamped only: %+v", v)
	}
	v = versionOf("1.2.3", "2026-12-07T13:00:00Z", info)
	if v.Version != "1.2.3" || v.BuildTime != "2026-12-07T13:00:00Z" || v.Commit != "abc123" {
		t.Errorf("linked: %+v", v)
	}
	info.Main.Version = "v0.4.0"
	if v := versionOf("", "", info); v.Version != "v0.4.0" {
		t.Errorf("module version: %+v", v)
	}
}

func TestRoffEscape(t *testing.T) {
	for in, want := range map[string]string{
		"--dir":        `\-\-dir`,
		".hidden line": `\&.hidden line`,
		"'quote":       `\&'quote`,
		`back\slash`:   `back\eslash`,
	} {
		if got := roffEscape(in); got != want {
			t.Errorf("roffEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRawCommand: a command not converted yet gets its arguments unparsed;
// -h anywhere shows its help instead.
func TestRawCommand(t *testing.T) {
	var got []string
	var stdout, stderr bytes.Buffer
	p := &Program{Name: "prog", Synopsis: "test program", Stdout: &stdout, Stderr: &stderr,
		Commands: []*Command{{Name: "old", Args: "X", Synopsis: "an old-style command",
			Raw: func(ctx context.Context, args []string) error { got = args; return Usagef("old: bad") }}}}
	if code := p.Main(t.Context(), []string{"old", "--own-flag", "x"}); code != 2 || !slices.Equal(got, []string{"--own-flag", "x"}) {
		t.Errorf("raw command: exit %d, got %q", code, got)
	}
	got = nil
	if code := p.Main(t.Context(), []string{"old", "x", "-h"}); code != 0 || got != nil || !strings.Contains(stdout.String(), "an old-style command") {
		t.Errorf("raw command -h: exit %d, ran with %q:\n%s", code, got, stdout.String())
	}
}
