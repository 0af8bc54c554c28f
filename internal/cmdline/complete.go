package cmdline

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Completion works the way cobra's does: the shell scripts are a few lines
// that hand the words typed so far to the program's hidden __complete
// command, which answers from the command tree. The scripts therefore never
// change when commands or flags do.
//
// __complete WORD... CURRENT prints a directive line, then candidates one
// per line:
//
//	:words   complete with the candidates that follow
//	:files   complete with file names (the candidates are empty)

// Completion directives, the first line of __complete's output.
const (
	directiveWords = ":words"
	directiveFiles = ":files"
)

// Complete returns the candidates for the word being typed (cur) after the
// words before it (without the program name), and whether the shell should
// complete file names instead.
func (p *Program) Complete(words []string, cur string) (candidates []string, files bool) {
	root := p.root()
	gfs := newFlagSet(nil)
	if p.Global != nil {
		p.Global(gfs)
	}
	gfs.Bool("version", false, "")
	global := flagSetInfo(gfs)
	c, path := root, []string(nil)
	fl := global
	expectValue := false
	for _, w := range words {
		if expectValue {
			expectValue = false
			continue
		}
		if w == "--" {
			continue
		}
		if strings.HasPrefix(w, "-") {
			if !strings.Contains(w, "=") {
				if f, ok := lookup(fl, w); ok && !f.Bool {
					expectValue = true
				}
			}
			continue
		}
		if !c.runs() || len(c.Sub) > 0 {
			if s := c.sub(w); s != nil {
				c, path = s, append(path, w)
				fl = flagsOf(c)
				if !c.runs() {
					fl = nil
				}
			}
		}
	}
	if expectValue {
		return nil, true
	}
	if strings.HasPrefix(cur, "-") {
		if c == root {
			fl = global
		}
		for _, f := range fl {
			candidates = append(candidates, "--"+f.Name)
		}
		candidates = append(candidates, "--help")
		return filter(candidates, cur), false
	}
	if len(c.Sub) > 0 {
		for _, s := range visible(c.Sub) {
			candidates = append(candidates, s.Name)
		}
		return filter(candidates, cur), false
	}
	if c.Name == "completion" && len(path) == 1 {
		return filter([]string{"bash", "fish", "zsh"}, cur), false
	}
	if c.Name == "help" && len(path) == 1 {
		for _, s := range visible(root.Sub) {
			candidates = append(candidates, s.Name)
		}
		return filter(candidates, cur), false
	}
	return nil, c.Files
}

// lookup finds the flag written as w ("-x", "--x").
func lookup(fl []flagInfo, w string) (flagInfo, bool) {
	name := strings.TrimLeft(w, "-")
	for _, f := range fl {
		if f.Name == name {
			return f, true
		}
	}
	return flagInfo{}, false
}

func filter(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// writeComplete answers __complete.
func (p *Program) writeComplete(w io.Writer, args []string) {
	if len(args) == 0 {
		args = []string{""}
	}
	cands, files := p.Complete(args[:len(args)-1], args[len(args)-1])
	if files {
		fmt.Fprintln(w, directiveFiles)
		return
	}
	fmt.Fprintln(w, directiveWords)
	for _, c := range cands {
		fmt.Fprintln(w, c)
	}
}

func completionHelp(name string) string {
	return fmt.Sprintf(`The script asks %[1]s itself for the candidates, so it stays right when
%[1]s changes. Install it with one of:

  bash:  %[1]s completion bash > /etc/bash_completion.d/%[1]s
         (or: source <(%[1]s completion bash) in ~/.bashrc)
  zsh:   source <(%[1]s completion zsh) in ~/.zshrc, after compinit
  fish:  %[1]s completion fish > ~/.config/fish/completions/%[1]s.fish`, name)
}

// writeCompletionScript prints the script for shell.
func (p *Program) writeCompletionScript(w io.Writer, shell string) error {
	fn := "_" + strings.NewReplacer("-", "_").Replace(p.Name)
	var script string
	switch shell {
	case "bash":
		script = `# bash completion for {{NAME}}: source it, or put it in /etc/bash_completion.d/{{NAME}}
{{FN}}() {
    local cur=${COMP_WORDS[COMP_CWORD]} out
    out=$({{NAME}} __complete "${COMP_WORDS[@]:1:COMP_CWORD-1}" "$cur" 2>/dev/null) || return 0
    COMPREPLY=()
    if [[ ${out%%$'\n'*} == :files ]]; then
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        compopt -o filenames 2>/dev/null
    else
        [[ $out == *$'\n'* ]] && mapfile -t COMPREPLY <<< "${out#*$'\n'}"
    fi
}
complete -F {{FN}} {{NAME}}
`
	case "zsh":
		script = `#compdef {{NAME}}
# zsh completion for {{NAME}}: source it from ~/.zshrc after compinit
{{FN}}() {
    local out
    local -a lines
    out=$({{NAME}} __complete "${(@)words[2,CURRENT-1]}" "${words[CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    if [[ ${lines[1]} == :files ]]; then
        _files
    else
        compadd -- "${(@)lines[2,-1]}"
    fi
}
if (( $+functions[compdef] )); then
    compdef {{FN}} {{NAME}}
fi
`
	case "fish":
		script = `# fish completion for {{NAME}}: save as ~/.config/fish/completions/{{NAME}}.fish
function __{{FN}}_complete
    set -l words (commandline -opc)
    set -e words[1]
    set -l out ({{NAME}} __complete $words (commandline -ct) 2>/dev/null)
    or return
    if test "$out[1]" = ":files"
        __fish_complete_path (commandline -ct)
    else if set -q out[2]
        printf '%s\n' $out[2..-1]
    end
end
complete -c {{NAME}} -f -a '(__{{FN}}_complete)'
`
	default:
		return Usagef("completion: unknown shell %q; want bash, zsh or fish", shell)
	}
	_, err := io.WriteString(w, strings.NewReplacer("{{NAME}}", p.Name, "{{FN}}", fn).Replace(script))
	return err
}
