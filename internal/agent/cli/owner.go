package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/units"
)

// The owner's commands. They change state.json only (under the agent's
// state lock) and apply from the next check; none touches the network.

const timeFormat = "2006-01-02 15:04 MST"

// busy tells the owner why a command waits.
func busy(env Env) func() {
	return func() { fmt.Fprintln(env.Stderr, "waiting for the agent to finish its current step...") }
}

func consent(ctx context.Context, cfg *agent.Config, version string, yes bool, env Env) error {
	w, err := agent.WaitingRelease(cfg.DataDir, version)
	if err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	showWaiting(env.Stdout, cfg.Product, w)
	if !yes {
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

func cancelPostpone(ctx context.Context, cfg *agent.Config, env Env) error {
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

func postpone(ctx context.Context, cfg *agent.Config, duration string, env Env) error {
	d, err := units.ParseDuration(duration)
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

func policy(ctx context.Context, cfg *agent.Config, args []string, asJSON bool, env Env) error {
	switch {
	case len(args) == 0:
		return showPolicy(cfg, env, asJSON)
	case len(args) == 2 && args[0] == "auto-updates" && (args[1] == "on" || args[1] == "off"):
	default:
		return cmdline.Usagef("policy: want no arguments, or auto-updates off|on")
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

// PolicyJSON is `uptrust-agent policy --json`: the maker's policy the
// device applies and the owner's choices within it.
type PolicyJSON struct {
	// AutoInstall are the release kinds the maker lets install without
	// the owner's action (when without adverse impact).
	AutoInstall     []string `json:"auto_install"`
	MaxPostponeDays int      `json:"max_postpone_days"`
	// PolicySource is "declaration" (the maker's signed support
	// declaration) or "default" (it sets none).
	PolicySource string `json:"policy_source"`
	AutoUpdates  bool   `json:"auto_updates"`
	// AutoUpdatesOffSince is set while the owner has them off.
	AutoUpdatesOffSince *time.Time `json:"auto_updates_off_since"`
	// PostponedUntil is set while a postponement is in force.
	PostponedUntil *time.Time `json:"postponed_until"`
	// History is the owner's decisions, oldest first.
	History []agent.OwnerChange `json:"history"`
}

func showPolicy(cfg *agent.Config, env Env, asJSON bool) error {
	s, err := agent.LoadState(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	w := env.Stdout
	pol := s.Support.EffectivePolicy()
	if asJSON {
		out := PolicyJSON{AutoInstall: []string{}, MaxPostponeDays: pol.MaxPostponeDays, PolicySource: "declaration",
			AutoUpdates: s.Owner.AutoUpdatesOffSince == nil, AutoUpdatesOffSince: s.Owner.AutoUpdatesOffSince,
			History: append([]agent.OwnerChange{}, s.Owner.History...)}
		if s.Support == nil || s.Support.Policy == nil {
			out.PolicySource = "default"
		}
		for _, k := range pol.AutoInstall {
			out.AutoInstall = append(out.AutoInstall, string(k))
		}
		if u := s.Owner.PostponedUntil; u != nil && env.Now().Before(*u) {
			out.PostponedUntil = u
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
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
