// Package cmdline runs a command-line program described by one declarative
// tree of commands, and derives everything else from that tree: per-command
// help (`CMD --help`, `CMD -h`, `help CMD`), the global usage, shell
// completion for bash, zsh and fish, man pages, the version command and the
// exit status. Help, completion and man pages cannot drift from what the
// program accepts because they are all read from the same flag.FlagSets the
// commands parse.
//
// Flags are the standard library's: a command's Flags function defines them
// on a fresh flag.FlagSet and returns the function that runs the command
// with the parsed values. Flags may appear anywhere among the positional
// arguments; "--" ends the flags.
//
// Exit status: 0 success, ExitUsage (2) for a command line that cannot be
// run (the error is a UsageError, or flag parsing failed), the Code of an
// *ExitError anywhere in the error chain, else ExitError (1).
package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// The exit codes every program shares.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// RunFunc runs a command with its positional arguments; the flags were
// parsed into the variables its Flags function defined.
type RunFunc func(ctx context.Context, args []string) error

// Command is one node of the command tree: a group (Sub set), a command
// that runs (Flags, or Raw, set), or both: a command that runs itself
// unless its first argument names one of its subcommands (uptrust
// compliance PRODUCT beside uptrust compliance attest ...).
type Command struct {
	// Name is the word that selects the command.
	Name string
	// Args names the positional arguments for the usage line, e.g.
	// "PRODUCT VERSION FILE" or "[PRODUCT]".
	Args string
	// Synopsis is one line, lower case, no final period.
	Synopsis string
	// Long is the description: paragraphs separated by blank lines.
	Long string
	// Flags defines the command's flags on fs and returns the function
	// that runs it. It is called once per run, and once per help, man
	// page or completion, so it must have no effect beyond defining flags.
	Flags func(fs *flag.FlagSet) RunFunc
	// Raw, instead of Flags, runs a command not converted yet: it gets the
	// arguments unparsed and parses its own flags, which help, completion
	// and man pages therefore cannot list (-h and --help still show the
	// synopsis). Convert it to Flags: the flag definitions move into Flags,
	// the rest into the RunFunc it returns.
	Raw RunFunc
	// Sub are the subcommands of a group.
	Sub []*Command
	// Files says that the positional arguments are paths (completion
	// offers file names).
	Files bool
	// Hidden commands run but are left out of listings and man pages.
	Hidden bool
}

// ExitCode documents one exit status of a program.
type ExitCode struct {
	Code    int
	Meaning string
}

// Program is a command-line program.
type Program struct {
	// Name is the binary's name.
	Name string
	// Synopsis is one line; Long the description in the global help and
	// the main man page.
	Synopsis, Long string
	// Global defines flags accepted before the command name (e.g. the
	// agent's --config); they are parsed before a command's Flags run.
	Global func(fs *flag.FlagSet)
	// Commands are the top-level commands; Program adds help, version,
	// completion and man.
	Commands []*Command
	// ExitCodes are the program's exit codes beyond 0, 1 and 2.
	ExitCodes []ExitCode
	// Environment lists environment variables, "NAME: meaning".
	Environment []string
	// Version is what `version` and `--version` print.
	Version Version
	// Stdout and Stderr are where output goes.
	Stdout, Stderr io.Writer
}

// UsageError is a command line that cannot be run: exit status 2, with the
// command's usage line.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Sprintf(format, args...)}
}

