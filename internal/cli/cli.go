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

	"github.com/uptrust/uptrust/internal/project"
)

const usage = `uptrust publishes signed firmware releases and serves them to devices.

usage:
  uptrust init [--dir DIR] [--dev] [--key-holders NAME,NAME,NAME [--root-threshold N]]
  uptrust product add NAME --hardware REV[,REV] --support-until YYYY-MM-DD [--model M] [--contact C]
        [--auto-install security,fix,feature] [--max-postpone-days N]
  uptrust product list | show PRODUCT
  uptrust product support extend PRODUCT --until YYYY-MM-DD
  uptrust product policy PRODUCT [--auto-install KINDS] [--max-postpone-days N]
  uptrust release add PRODUCT VERSION FILE --kind security|fix|feature --security-version N
                      [--notes FILE] [--hardware REV[,REV]] [--advisory ID:SUMMARY]...
                      [--data-collection more|less|none --data-collection-text T]
                      [--new-recipient NAME... --new-recipients-text T]
                      [--functionality more|less|none --functionality-text T]
                      [--security-only] [--security-only-of FEATURE-VERSION]
  uptrust release list [PRODUCT]
  uptrust rollout start PRODUCT VERSION --percent P
  uptrust rollout set-percent PRODUCT P
  uptrust rollout halt PRODUCT | resume PRODUCT
  uptrust rollout list
  uptrust keys migrate | passphrase [--holder NAME]
  uptrust root propose release|fleet [--rotate HOLDER,..] [--add-holder NAME,..] [--remove-holder HOLDER,..]
                       [--threshold N]
  uptrust root sign --holder NAME [--key FILE]... [PROPOSAL-FILE]
  uptrust root status [SIGNED-COPY...] | publish [SIGNED-COPY...]
  uptrust compliance PRODUCT [--json]
  uptrust keys migrate | passphrase
  uptrust compliance PRODUCT [--json]     (exit 3 when a shall provision is not met)
  uptrust compliance attest PRODUCT ITEM --url URL --note TEXT [--by NAME]
  uptrust compliance withdraw PRODUCT ITEM | attestations PRODUCT [--json]
  uptrust compliance market PRODUCT [--placed-on YYYY-MM-DD --expected-use 7y [--justification T]]
  uptrust serve [--listen 127.0.0.1:8080] [--tls-cert FILE --tls-key FILE] [--insecure-http]
                [--max-conns N] [--idle-timeout 5s] [--read-header-timeout 10s]
  uptrust mirror export DIR [--copy]
  uptrust mirror sync DIR [--grace 24h] [--verify] [--copy]
  uptrust reports [PRODUCT] [--k N] [--json]
  uptrust privacy report [--json]
  uptrust purge
  uptrust audit [--json]
  uptrust demo [--devices N] [--json]
  uptrust simulate-device DEVICE-DIR --product P --hardware H --factory FILE --version V
                      [--security-version N] [--server URL] [--reboot-command CMD]
  uptrust simulate-boot DEVICE-DIR

Every command takes --dir DIR (default $UPTRUST_DIR, else the current
directory). Offline keys are decrypted with $UPTRUST_PASSPHRASE, or a prompt;
keys passphrase takes the new one from $UPTRUST_NEW_PASSPHRASE, or a prompt.
A root key holder's passphrase comes from $UPTRUST_PASSPHRASE_<HOLDER> (upper
case, other characters than letters and digits as _), or a prompt naming them.
`

// Env is what commands may touch of the outside world.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Prompt reads a passphrase from the terminal; nil means there is none.
	Prompt func(prompt string) ([]byte, error)
}

// DefaultEnv is the process environment.
func DefaultEnv() Env {
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Prompt: terminalPrompt}
}

// Main runs a command line and returns the exit status.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "init":
		err = cmdInit(ctx, env, args[1:])
	case "product":
		err = cmdProduct(ctx, env, args[1:])
	case "release":
		err = cmdRelease(ctx, env, args[1:])
	case "rollout":
		err = cmdRollout(ctx, env, args[1:])
	case "keys":
		err = cmdKeys(ctx, env, args[1:])
	case "root":
		err = cmdRoot(ctx, env, args[1:])
	case "compliance":
		err = cmdCompliance(ctx, env, args[1:])
	case "serve":
		err = cmdServe(ctx, env, args[1:])
	case "mirror":
		err = cmdMirror(ctx, env, args[1:])
	case "reports":
		err = cmdReports(ctx, env, args[1:])
	case "privacy":
		err = cmdPrivacy(ctx, env, args[1:])
	case "purge":
		err = cmdPurge(ctx, env, args[1:])
	case "audit":
		err = cmdAudit(ctx, env, args[1:])
	case "demo":
		err = cmdDemo(ctx, env, args[1:])
	case "simulate-device":
		err = cmdSimulateDevice(ctx, env, args[1:])
	case "simulate-boot":
		err = cmdSimulateBoot(ctx, env, args[1:])
	default:
		fmt.Fprintf(env.Stderr, "uptrust: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	var xe exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &xe):
		fmt.Fprintln(env.Stderr, "uptrust:", err)
		return xe.code
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "uptrust: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintln(env.Stderr, "uptrust:", err)
		return 1
	}
}

// usageError is a command line that cannot be run.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// flags makes a flag set with the common --dir flag.
func flags(env Env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	def := env.Getenv("UPTRUST_DIR")
	if def == "" {
		def = "."
	}
	dir := fs.String("dir", def, "project directory")
	return fs, dir
}

// parse parses flags anywhere among positional arguments and returns the
// positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
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
	return project.Open(ctx, dir, project.Options{Passphrase: passphrase(env, false),
		Warn: func(s string) { fmt.Fprintln(env.Stderr, "uptrust: warning:", s) }})
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
