package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/units"
)

// The owner's commands. They change state.json only (under the agent's
// state lock) and apply from the next check; none touches the network.

const timeFormat = "2006-01-02 15:04 MST"

// parseArgs parses flags placed before, between or after positional
// arguments ("consent 2.0.0 --yes") and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// busy tells the owner why a command waits.
func busy(env Env) func() {
	return func() { fmt.Fprintln(env.Stderr, "waiting for the agent to finish its current step...") }
}

func consent(ctx context.Context, cfg *agent.Config, args []string, env Env) error {
	fs := flag.NewFlagSet("consent", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	yes := fs.Bool("yes", false, "consent without asking")
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "usage: uptrust-agent consent VERSION [--yes]") }
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	version := pos[0]
	w, err := agent.WaitingRelease(cfg.DataDir, version)
	if err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	showWaiting(env.Stdout, cfg.Product, w)
	if !*yes {
		fmt.Fprintf(env.Stdout, "Install %s? [y/N] ", version)
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("consent: reading the answer: %w", err)
		}
		fmt.Fprintln(env.Stdout)
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return fmt.Errorf("consent: not given; %s keeps waiting", version)
		}
	}
	if err := agent.Consent(ctx, cfg.DataDir, version, env.Now(), busy(env)); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	fmt.Fprintf(env.Stdout, "consent to %s recorded; it installs at the next check (uptrust-agent check runs one now)\n", version)
	return nil
}

// showWaiting prints what the owner needs to decide: why the release
// waits, its impact, notes and the vulnerabilities it fixes.
func showWaiting(w io.Writer, product string, r *agent.Waiting) {
	fmt.Fprintf(w, "%s %s (%s release) is waiting since %s\n", product, r.Version, r.Kind, r.Since.UTC().Format(timeFormat))
	fmt.Fprintf(w, "why:      %s\n", r.Reason)
	if r.SecurityOnlyOf != "" {
		fmt.Fprintf(w, "build:    security-only build of %s (its security fixes without its other changes)\n", r.SecurityOnlyOf)
	}
	if len(r.ImpactReasons) == 0 {
		fmt.Fprintln(w, "impact:   no more data collection, no new data recipients, no removed functions (as declared by the maker)")
	}
	for _, reason := range r.ImpactReasons {
		fmt.Fprintf(w, "impact:   %s\n", reason)
	}
	if r.Notes != "" {
		fmt.Fprintln(w, "notes:")
		for _, l := range strings.Split(strings.TrimRight(r.Notes, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	for _, a := range r.Advisories {
		if a.Summary != "" {
			fmt.Fprintf(w, "fixes:    %s: %s\n", a.ID, a.Summary)
		} else {
			fmt.Fprintf(w, "fixes:    %s\n", a.ID)
		}
	}
}

func postpone(ctx context.Context, cfg *agent.Config, args []string, env Env) error {
	fs := flag.NewFlagSet("postpone", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cancel := fs.Bool("cancel", false, "end the postponement")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: uptrust-agent postpone DURATION (e.g. 72h or 7d) | uptrust-agent postpone --cancel")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *cancel {
		if len(pos) != 0 {
			fs.Usage()
			return errUsage
		}
		was, err := agent.CancelPostpone(ctx, cfg.DataDir, env.Now(), busy(env))
		if err != nil {
			return fmt.Errorf("postpone: %w", err)
		}
		if !was {
			fmt.Fprintln(env.Stdout, "no postponement was in force")
			return nil
		}
		fmt.Fprintln(env.Stdout, "postponement cancelled; automatic updates apply again from the next check")
		return nil
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	d, err := units.ParseDuration(pos[0])
	if err != nil {
		return fmt.Errorf("postpone: %w", err)
	}
	until, err := agent.Postpone(ctx, cfg.DataDir, d, env.Now(), busy(env))
	if err != nil {
		return fmt.Errorf("postpone: %w", err)
	}
	fmt.Fprintf(env.Stdout, "automatic updates postponed until %s; a release you consent to (uptrust-agent consent VERSION) still installs\n",
		until.UTC().Format(timeFormat))
	return nil
}

func policy(ctx context.Context, cfg *agent.Config, args []string, env Env) error {
	usage := func() { fmt.Fprintln(env.Stderr, "usage: uptrust-agent policy [auto-updates off|on]") }
	switch {
	case len(args) == 0:
		return showPolicy(cfg, env)
	case len(args) == 2 && args[0] == "auto-updates" && (args[1] == "on" || args[1] == "off"):
	default:
		usage()
		return errUsage
	}
	on := args[1] == "on"
	changed, err := agent.SetAutoUpdates(ctx, cfg.DataDir, on, env.Now(), busy(env))
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	switch {
	case !changed:
		fmt.Fprintf(env.Stdout, "automatic updates are %s already\n", args[1])
	case on:
		fmt.Fprintln(env.Stdout, "automatic updates are on again; offered releases install under the maker's policy from the next check")
	default:
		fmt.Fprintln(env.Stdout, "automatic updates are off: security fixes are no longer installed by themselves; "+
			"install a release with uptrust-agent consent VERSION, turn them on with uptrust-agent policy auto-updates on")
	}
	return nil
}

func showPolicy(cfg *agent.Config, env Env) error {
	s, err := agent.LoadState(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	w := env.Stdout
	pol := s.Support.EffectivePolicy()
	origin := "from the maker's signed support declaration"
	if s.Support == nil || s.Support.Policy == nil {
		origin = "the default; the maker's support declaration sets none"
	}
	var ks []string
	for _, k := range pol.AutoInstall {
		ks = append(ks, string(k))
	}
	fmt.Fprintf(w, "maker's policy:   automatic install of %s releases without adverse impact; postponing allowed up to %d days (%s)\n",
		orNone(strings.Join(ks, ", ")), pol.MaxPostponeDays, origin)
	if off := s.Owner.AutoUpdatesOffSince; off != nil {
		fmt.Fprintf(w, "auto-updates:     off since %s (owner's choice)\n", off.UTC().Format(timeFormat))
	} else {
		fmt.Fprintln(w, "auto-updates:     on")
	}
	if u := s.Owner.PostponedUntil; u != nil && env.Now().Before(*u) {
		fmt.Fprintf(w, "postponed until:  %s\n", u.UTC().Format(timeFormat))
	}
	for _, c := range s.Owner.History {
		line := c.Action
		if c.Version != "" {
			line += " " + c.Version
		}
		if c.Until != nil {
			line += " until " + c.Until.UTC().Format(timeFormat)
		}
		fmt.Fprintf(w, "history:          %s %s\n", c.At.UTC().Format(timeFormat), line)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no"
	}
	return s
}