// ExitError carries the exit status a failure must end with, for results
// that are not errors of the program (a compliance "shall" not met, an
// update refused). A nil Err prints nothing.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs the command line args (without the program name) and returns
// the exit status.
func (p *Program) Main(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "__complete" {
		p.writeComplete(p.Stdout, args[1:])
		return ExitOK
	}
	root := p.root()
	gfs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	if p.Global != nil {
		p.Global(gfs)
	}
	showVersion := gfs.Bool("version", false, "print the version and exit")
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			p.writeGlobalHelp(p.Stdout, root)
			return ExitOK
		}
		fmt.Fprintf(p.Stderr, "%s: %v\n\n", p.Name, err)
		p.writeGlobalHelp(p.Stderr, root)
		return ExitUsage
	}
	if *showVersion {
		return p.finish(p.Version.write(p.Stdout, false))
	}
	args = gfs.Args()
	if len(args) == 0 {
		p.writeGlobalHelp(p.Stderr, root)
		return ExitUsage
	}
	path, cmd, rest := find(root, args)
	if cmd == root {
		fmt.Fprintf(p.Stderr, "%s: unknown command %q\n\n", p.Name, args[0])
		p.writeGlobalHelp(p.Stderr, root)
		return ExitUsage
	}
	if !cmd.runs() { // a group without a (known) subcommand
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
			p.writeHelp(p.Stdout, path, cmd)
			return ExitOK
		}
		if len(rest) > 0 {
			fmt.Fprintf(p.Stderr, "%s %s: unknown subcommand %q\n\n", p.Name, strings.Join(path, " "), rest[0])
		} else {
			fmt.Fprintf(p.Stderr, "%s %s: want a subcommand\n\n", p.Name, strings.Join(path, " "))
		}
		p.writeHelp(p.Stderr, path, cmd)
		return ExitUsage
	}
	var err error
	if cmd.Flags == nil { // Raw
		if slices.ContainsFunc(rest, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
			p.writeHelp(p.Stdout, path, cmd)
			return ExitOK
		}
		err = cmd.Raw(ctx, rest)
	} else {
		fs := newFlagSet(path)
		run := cmd.Flags(fs)
		var pos []string
		pos, err = Parse(fs, rest)
		if errors.Is(err, flag.ErrHelp) {
			p.writeHelp(p.Stdout, path, cmd)
			return ExitOK
		}
		if err == nil {
			err = run(ctx, pos)
		}
	}
	var ue UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		fmt.Fprintf(p.Stderr, "usage: %s\nrun '%s %s --help' for its flags\n", p.usageLine(path, cmd), p.Name, strings.Join(path, " "))
		return ExitUsage
	}
	return p.finish(err)
}

// finish prints err and returns its exit status.
func (p *Program) finish(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		}
		return ee.Code
	}
	fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
	return ExitFail
}

// root is the tree with the built-in commands added.
func (p *Program) root() *Command {
	cmds := append([]*Command(nil), p.Commands...)
	cmds = append(cmds, p.builtins()...)
	return &Command{Name: p.Name, Synopsis: p.Synopsis, Long: p.Long, Sub: cmds}
}

// find walks args down the tree as far as they name subcommands. A command
// that runs and has subcommands runs itself unless its first argument names
// one of them.
func find(root *Command, args []string) (path []string, cmd *Command, rest []string) {
	cmd = root
	for len(args) > 0 {
		next := cmd.sub(args[0])
		if next == nil {
			break
		}
		path = append(path, next.Name)
		cmd, args = next, args[1:]
	}
	return path, cmd, args
}

// runs reports whether c runs (rather than groups subcommands).
func (c *Command) runs() bool { return c.Flags != nil || c.Raw != nil }

func (c *Command) sub(name string) *Command {
	for _, s := range c.Sub {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func newFlagSet(path []string) *flag.FlagSet {
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses flags placed anywhere among positional arguments and returns
// the positional ones; everything after "--" is positional. A flag error is
// a UsageError; -h and --help return flag.ErrHelp.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, UsageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag.Parse stops at the first positional argument, or after
		// "--", which it consumes: everything left is positional then.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagInfo is one flag as help, completion and man pages show it.
type flagInfo struct {
	Name, Value, Usage, Default string
	Bool                        bool
}

// flagsOf lists the flags cmd defines, sorted by name.
func flagsOf(cmd *Command) []flagInfo {
	if cmd.Flags == nil {
		return nil // a group, or a Raw command
	}
	fs := newFlagSet(nil)
	cmd.Flags(fs)
	return flagSetInfo(fs)
}

func flagSetInfo(fs *flag.FlagSet) []flagInfo {
	var out []flagInfo
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		fi := flagInfo{Name: f.Name, Value: value, Usage: usage}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			fi.Bool, fi.Value = true, ""
		}
		if !isZero(f) {
			fi.Default = f.DefValue
		}
		out = append(out, fi)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// isZero reports whether the flag's default is its type's zero value, the
// way package flag decides whether to print "(default ...)".
func isZero(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s", "[]":
		return true
	}
	return false
}

// visible lists the commands shown in help and man pages.
func visible(cmds []*Command) []*Command {
	var out []*Command
	for _, c := range cmds {
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// Walk calls fn for every command that runs, with its path below the
// program, depth first in definition order (hidden ones included).
func (p *Program) Walk(fn func(path []string, c *Command)) {
	var walk func(path []string, c *Command)
	walk = func(path []string, c *Command) {
		if c.runs() {
			fn(path, c)
		}
		for _, s := range c.Sub {
			walk(append(append([]string(nil), path...), s.Name), s)
		}
	}
	walk(nil, p.root())
}

// FlagNames lists the names of the flags a command defines (tests check
// with it that help, completion and man pages show every one).
func FlagNames(c *Command) []string {
	var out []string
	for _, f := range flagsOf(c) {
		out = append(out, f.Name)
	}
	return out
}
