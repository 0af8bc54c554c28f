// Package cli is the command line of uptrust: one function per subcommand,
// explicit wiring, no global state.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
)

// ExitShallNotMet is uptrust's exit status when `uptrust compliance` finds
// a "shall" provision not met: a result, not an error of the tool, so CI
// can gate a release on it. Commands return it as a *cmdline.ExitError.
const ExitShallNotMet = 3

// Env is what commands may touch of the outside world.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Prompt reads a passphrase from the terminal; nil means there is none.
	Prompt func(prompt string) ([]byte, error)
	// Version is what `uptrust version` prints.
	Version cmdline.Version

	// global holds --server and --token given before the command; set by
	// Program.
	global *globalRemote
}

// DefaultEnv is the process environment.
func DefaultEnv() Env {
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Prompt: terminalPrompt,
		Version: cmdline.ReadVersion("", "")}
}

// Main runs a command line and returns the exit status (see Program).
func Main(ctx context.Context, args []string, env Env) int {
	if msg := checkGlobalRemote(args); msg != "" {
		if env.Stderr == nil {
			env.Stderr = io.Discard
		}
		fmt.Fprintf(env.Stderr, "uptrust: %s\n", msg)
		return cmdline.ExitUsage
	}
	return Program(env).Main(ctx, args)
}

// Program is uptrust's command tree: every command, its flags and help,
// from which cmdline derives help, completion and man pages.
func Program(env Env) *cmdline.Program {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	env.global = &globalRemote{}
	return &cmdline.Program{
		Global:   env.global.define,
		Name:     "uptrust",
		Synopsis: "publish signed firmware releases and serve them to devices",
		Long: `Every command that uses a project takes --dir DIR (default $UPTRUST_DIR, else
the current directory). Commands that read print a table, or JSON with --json.`,
		Commands: []*cmdline.Command{
			cmdInit(env), cmdProduct(env), cmdRelease(env), cmdRollout(env), cmdKeys(env), cmdRoot(env),
			cmdCompliance(env), cmdServe(env), cmdMigrate(env), cmdBlobs(env), cmdServerKit(env), cmdPush(env), cmdPull(env), cmdMirror(env), cmdReports(env), cmdPrivacy(env),
			cmdPurge(env), cmdAudit(env), cmdToken(env), cmdSettings(env), cmdEnrollmentToken(env), cmdDevice(env), cmdDemo(env), cmdSim(env), cmdSimulateDevice(env), cmdSimulateBoot(env),
		},
		ExitCodes: []cmdline.ExitCode{
			{Code: ExitShallNotMet, Meaning: "compliance: a \"shall\" provision is not met (uptrust compliance)"},
			{Code: ExitAuditBroken, Meaning: "audit verify: the audit log's hash chain is broken"},
		},
		Environment: []string{
			"UPTRUST_DIR: the project directory when --dir is not given",
			"UPTRUST_DATABASE: postgres:// URL of the project's PostgreSQL database, overriding uptrust.json's database (--database overrides it)",
			"UPTRUST_SERVER, UPTRUST_TOKEN: the management API and token for the commands that take --server (else ~/.config/uptrust/client.json)",
			"UPTRUST_CLIENT_CONFIG: the client configuration file instead of $XDG_CONFIG_HOME/uptrust/client.json",
			"UPTRUST_PASSPHRASE: the passphrase of the offline keys (else a prompt on the terminal)",
			"UPTRUST_NEW_PASSPHRASE: the new passphrase for keys passphrase (else a prompt)",
			"UPTRUST_PASSPHRASE_<HOLDER>: a root key holder's passphrase (upper case, characters other than letters and digits as _; else a prompt naming them)",
			"UPTRUST_BLOBS: the payload store when --blobs is not given (s3://BUCKET?endpoint=URL)",
			"AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: the credentials of the --blobs bucket",
		},
		Version: env.Version,
		Stdout:  env.Stdout,
		Stderr:  env.Stderr,
	}
}

func usagef(format string, args ...any) error { return cmdline.Usagef(format, args...) }

// dirFlag defines the common --dir flag.
func dirFlag(fs *flag.FlagSet, env Env) *string {
	def := env.Getenv("UPTRUST_DIR")
	if def == "" {
		def = "."
	}
	return fs.String("dir", def, "project `directory`; $UPTRUST_DIR when set")
}

// jsonFlag defines the common --json flag.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print JSON instead of text (fields: see README, \"JSON output\")")
}

// passphrase returns the offline-key passphrase from UPTRUST_PASSPHRASE or
// the terminal.
func passphrase(env Env, confirm bool) func() ([]byte, error) {
	return func() ([]byte, error) {
		if p := env.Getenv("UPTRUST_PASSPHRASE"); p != "" {
			return []byte(p), nil
		}
		if env.Prompt == nil {
			return nil, errors.New("offline keys are encrypted: set UPTRUST_PASSPHRASE (no terminal to ask on)")
		}
		p, err := env.Prompt("Passphrase for offline keys: ")
		if err != nil {
			return nil, err
		}
		if confirm {
			again, err := env.Prompt("Repeat passphrase: ")
			if err != nil {
				return nil, err
			}
			if string(again) != string(p) {
				return nil, errors.New("the passphrases differ")
			}
		}
		return p, nil
	}
}

func terminalPrompt(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errors.New("offline keys are encrypted: set UPTRUST_PASSPHRASE (no terminal to ask on)")
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	p, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	return p, nil
}

func openProject(ctx context.Context, env Env, dir string) (*project.Project, error) {
	return openProjectDB(ctx, env, dir, env.Getenv(DatabaseEnv))
}

// openProjectDB opens the project in dir with its store in the PostgreSQL
// database dsn, or where uptrust.json says when dsn is "".
func openProjectDB(ctx context.Context, env Env, dir, dsn string) (*project.Project, error) {
	return openProjectStores(ctx, env, dir, dsn, "")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
