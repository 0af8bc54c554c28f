// Package cli is the command line of uptrust-agent: provision, check, run,
// status, and the owner's commands consent, postpone and policy. It only
// wires flags to package agent; help, completion, man pages, version and
// exit codes come from package cmdline.
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
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/progress"
	"github.com/uptrust/uptrust/internal/release"
)

// The exit codes of uptrust-agent beyond 0 (success: up to date, or a
// release installed and committed), 1 (error: the server unreachable, a TLS
// failure, a missing trusted root, a config that does not load) and 2
// (usage). check derives them from the check record (agent.Check) of the
// cycle it ran.
const (
	// ExitRefused: the offered release was refused, it failed verification
	// (signature, hash, expiry, rollback, hardware, manifest) and was not
	// installed; agent.Check.Action "rejected".
	ExitRefused = 4
	// ExitWaitingForOwner: a release waits for the owner (consent,
	// automatic updates off, postponed); agent.Check.Action "waiting" with
	// releases held in state.json.
	ExitWaitingForOwner = 5
	// ExitRebooting: the reboot command ran, into a release written to
	// the other slot or back from one that failed its trial; the check
	// after the restart commits it or records the rollback.
	ExitRebooting = 6
	// ExitRolledBack: this check found that the release on trial failed
	// (boot, health check) and recorded its rollback; the device runs the
	// previous release and will not retry the failed one.
	ExitRolledBack = 7
	// ExitEnrolmentPending: managed mode; the device is enrolled and waits
	// for the server to accept it; no update check ran (agent.Check.Action
	// "pending").
	ExitEnrolmentPending = 8
	// ExitDeviceRefused: managed mode; the server rejected or
	// decommissioned this device; the agent does not update
	// (agent.Check.Action "refused").
	ExitDeviceRefused = 9
)

var exitCodes = []cmdline.ExitCode{
	{Code: cmdline.ExitOK, Meaning: "success; check: up to date, nothing offered to this device yet, or a release installed and committed"},
	{Code: cmdline.ExitFail, Meaning: "error: the server unreachable, a TLS failure, a missing trusted root, a config that does not load, an install that failed"},
	{Code: ExitRefused, Meaning: "check: the offered release was refused, it failed verification (signature, hash, expiry, rollback, hardware) and was not installed"},
	{Code: ExitWaitingForOwner, Meaning: "check: a release waits for the owner (consent, automatic updates off, postponed); see uptrust-agent status"},
	{Code: ExitRebooting, Meaning: "check: the device is restarting, into a release written to the other slot or back from one that failed its trial; the next check commits it or records the rollback"},
	{Code: ExitRolledBack, Meaning: "check: the release on trial failed (boot, health check) and was rolled back; the previous release runs"},
	{Code: ExitEnrolmentPending, Meaning: "check, managed mode: the device is enrolled and waits for the server to accept it; no update check ran"},
	{Code: ExitDeviceRefused, Meaning: "check, managed mode: the server rejected or decommissioned this device; the agent does not update"},
}

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
	// Version is what `uptrust-agent version` prints.
	Version cmdline.Version
}

// DefaultEnv is the process environment.
func DefaultEnv() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Now: time.Now, Version: cmdline.ReadVersion("", "")}
}

// DefaultConfig is where the agent's config file is when --config is not
// given.
const DefaultConfig = "/etc/uptrust/agent.json"

// Main runs the command line and returns the exit status (see Program).
func Main(ctx context.Context, args []string, env Env) int {
	return Program(env).Main(ctx, args)
}

// Program is uptrust-agent's command tree. The config file is read by the
// commands that need it, so help, version and completion work without one.
func Program(env Env) *cmdline.Program {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	c := &commands{env: env, cfgPath: DefaultConfig}
	return &cmdline.Program{
		Name:     "uptrust-agent",
		Synopsis: "keep this device's firmware updated",
		Long: `The owner's choices: consent installs a waiting release, postpone holds automatic
updates within the maker's limit, policy shows or changes them. They change
state.json only and apply from the next check.`,
		Global:    func(fs *flag.FlagSet) { c.configFlag(fs) },
		Commands:  c.list(),
		ExitCodes: exitCodes,
		Version:   env.Version,
		Stdout:    env.Stdout,
		Stderr:    env.Stderr,
	}
}

// commands holds what the commands share: the environment and the config
// path, which --config sets before or after the command name.
type commands struct {
	env     Env
	cfgPath string
}

