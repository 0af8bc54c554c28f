package main

// These tests run the real uptrust and uptrust-agent binaries, built once
// in TestMain with version and build time linked in as a release build
// would, and check what a user or a script sees: help for every command,
// completion in real shells, man pages that mandoc accepts, JSON output and
// the version.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/testbin"

	"github.com/uptrust/uptrust/internal/agent/slot/slottest"

	agentcli "github.com/uptrust/uptrust/internal/agent/cli"
	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/cmdline"
)

const (
	linkedVersion   = "9.8.7"
	linkedBuildTime = "2026-12-07T13:00:00Z"
)

var binDir string

func TestMain(m *testing.M) {
	testbin.Main(m, "-X main.version="+linkedVersion+" -X main.buildTime="+linkedBuildTime, &binDir)
}

type result = testbin.Result

// run runs a binary of binDir with PATH leading to binDir (the completion
// scripts call the binary by name) and no UPTRUST_ variables.
func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	return runIn(t, "", name, args...)
}

func runIn(t *testing.T, stdin, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	if name == "bash" || name == "zsh" || name == "fish" || name == "mandoc" {
		cmd = exec.Command(slottest.RequireTool(t, name, name), args...)
	}
	cmd.Env = append(testbin.CleanEnv(true), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader(stdin)
	return testbin.Run(t, cmd)
}

// program is a binary with its command tree.
type program struct {
	bin  string
	tree *cmdline.Program
}

func programs() []program {
	return []program{
		{"uptrust", cli.Program(cli.Env{Getenv: func(string) string { return "" }})},
		{"uptrust-agent", agentcli.Program(agentcli.Env{})},
	}
}

// commands lists every visible command that runs, with its flags.
func commands(p *cmdline.Program) map[string][]string {
	out := map[string][]string{}
	p.Walk(func(path []string, c *cmdline.Command) {
		if !c.Hidden {
			out[strings.Join(path, " ")] = cmdline.FlagNames(c)
		}
	})
	return out
}

// TestHelpListsEveryFlag: `BIN CMD --help`, `-h` and `BIN help CMD` exit
// 0 and list every flag the command defines (the flags it parses, read
// from the same definitions), and every command is in the global help.
func TestHelpListsEveryFlag(t *testing.T) {
	for _, p := range programs() {
		global := run(t, p.bin, "--help")
		if global.Code != 0 {
			t.Fatalf("%s --help: %v", p.bin, global)
		}
		cmds := commands(p.tree)
		if len(cmds) < 8 {
			t.Fatalf("%s: only %d commands in the tree", p.bin, len(cmds))
		}
		for path, flags := range cmds {
			if !strings.Contains(global.Stdout, "  "+path) {
				t.Errorf("%s --help does not list %q:\n%s", p.bin, path, global.Stdout)
			}
			words := strings.Fields(path)
			for _, args := range [][]string{append(slices.Clone(words), "--help"), append(slices.Clone(words), "-h"), append([]string{"help"}, words...)} {
				r := run(t, p.bin, args...)
				if r.Code != 0 || !strings.Contains(r.Stdout, "usage: "+p.bin+" "+path) {
					t.Errorf("%s %s: %v", p.bin, strings.Join(args, " "), r)
					continue
				}
				for _, f := range flags {
					if !strings.Contains(r.Stdout, "--"+f) {
						t.Errorf("%s %s does not list --%s:\n%s", p.bin, strings.Join(args, " "), f, r.Stdout)
					}
				}
			}
		}
	}
	// The flags the old global usage left out.
	r := run(t, "uptrust", "release", "add", "--help")
	for _, f := range []string{"--compress", "--zstd-frame", "--delta-from"} {
		if !strings.Contains(r.Stdout, f) {
			t.Errorf("uptrust release add --help leaves out %s", f)
		}
	}
	// A group's help lists its subcommands.
	r = run(t, "uptrust", "rollout", "--help")
	if r.Code != 0 {
		t.Fatalf("uptrust rollout --help: %v", r)
	}
	for _, sub := range []string{"start", "set-percent", "halt", "resume", "list"} {
		if !strings.Contains(r.Stdout, "  "+sub+" ") {
			t.Errorf("uptrust rollout --help does not list %s:\n%s", sub, r.Stdout)
		}
	}
}

// TestExitCodesInHelp: the global help of each binary states every exit
// code it uses.
func TestExitCodesInHelp(t *testing.T) {
	for bin, codes := range map[string][]int{
		"uptrust":       {0, 1, 2, cli.ExitShallNotMet},
		"uptrust-agent": {0, 1, 2, agentcli.ExitRefused, agentcli.ExitWaitingForOwner, agentcli.ExitRebooting, agentcli.ExitRolledBack},
	} {
		r := run(t, bin, "help")
		_, tail, ok := strings.Cut(r.Stdout, "exit status:\n")
		if r.Code != 0 || !ok {
			t.Fatalf("%s help: %v", bin, r)
		}
		for _, c := range codes {
			if !strings.Contains(tail, fmt.Sprintf("  %d  ", c)) {
				t.Errorf("%s help does not document exit code %d:\n%s", bin, c, tail)
			}
		}
	}
}

// TestUsageExitCodes: no command, an unknown command, an unknown flag or a
// missing subcommand exit 2 with usage on stderr.
func TestUsageExitCodes(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"rollout"}, {"rollout", "frobnicate", "x"}, {"audit", "--frobnicate"}, {"completion", "tcsh"}, {"help", "nope"}} {
		r := run(t, "uptrust", args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "usage") {
			t.Errorf("uptrust %v: %v; want exit 2 with usage", args, r)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"--frobnicate"}, {"check", "extra"}, {"consent"}, {"postpone", "--cancel", "3d"}, {"policy", "auto-updates", "maybe"}} {
		r := run(t, "uptrust-agent", append([]string{"--config", "/nonexistent/agent.json"}, args...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "usage") {
			t.Errorf("uptrust-agent %v: %v; want exit 2 with usage", args, r)
		}
	}
}

