// Package cli is the command line of uptrust-agent: provision, check, run
// and status. It only wires flags to package agent.
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
	"syscall"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
)

const usage = `uptrust-agent keeps this device's firmware updated.

usage:
  uptrust-agent [--config FILE] provision --version V --security-version N
  uptrust-agent [--config FILE] check           one update cycle
  uptrust-agent [--config FILE] run             check at jittered intervals
  uptrust-agent [--config FILE] status [--json] what runs, what is offered, and why

The config file defaults to /etc/uptrust/agent.json.
`

// Main runs the command line and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
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
		err = provision(cfg, rest, stderr)
	case "check":
		err = check(ctx, cfg, log, stdout)
	case "run":
		err = run(ctx, cfg, log)
	case "status":
		err = status(ctx, cfg, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "uptrust-agent: unknown command %q\n\n", cmd)
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "uptrust-agent:", err)
		return 1
	}
	return 0
}

func provision(cfg *agent.Config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "factory firmware version in the booted slot")
	sv := fs.Uint64("security-version", 0, "security version of the factory firmware")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" {
		return errors.New("provision: --version is required")
	}
	return agent.Provision(cfg.DataDir, *version, *sv)
}

func check(ctx context.Context, cfg *agent.Config, log *slog.Logger, stdout io.Writer) error {
	a, err := agent.New(cfg, agent.Options{Logger: log})
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

func run(ctx context.Context, cfg *agent.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(cfg, agent.Options{Logger: log})
	if err != nil {
		return err
	}
	err = a.Run(ctx)
	if errors.Is(err, agent.ErrRebooting) {
		return nil
	}
	return err
}

func status(ctx context.Context, cfg *agent.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	slots, err := agent.OpenSlots(cfg.Slot)
	if err != nil {
		return err
	}
	st, err := agent.ReadStatus(ctx, cfg, slots, time.Now())
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
