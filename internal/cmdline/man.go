package cmdline

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Man pages are man(7) roff: NAME-PATH.1 per command that runs
// (uptrust-release-add.1), NAME.1 for the program with every command, the
// environment and the exit status.

// pageName is the man page name of a command: the program name and the
// path joined by "-".
func (p *Program) pageName(path []string) string {
	return strings.Join(append([]string{p.Name}, path...), "-")
}

// WriteManPages writes every page into dir (created if missing) and returns
// the files written.
func (p *Program) WriteManPages(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("man: %w", err)
	}
	var files []string
	write := func(name string, fill func(io.Writer) error) error {
		var b bytes.Buffer
		if err := fill(&b); err != nil {
			return err
		}
		f := filepath.Join(dir, name+".1")
		if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("man: %w", err)
		}
		files = append(files, f)
		return nil
	}
	if err := write(p.Name, p.writeMainPage); err != nil {
		return files, err
	}
	root := p.root()
	var err error
	p.Walk(func(path []string, c *Command) {
		if err != nil || c.Hidden || hiddenPath(root, path) {
			return
		}
		err = write(p.pageName(path), func(w io.Writer) error { return p.writeCommandPage(w, path, c) })
	})
	return files, err
}

// manDate is the date pages carry: the build time when known, else today.
func (p *Program) manDate() string {
	if t, err := time.Parse(time.RFC3339, p.Version.BuildTime); err == nil {
		return t.UTC().Format("2006-01-02")
	}
	return time.Now().UTC().Format("2006-01-02")
}

func (p *Program) header(w io.Writer, name string) {
	fmt.Fprintf(w, ".TH %s 1 %s %s\n", strings.ToUpper(roffEscape(name)), p.manDate(),
		roffQuote(p.Name+" "+p.Version.Version))
}

func (p *Program) writeMainPage(w io.Writer) error {
	root := p.root()
	p.header(w, p.Name)
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roffEscape(p.Name), roffEscape(p.Synopsis))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B %s\n", roffEscape(p.Name))
	if p.Global != nil {
		fmt.Fprint(w, "[\\fIglobal flags\\fR]\n")
	}
	fmt.Fprint(w, "\\fICOMMAND\\fR [\\fIflags\\fR] [\\fIARGS\\fR]\n")
	if p.Long != "" {
		fmt.Fprint(w, ".SH DESCRIPTION\n")
		writeParagraphs(w, p.Long)
	}
	fmt.Fprint(w, ".SH COMMANDS\n")
	var seeAlso []string
	p.Walk(func(path []string, c *Command) {
		if c.Hidden || hiddenPath(root, path) {
			return
		}
		fmt.Fprintf(w, ".TP\n.B %s\n%s\nSee \\fB%s\\fR(1).\n", roffEscape(strings.TrimSpace(strings.Join(path, " ")+" "+c.Args)),
			roffEscape(c.Synopsis), roffEscape(p.pageName(path)))
		seeAlso = append(seeAlso, p.pageName(path))
	})
	if p.Global != nil {
		fmt.Fprint(w, ".SH OPTIONS\n")
		gfs := newFlagSet(nil)
		p.Global(gfs)
		writeManFlags(w, flagSetInfo(gfs))
	}
	p.writeManTail(w)
	fmt.Fprint(w, ".SH SEE ALSO\n")
	for i, s := range seeAlso {
		sep := ","
		if i == len(seeAlso)-1 {
			sep = ""
		}
		fmt.Fprintf(w, ".BR %s (1)%s\n", roffEscape(s), sep)
	}
	return nil
}

func (p *Program) writeCommandPage(w io.Writer, path []string, c *Command) error {
	name := p.pageName(path)
	p.header(w, name)
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roffEscape(name), roffEscape(c.Synopsis))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B %s\n", roffEscape(strings.Join(append([]string{p.Name}, path...), " ")))
	fl := flagsOf(c)
	if len(fl) > 0 {
		fmt.Fprint(w, "[\\fIflags\\fR]\n")
	}
	if c.Args != "" {
		fmt.Fprintf(w, "\\fI%s\\fR\n", roffEscape(c.Args))
	}
	if c.Long != "" {
		fmt.Fprint(w, ".SH DESCRIPTION\n")
		writeParagraphs(w, c.Long)
	}
	if len(fl) > 0 {
		fmt.Fprint(w, ".SH OPTIONS\n")
		writeManFlags(w, fl)
	}
	p.writeManTail(w)
	fmt.Fprintf(w, ".SH SEE ALSO\n.BR %s (1)\n", roffEscape(p.Name))
	return nil
}

func writeManFlags(w io.Writer, fl []flagInfo) {
	for _, f := range fl {
		fmt.Fprintf(w, ".TP\n.B \\-\\-%s", roffEscape(f.Name))
		if f.Value != "" {
			fmt.Fprintf(w, " \\fI%s\\fR", roffEscape(f.Value))
		}
		fmt.Fprintf(w, "\n%s", roffEscape(f.Usage))
		if f.Default != "" {
			fmt.Fprintf(w, " (default %s)", roffEscape(quoteDefault(f)))
		}
		fmt.Fprintln(w)
	}
}

func (p *Program) writeManTail(w io.Writer) {
	if len(p.Environment) > 0 {
		fmt.Fprint(w, ".SH ENVIRONMENT\n")
		for _, e := range p.Environment {
			name, meaning, _ := strings.Cut(e, ":")
			fmt.Fprintf(w, ".TP\n.B %s\n%s\n", roffEscape(name), roffEscape(strings.TrimSpace(meaning)))
		}
	}
	fmt.Fprint(w, ".SH EXIT STATUS\n")
	for _, e := range p.exitCodes() {
		fmt.Fprintf(w, ".TP\n.B %d\n%s\n", e.Code, roffEscape(e.Meaning))
	}
}

// writeParagraphs writes text: blank lines separate paragraphs, indented
// lines are kept as they are (examples).
func writeParagraphs(w io.Writer, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			fmt.Fprint(w, ".PP\n")
		}
		lines := strings.Split(para, "\n")
		literal := strings.HasPrefix(lines[0], " ")
		if literal {
			fmt.Fprint(w, ".nf\n.RS 2\n")
		}
		for _, l := range lines {
			if literal {
				l = strings.TrimPrefix(l, "  ")
			} else {
				l = strings.TrimSpace(l)
			}
			fmt.Fprintln(w, roffEscape(l))
		}
		if literal {
			fmt.Fprint(w, ".RE\n.fi\n")
		}
	}
}

// roffEscape makes s safe as roff text: backslashes and hyphens escaped, a
// leading period or apostrophe made literal.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuote is a macro argument in double quotes.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffEscape(s), `"`, `\(dq`) + `"`
}
