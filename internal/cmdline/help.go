package cmdline

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// exitCodes are all of the program's exit codes, the shared ones first.
// An entry of Program.ExitCodes for 0, 1 or 2 replaces the shared meaning.
func (p *Program) exitCodes() []ExitCode {
	out := []ExitCode{
		{ExitOK, "success"},
		{ExitFail, "error"},
		{ExitUsage, "usage: the command line cannot be run (unknown command or flag, wrong arguments)"},
	}
	for _, e := range p.ExitCodes {
		if e.Code >= 0 && e.Code < len(out) {
			out[e.Code] = e
		} else {
			out = append(out, e)
		}
	}
	return out
}

// usageLine is "NAME PATH [flags] ARGS" for a command, "NAME PATH
// SUBCOMMAND" for a group.
func (p *Program) usageLine(path []string, c *Command) string {
	words := append([]string{p.Name}, path...)
	if !c.runs() {
		return strings.Join(append(words, "SUBCOMMAND ..."), " ")
	}
	if len(flagsOf(c)) > 0 {
		words = append(words, "[flags]")
	}
	if c.Args != "" {
		words = append(words, c.Args)
	}
	return strings.Join(words, " ")
}

// writeGlobalHelp lists every command with its synopsis.
func (p *Program) writeGlobalHelp(w io.Writer, root *Command) {
	fmt.Fprintf(w, "%s: %s\n\nusage: %s", p.Name, p.Synopsis, p.Name)
	if p.Global != nil {
		fmt.Fprint(w, " [global flags]")
	}
	fmt.Fprint(w, " COMMAND [flags] [ARGS]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p.Walk(func(path []string, c *Command) {
		if c.Hidden || hiddenPath(root, path) {
			return
		}
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(strings.Join(path, " ")+" "+c.Args), c.Synopsis)
	})
	tw.Flush()
	fmt.Fprint(w, "\nglobal flags:\n")
	gfs := newFlagSet(nil)
	if p.Global != nil {
		p.Global(gfs)
	}
	gfs.Bool("version", false, "print the version and exit (also: version [--json])")
	writeFlags(w, flagSetInfo(gfs))
	if p.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(p.Long))
	}
	p.writeTail(w)
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' (or '%s help COMMAND') for a command's flags.\n", p.Name, p.Name)
}

// hiddenPath reports whether any command along path is hidden.
func hiddenPath(root *Command, path []string) bool {
	c := root
	for _, name := range path {
		if c = c.sub(name); c == nil || c.Hidden {
			return true
		}
	}
	return false
}

// writeTail writes the environment and the exit codes.
func (p *Program) writeTail(w io.Writer) {
	if len(p.Environment) > 0 {
		fmt.Fprint(w, "\nenvironment:\n")
		for _, e := range p.Environment {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprint(w, "\nexit status:\n")
	for _, e := range p.exitCodes() {
		fmt.Fprintf(w, "  %d  %s\n", e.Code, e.Meaning)
	}
}

// writeHelp is a command's help: usage, description, subcommands or flags,
// exit status.
func (p *Program) writeHelp(w io.Writer, path []string, c *Command) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", p.usageLine(path, c), c.Synopsis)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	if !c.runs() {
		fmt.Fprint(w, "\nsubcommands:\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range visible(c.Sub) {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(s.Name+" "+s.Args), s.Synopsis)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun '%s %s SUBCOMMAND --help' for a subcommand's flags.\n", p.Name, strings.Join(path, " "))
		return
	}
	if fl := flagsOf(c); len(fl) > 0 {
		fmt.Fprint(w, "\nflags:\n")
		writeFlags(w, fl)
	}
	if subs := visible(c.Sub); len(subs) > 0 {
		fmt.Fprint(w, "\nsubcommands:\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(s.Name+" "+s.Args), s.Synopsis)
		}
		tw.Flush()
	}
	if g := p.globalOnly(c); len(g) > 0 {
		fmt.Fprint(w, "\nglobal flags (before the command):\n")
		writeFlags(w, g)
	}
	p.writeTail(w)
}

// globalOnly lists the global flags a command does not define itself.
func (p *Program) globalOnly(c *Command) []flagInfo {
	if p.Global == nil {
		return nil
	}
	own := map[string]bool{}
	for _, f := range flagsOf(c) {
		own[f.Name] = true
	}
	gfs := newFlagSet(nil)
	p.Global(gfs)
	var out []flagInfo
	for _, f := range flagSetInfo(gfs) {
		if !own[f.Name] {
			out = append(out, f)
		}
	}
	return out
}

// writeFlags lists flags the way `go help` does: name and value on one
// line, usage and default indented below.
func writeFlags(w io.Writer, fl []flagInfo) {
	for _, f := range fl {
		line := "  --" + f.Name
		if f.Value != "" {
			line += " " + f.Value
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(f.Usage, "\n", "\n    \t"))
		if f.Default != "" {
			fmt.Fprintf(w, " (default %s)", quoteDefault(f))
		}
		fmt.Fprintln(w)
	}
}

func quoteDefault(f flagInfo) string {
	if f.Value == "string" {
		return fmt.Sprintf("%q", f.Default)
	}
	return f.Default
}

// builtins are the commands every program has: help, version, completion
// and man.
func (p *Program) builtins() []*Command {
	return []*Command{
		{Name: "help", Args: "[COMMAND ...]", Synopsis: "show the help of a command, or of the program",
			Flags: func(fs *flag.FlagSet) RunFunc {
				return func(ctx context.Context, args []string) error {
					root := p.root()
					if len(args) == 0 {
						p.writeGlobalHelp(p.Stdout, root)
						return nil
					}
					path, c, rest := find(root, args)
					if c == root || len(rest) > 0 {
						return Usagef("help: no command %q", strings.Join(args, " "))
					}
					p.writeHelp(p.Stdout, path, c)
					return nil
				}
			}},
		{Name: "version", Synopsis: "print the version, commit, build time and Go version",
			Flags: func(fs *flag.FlagSet) RunFunc {
				asJSON := fs.Bool("json", false, "print JSON: version, commit, build_time, go_version, modified")
				return func(ctx context.Context, args []string) error {
					if len(args) != 0 {
						return Usagef("version takes no arguments")
					}
					return p.Version.write(p.Stdout, *asJSON)
				}
			}},
		{Name: "completion", Args: "bash|zsh|fish", Synopsis: "print a shell completion script",
			Long: completionHelp(p.Name),
			Flags: func(fs *flag.FlagSet) RunFunc {
				return func(ctx context.Context, args []string) error {
					if len(args) != 1 {
						return Usagef("completion: want one of bash, zsh, fish")
					}
					return p.writeCompletionScript(p.Stdout, args[0])
				}
			}},
		{Name: "man", Args: "[DIR]", Files: true, Synopsis: "write the man pages to DIR, or the main one to standard output",
			Flags: func(fs *flag.FlagSet) RunFunc {
				return func(ctx context.Context, args []string) error {
					switch len(args) {
					case 0:
						return p.writeMainPage(p.Stdout)
					case 1:
						files, err := p.WriteManPages(args[0])
						for _, f := range files {
							fmt.Fprintln(p.Stdout, f)
						}
						return err
					}
					return Usagef("man: at most one DIR")
				}
			}},
		{Name: "__complete", Hidden: true, Synopsis: "print completion candidates (used by the completion scripts)",
			Flags: func(fs *flag.FlagSet) RunFunc {
				return nil // handled in Main: the words may look like flags
			}},
	}
}