// TestVersion: --version and version print the linked version and build
// time and the Go version, as text and JSON; the agent's needs no config.
func TestVersion(t *testing.T) {
	for _, bin := range []string{"uptrust", "uptrust-agent"} {
		for _, args := range [][]string{{"--version"}, {"version"}, {"--config", "/nonexistent/agent.json", "version"}} {
			if bin == "uptrust" && args[0] == "--config" {
				continue
			}
			r := run(t, bin, args...)
			if r.Code != 0 || !strings.Contains(r.Stdout, "version:    "+linkedVersion) ||
				!strings.Contains(r.Stdout, "build time: "+linkedBuildTime) || !strings.Contains(r.Stdout, "go version: go1.") {
				t.Errorf("%s %v: %v", bin, args, r)
			}
		}
		r := run(t, bin, "version", "--json")
		var v map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || r.Code != 0 {
			t.Fatalf("%s version --json: %v; %v", bin, err, r)
		}
		if v["version"] != linkedVersion || v["build_time"] != linkedBuildTime || !strings.HasPrefix(fmt.Sprint(v["go_version"]), "go1.") {
			t.Errorf("%s version --json: %v", bin, v)
		}
		for _, k := range []string{"commit", "modified"} {
			if _, ok := v[k]; !ok {
				t.Errorf("%s version --json has no %q: %v", bin, k, v)
			}
		}
	}
}