func (c *commands) configFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.cfgPath, "config", c.cfgPath, "agent config `file`")
}

// config loads the config file --config names.
func (c *commands) config() (*agent.Config, error) { return agent.LoadConfig(c.cfgPath) }

func (c *commands) logger() *slog.Logger { return slog.New(slog.NewTextHandler(c.env.Stderr, nil)) }

// cmd makes a command that reads the config; flags defines its own flags
// and returns what runs with the config loaded.
// (Commands check their arguments before they load it: a usage error is
// one with or without a config.)
func (c *commands) cmd(name, args, synopsis string, flags func(fs *flag.FlagSet) cmdline.RunFunc) *cmdline.Command {
	return &cmdline.Command{Name: name, Args: args, Synopsis: synopsis,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			c.configFlag(fs)
			return flags(fs)
		}}
}

func noArgs(name string, pos []string) error {
	if len(pos) != 0 {
		return cmdline.Usagef("%s takes no arguments", name)
	}
	return nil
}

func (c *commands) list() []*cmdline.Command {
	env := c.env
	return []*cmdline.Command{
		c.cmd("provision", "", "record the factory firmware in the booted slot (run once, before the first check)",
			func(fs *flag.FlagSet) cmdline.RunFunc {
				version := fs.String("version", "", "factory firmware `version` in the booted slot (required)")
				sv := fs.Uint64("security-version", 0, "security version of the factory firmware")
				factory := fs.String("factory-image", "", "file backend: image to install in slot A of a new device directory")
				bootLimit := fs.Int("boot-limit", 0, "file backend: boots of a new release before the simulated bootloader falls back (default 3)")
				return func(ctx context.Context, pos []string) error {
					if err := noArgs("provision", pos); err != nil {
						return err
					}
					if *version == "" {
						return cmdline.Usagef("provision: --version is required")
					}
					if err := release.ValidVersion(*version); err != nil {
						return cmdline.Usagef("provision: --version %q: %v", *version, err)
					}
					cfg, err := c.config()
					if err != nil {
						return err
					}
					return agent.ProvisionDevice(cfg, agent.ProvisionSpec{Version: *version, SecurityVersion: *sv,
						FactoryImage: *factory, BootLimit: *bootLimit}, c.logger())
				}
			}),
		c.cmd("check", "", "run one update cycle; the exit status says how it ended",
			func(fs *flag.FlagSet) cmdline.RunFunc {
				return func(ctx context.Context, pos []string) error {
					if err := noArgs("check", pos); err != nil {
						return err
					}
					cfg, err := c.config()
					if err != nil {
						return err
					}
					return check(ctx, cfg, c.logger(), env, progress.ForWriter(env.Stderr, false))
				}
			}),
		c.cmd("run", "", "check at jittered intervals until stopped",
			func(fs *flag.FlagSet) cmdline.RunFunc {
				return func(ctx context.Context, pos []string) error {
					if err := noArgs("run", pos); err != nil {
						return err
					}
					cfg, err := c.config()
					if err != nil {
						return err
					}
					return run(ctx, cfg, c.logger(), env)
				}
			}),
		c.cmd("status", "", "what runs, what is offered, what waits, and why",
			func(fs *flag.FlagSet) cmdline.RunFunc {
				asJSON := fs.Bool("json", false, "print JSON (agent.Status: the fields of state.json and the last check)")
				return func(ctx context.Context, pos []string) error {
					if err := noArgs("status", pos); err != nil {
						return err
					}
					cfg, err := c.config()
					if err != nil {
						return err
					}
					return status(ctx, cfg, *asJSON, c.logger(), env)
				}
			}),
		c.cmd("consent", "VERSION", "show a waiting release, then install it from the next check",
			func(fs *flag.FlagSet) cmdline.RunFunc {
				yes := fs.Bool("yes", false, "consent without asking")
				return func(ctx context.Context, pos []string) error {
					if len(pos) != 1 {
						return cmdline.Usagef("consent: want one VERSION")
					}
					cfg, err := c.config()
					if err != nil {
						return err
					}
					return consent(ctx, cfg, pos[0], *yes, env)
				}
			}),
		c.cmd("postpone", "DURATION", "hold automatic updates for e.g. 72h or 7d (within the maker's limit); --cancel ends it",
			func(fs *flag.FlagSet) cmdline.RunFunc {
				cancel := fs.Bool("cancel", false, "end the postponement")
				return func(ctx context.Context, pos []string) error {
					if *cancel && len(pos) != 0 || !*cancel && len(pos) != 1 {
						return cmdline.Usagef("postpone: want DURATION (e.g. 72h or 7d), or --cancel")
					}
					cfg, err := c.config()
					if err != nil {
						return err
					}
					if *cancel {
						return cancelPostpone(ctx, cfg, env)
					}
					return postpone(ctx, cfg, pos[0], env)
				}
			}),
		c.cmd("policy", "[auto-updates off|on]", "show the maker's policy and the owner's choices, or turn automatic updates off or on",
			func(fs *flag.FlagSet) cmdline.RunFunc {
				asJSON := fs.Bool("json", false, "print JSON (see README, \"JSON output\")")
				return func(ctx context.Context, pos []string) error {
					if len(pos) != 0 && !(len(pos) == 2 && pos[0] == "auto-updates" && (pos[1] == "on" || pos[1] == "off")) {
						return cmdline.Usagef("policy: want no arguments, or auto-updates off|on")
					}
					cfg, err := c.config()
					if err != nil {
						return err
					}
					return policy(ctx, cfg, pos, *asJSON, env)
				}
			}),
	}
}

