// Package cli is the command line of uptrust-agent: provision, check, run,
// status, and the owner's commands consent, postpone and policy. It only
// wires flags to package agent.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/progress"
)

const usage = `uptrust-agent keeps this device's firmware updated.

usage:
  uptrust-agent [--config FILE] provision --version V --security-version N
  uptrust-agent [--config FILE] check           one update cycle
  uptrust-agent [--config FILE] run             check at jittered intervals
  uptrust-agent [--config FILE] status [--json] what runs, what is offered, what waits, and why

the owner's choices:
  uptrust-agent consent VERSION [--yes]         show a waiting release, then install it from the next check
  uptrust-agent postpone DURATION               hold automatic updates for e.g. 72h or 7d (within the maker's limit)
  uptrust-agent postpone --cancel               end a postponement
  uptrust-agent policy                          show the maker's policy and the owner's choices
  uptrust-agent policy auto-updates off|on      turn automatic updates off or back on

The config file defaults to /etc/uptrust/agent.json.
`

// Env is what a command line runs against.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Now tells the time for the owner's commands and status.
	Now func() time.Time
	// BuildTime is the agent's build time as linked into the binary
	// (-ldflags "-X main.buildTime=2026-12-07T13:00:00Z"), RFC 3339; empty:
	// the commit time the Go toolchain stamped, if any (see buildTime).
	BuildTime string
}

// DefaultEnv is the process environment.
func DefaultEnv() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Now: time.Now}
}

// Main runs the command line and returns the exit status: 0 success, 1
// failure or refusal, 2 usage error.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	stdout, stderr := env.Stdout, env.Stderr
	fs := flag.NewFlagSet("uptrust-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := fs.String("config", "/etc/uptrust/agent.json", "agent config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	cfg, err := agent.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "uptrust-agent:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch cmd {
	case "provision":
		err = provision(cfg, rest, log, stderr)
	case "check":
		err = check(ctx, cfg, log, stdout, env.BuildTime, progress.ForWriter(stderr, false))
	case "run":
		err = run(ctx, cfg, log, env.BuildTime)
	case "status":
		err = status(ctx, cfg, rest, log, env)
	case "consent":
		err = consent(ctx, cfg, rest, env)
	case "postpone":
		err = postpone(ctx, cfg, rest, env)
	case "policy":
		err = policy(ctx, cfg, rest, env)
	default:
		fmt.Fprintf(stderr, "uptrust-agent: unknown command %q\n\n", cmd)
		fs.Usage()
		return 2
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "uptrust-agent:", err)
		return 1
	}
	return 0
}

// errUsage is a usage error already explained on stderr.
var errUsage = errors.New("usage")

// provision refuses a slot configuration that would overwrite the running
// system (agent.OpenSlots) before it writes anything.
func provision(cfg *agent.Config, args []string, log *slog.Logger, stderr io.Writer) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "factory firmware version in the booted slot")
	sv := fs.Uint64("security-version", 0, "security version of the factory firmware")
	factory := fs.String("factory-image", "", "file backend: image to install in slot A of a new device directory")
	bootLimit := fs.Int("boot-limit", 0, "file backend: boots of a new release before the simulated bootloader falls back (default 3)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return agent.ProvisionDevice(cfg, agent.ProvisionSpec{Version: *version, SecurityVersion: *sv, FactoryImage: *factory, BootLimit: *bootLimit}, log)
}

func check(ctx context.Context, cfg *agent.Config, log *slog.Logger, stdout io.Writer, linked string, bar *progress.Bar) error {
	built, err := binaryBuildTime(linked)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, agent.Options{Logger: log, BuildTime: built, Progress: bar})
	if err != nil {
		return err
	}
	chk, err := a.Check(ctx)
	if chk != nil {
		fmt.Fprintf(stdout, "%s: %s\n", chk.Action, chk.Reason)
	}
	if errors.Is(err, agent.ErrRebooting) {
		return nil
	}
	return err
}

func run(ctx context.Context, cfg *agent.Config, log *slog.Logger, linked string) error {
	built, err := binaryBuildTime(linked)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(cfg, agent.Options{Logger: log, BuildTime: built})
	if err != nil {
		return err
	}
	err = a.Run(ctx)
	if errors.Is(err, agent.ErrRebooting) {
		return nil
	}
	return err
}

func status(ctx context.Context, cfg *agent.Config, args []string, log *slog.Logger, env Env) error {
	stdout := env.Stdout
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	slots, err := agent.OpenSlots(cfg.Slot, log)
	if err != nil {
		return err
	}
	st, err := agent.ReadStatus(ctx, cfg, slots, env.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	st.WriteText(stdout)
	return nil
}