// TestCompletionListsEveryFlag: __complete, which every completion script
// asks, offers every flag of every command, the subcommands of a group,
// and file names where a flag takes a value.
func TestCompletionListsEveryFlag(t *testing.T) {
	for _, p := range programs() {
		for path, flags := range commands(p.tree) {
			args := append(append([]string{"__complete"}, strings.Fields(path)...), "--")
			r := run(t, p.bin, args...)
			lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
			if r.Code != 0 || lines[0] != ":words" {
				t.Errorf("%s %v: %v", p.bin, args, r)
				continue
			}
			for _, f := range flags {
				if !slices.Contains(lines, "--"+f) {
					t.Errorf("%s %v does not offer --%s: %q", p.bin, args, f, lines)
				}
			}
		}
	}
	for _, tc := range []struct {
		bin  string
		args []string
		want []string
	}{
		{"uptrust", []string{"rol"}, []string{":words", "rollout"}},
		{"uptrust", []string{"rollout", ""}, []string{":words", "abort", "halt", "list", "pause", "resume", "set-percent", "start", "status"}},
		{"uptrust", []string{"release", "add", "--dir", "x", "--k"}, []string{":words", "--kind"}},
		{"uptrust", []string{"release", "add", "--notes", ""}, []string{":files"}},
		{"uptrust", []string{"completion", ""}, []string{":words", "bash", "fish", "zsh"}},
		{"uptrust-agent", []string{"--config", "a.json", "st"}, []string{":words", "status"}},
		{"uptrust-agent", []string{"--config", ""}, []string{":files"}},
	} {
		r := run(t, tc.bin, append([]string{"__complete"}, tc.args...)...)
		if got := strings.Split(strings.TrimSpace(r.Stdout), "\n"); !slices.Equal(got, tc.want) {
			t.Errorf("%s __complete %q: %q, want %q", tc.bin, tc.args, got, tc.want)
		}
	}
}