// provision refuses a slot configuration that would overwrite the running
// system (agent.OpenSlots) before it writes anything.
func check(ctx context.Context, cfg *agent.Config, log *slog.Logger, env Env, bar *progress.Bar) error {
	stdout := env.Stdout
	built, err := binaryBuildTime(env.BuildTime)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, agent.Options{Logger: log, BuildTime: built, Progress: bar, AgentVersion: env.Version.Version})
	if err != nil {
		return err
	}
	failedBefore := failedVersions(cfg.DataDir)
	chk, err := a.Check(ctx)
	if chk != nil {
		fmt.Fprintf(stdout, "%s: %s\n", chk.Action, chk.Reason)
	}
	if errors.Is(err, agent.ErrRebooting) {
		return &cmdline.ExitError{Code: ExitRebooting}
	}
	if err != nil {
		return err
	}
	s, err := agent.LoadState(cfg.DataDir)
	if err != nil {
		return err
	}
	rolledBack := false
	for v := range s.Failed {
		if !failedBefore[v] {
			rolledBack = true
		}
	}
	if code := checkExit(chk, len(s.Waiting) > 0, rolledBack); code != cmdline.ExitOK {
		return &cmdline.ExitError{Code: code}
	}
	return nil
}

// failedVersions are the releases state.json records as failed (rolled
// back) on this device; none when it cannot be read (the check says why).
func failedVersions(dataDir string) map[string]bool {
	out := map[string]bool{}
	if s, err := agent.LoadState(dataDir); err == nil {
		for v := range s.Failed {
			out[v] = true
		}
	}
	return out
}

// checkExit is the exit status of a check that returned chk without an
// error; ownerWaits tells whether releases wait for the owner, rolledBack
// whether the check recorded the rollback of the release on trial.
func checkExit(chk *agent.Check, ownerWaits, rolledBack bool) int {
	if chk == nil {
		return cmdline.ExitOK
	}
	switch chk.Action {
	case "none", "waiting", "installed":
		if rolledBack {
			return ExitRolledBack
		}
	}
	switch chk.Action {
	case "rejected":
		return ExitRefused
	case agent.ActionPending:
		return ExitEnrolmentPending
	case agent.ActionRefused:
		return ExitDeviceRefused
	case "error", "failed":
		return cmdline.ExitFail
	case "rebooting":
		return ExitRebooting
	case "waiting":
		if ownerWaits {
			return ExitWaitingForOwner
		}
	}
	return cmdline.ExitOK
}

func run(ctx context.Context, cfg *agent.Config, log *slog.Logger, env Env) error {
	built, err := binaryBuildTime(env.BuildTime)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(cfg, agent.Options{Logger: log, BuildTime: built, AgentVersion: env.Version.Version})
	if err != nil {
		return err
	}
	err = a.Run(ctx)
	if errors.Is(err, agent.ErrRebooting) {
		return nil
	}
	return err
}

func status(ctx context.Context, cfg *agent.Config, asJSON bool, log *slog.Logger, env Env) error {
	stdout := env.Stdout
	slots, err := agent.OpenSlots(cfg.Slot, log)
	if err != nil {
		return err
	}
	st, err := agent.ReadStatus(ctx, cfg, slots, env.Now())
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	st.WriteText(stdout)
	return nil
}