// script writes BIN completion SHELL to a file.
func script(t *testing.T, bin, shell string) string {
	t.Helper()
	r := run(t, bin, "completion", shell)
	if r.Code != 0 {
		t.Fatalf("%s completion %s: %v", bin, shell, r)
	}
	f := filepath.Join(t.TempDir(), bin+"."+shell)
	if err := os.WriteFile(f, []byte(r.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestBashCompletion sources the script in real bash and calls its
// completion function the way bash does, with COMP_WORDS and COMP_CWORD.
func TestBashCompletion(t *testing.T) {
	for _, tc := range []struct {
		bin, line, want string
	}{
		{"uptrust", "uptrust rol", "rollout"},
		{"uptrust", "uptrust rollout star", "start"},
		{"uptrust", "uptrust release add thermostat --delta", "--delta-from"},
		{"uptrust", "uptrust release add --notes main_t", "main_test.go"},
		{"uptrust-agent", "uptrust-agent --config /etc/a.json pol", "policy"},
		{"uptrust-agent", "uptrust-agent status --j", "--json"},
	} {
		f := script(t, tc.bin, "bash")
		fn := "_" + strings.ReplaceAll(tc.bin, "-", "_")
		prog := fmt.Sprintf(`source %q
COMP_WORDS=(%s)
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
%s
complete -p %s >/dev/null || exit 3
printf '%%s\n' "${COMPREPLY[@]}"`, f, tc.line, fn, tc.bin)
		r := runIn(t, "", "bash", "--norc", "--noprofile", "-c", prog)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != tc.want {
			t.Errorf("bash completion of %q: %v; want %q", tc.line, r, tc.want)
		}
	}
}

// TestZshCompletion checks the script's syntax with zsh -n, then runs its
// completion function in zsh with compadd and _files standing in for the
// completion system's (which needs a terminal).
func TestZshCompletion(t *testing.T) {
	for _, tc := range []struct {
		bin, line, want string
	}{
		{"uptrust", "uptrust rollout star", "start"},
		{"uptrust", "uptrust reports --", "--dir --help --json --k --server --token"},
		{"uptrust", "uptrust mirror export --dir ", "FILES"},
		{"uptrust-agent", "uptrust-agent co", "completion consent"},
	} {
		f := script(t, tc.bin, "zsh")
		if r := runIn(t, "", "zsh", "-n", f); r.Code != 0 {
			t.Fatalf("zsh -n %s completion: %v", tc.bin, r)
		}
		fn := "_" + strings.ReplaceAll(tc.bin, "-", "_")
		words := strings.Fields(tc.line)
		if strings.HasSuffix(tc.line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = fmt.Sprintf("%q", w)
		}
		prog := fmt.Sprintf(`compadd() { [[ $1 == -- ]] && shift; print -r -- "$*" }
_files() { print FILES }
source %q
words=(%s)
CURRENT=${#words}
%s`, f, strings.Join(quoted, " "), fn)
		r := runIn(t, "", "zsh", "-f", "-c", prog)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != tc.want {
			t.Errorf("zsh completion of %q: %v; want %q", tc.line, r, tc.want)
		}
	}
}

// TestFishCompletion checks the script with fish -n, then asks fish itself
// for completions (complete -C) with the script loaded.
func TestFishCompletion(t *testing.T) {
	for _, tc := range []struct {
		bin, line, want string
	}{
		{"uptrust", "uptrust rollout star", "start"},
		{"uptrust", "uptrust product show --j", "--json"},
		{"uptrust-agent", "uptrust-agent --config x.json sta", "status"},
	} {
		f := script(t, tc.bin, "fish")
		if r := runIn(t, "", "fish", "-n", f); r.Code != 0 {
			t.Fatalf("fish -n %s completion: %v", tc.bin, r)
		}
		r := runIn(t, "", "fish", "--no-config", "-c", fmt.Sprintf("source %q; complete -C %q", f, tc.line))
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != tc.want {
			t.Errorf("fish completion of %q: %v; want %q", tc.line, r, tc.want)
		}
	}
}

// TestManPages: `man DIR` writes a page per command and one for the
// program; mandoc -T lint accepts every one; each command's page lists
// every flag it defines; `man` alone prints the program's page.
func TestManPages(t *testing.T) {
	for _, p := range programs() {
		dir := t.TempDir()
		r := run(t, p.bin, "man", dir)
		if r.Code != 0 {
			t.Fatalf("%s man %s: %v", p.bin, dir, r)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.1"))
		cmds := commands(p.tree)
		if len(files) != len(cmds)+1 {
			t.Errorf("%s man: %d pages for %d commands: %v", p.bin, len(files), len(cmds), files)
		}
		lint := runIn(t, "", "mandoc", append([]string{"-T", "lint", "-W", "warning"}, files...)...)
		if lint.Code != 0 || lint.Stdout != "" {
			t.Errorf("mandoc -T lint on %s's pages: %v", p.bin, lint)
		}
		for path, flags := range cmds {
			page := filepath.Join(dir, p.bin+"-"+strings.ReplaceAll(path, " ", "-")+".1")
			b, err := os.ReadFile(page)
			if err != nil {
				t.Errorf("%s man: no page for %q: %v", p.bin, path, err)
				continue
			}
			for _, f := range flags {
				if !strings.Contains(string(b), `.B \-\-`+strings.ReplaceAll(f, "-", `\-`)) {
					t.Errorf("%s does not document --%s", page, f)
				}
			}
		}
		main := run(t, p.bin, "man")
		want, _ := os.ReadFile(filepath.Join(dir, p.bin+".1"))
		if main.Code != 0 || main.Stdout != string(want) || !strings.Contains(main.Stdout, ".SH EXIT STATUS") {
			t.Errorf("%s man (stdout) differs from %s.1 or lacks EXIT STATUS: %v", p.bin, p.bin, main)
		}
	}
}

// mustRun runs uptrust and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, "uptrust", args...)
	if r.Code != 0 {
		t.Fatalf("uptrust %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// jsonOf runs uptrust with --json and decodes its stdout.
func jsonOf(t *testing.T, args ...string) any {
	t.Helper()
	r := mustRun(t, append(args, "--json")...)
	var v any
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("uptrust %s --json: %v\n%s", strings.Join(args, " "), err, r.Stdout)
	}
	return v
}

// hasFields fails unless v is an object with every field (README, "JSON
// output").
func hasFields(t *testing.T, what string, v any, fields ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: not an object: %v", what, v)
	}
	for _, f := range fields {
		if _, ok := m[f]; !ok {
			t.Errorf("%s: no field %q in %v", what, f, m)
		}
	}
	return m
}

// TestJSONOutputs: every reading command of uptrust prints JSON that
// parses, with the documented snake_case fields and the project's values.
func TestJSONOutputs(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "image.bin")
	if err := os.WriteFile(img, bytes.Repeat([]byte("firmware "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "init", "--dev", "--dir", dir)
	mustRun(t, "product", "add", "thermostat", "--hardware", "rev-a,rev-b", "--support-until", "2031-12-31", "--contact", "security@example.com", "--dir", dir)
	mustRun(t, "release", "add", "thermostat", "1.1.0", img, "--kind", "fix", "--security-version", "2", "--dir", dir)
	mustRun(t, "rollout", "start", "thermostat", "1.1.0", "--percent", "25", "--dir", dir)

	products, _ := jsonOf(t, "product", "list", "--dir", dir).([]any)
	if len(products) != 1 {
		t.Fatalf("product list --json: %v", products)
	}
	pr := hasFields(t, "product list", products[0], "name", "model", "hardware", "created")
	if pr["name"] != "thermostat" || fmt.Sprint(pr["hardware"]) != "[rev-a rev-b]" {
		t.Errorf("product list --json: %v", pr)
	}
	show := hasFields(t, "product show", jsonOf(t, "product", "show", "thermostat", "--dir", dir),
		"product", "model", "hardware", "support_until", "contact", "auto_install", "max_postpone_days", "issued")
	if show["support_until"] != "2031-12-31" || show["contact"] != "security@example.com" || show["max_postpone_days"] != 30.0 {
		t.Errorf("product show --json: %v", show)
	}
	rels, _ := jsonOf(t, "release", "list", "--dir", dir).([]any)
	if len(rels) != 1 {
		t.Fatalf("release list --json: %v", rels)
	}
	rel := hasFields(t, "release list", rels[0], "product", "version", "kind", "security_version", "bytes", "sha256", "published", "offered")
	offered := hasFields(t, "release list offered", rel["offered"], "percent", "halted")
	if rel["version"] != "1.1.0" || rel["kind"] != "fix" || rel["security_version"] != 2.0 || rel["bytes"] != 9000.0 || offered["percent"] != 25.0 {
		t.Errorf("release list --json: %v", rel)
	}
	ros, _ := jsonOf(t, "rollout", "list", "--dir", dir).([]any)
	if len(ros) != 1 {
		t.Fatalf("rollout list --json: %v", ros)
	}
	ro := hasFields(t, "rollout list", ros[0], "product", "version", "percent", "halted", "started", "updated")
	if ro["version"] != "1.1.0" || ro["percent"] != 25.0 || ro["halted"] != false {
		t.Errorf("rollout list --json: %v", ro)
	}
	hasFields(t, "reports", jsonOf(t, "reports", "--dir", dir), "k", "retention", "counters")
	audit, _ := jsonOf(t, "audit", "--dir", dir).([]any)
	if len(audit) == 0 {
		t.Fatal("audit --json: empty")
	}
	for _, e := range audit {
		hasFields(t, "audit", e, "time", "action", "object", "detail")
	}
	hasFields(t, "privacy report", jsonOf(t, "privacy", "report", "--dir", dir),
		"generated", "mode", "database", "tables", "report_k", "device_report")
	// Empty lists are [], not null.
	empty := t.TempDir()
	mustRun(t, "init", "--dev", "--dir", empty)
	for _, args := range [][]string{{"product", "list"}, {"release", "list"}, {"rollout", "list"}} {
		if r := mustRun(t, append(args, "--dir", empty, "--json")...); strings.TrimSpace(r.Stdout) != "[]" {
			t.Errorf("uptrust %v --json on an empty project: %q, want []", args, r.Stdout)
		}
	}
}
