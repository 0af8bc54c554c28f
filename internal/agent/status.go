package agent

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/agent/slot"
)

// Status is what `uptrust-agent status` shows the owner.
type Status struct {
	Product            string             `json:"product"`
	Hardware           string             `json:"hardware"`
	Version            string             `json:"version"`
	SecurityVersion    uint64             `json:"security_version"`
	MaxSecurityVersion uint64             `json:"max_security_version"`
	BootedSlot         slot.Name          `json:"booted_slot,omitempty"`
	Phase              Phase              `json:"phase"`
	Installing         string             `json:"installing,omitempty"`
	LastCheck          *Check             `json:"last_check,omitempty"`
	SupportUntil       string             `json:"support_until,omitempty"`
	Failed             map[string]Failure `json:"failed,omitempty"`
	QueuedReports      int                `json:"queued_reports"`
	Warnings           []string           `json:"warnings,omitempty"`
}

// ReadStatus assembles the status from state.json and the bootloader. It
// does not touch the network.
func ReadStatus(ctx context.Context, cfg *Config, slots slot.Backend, now time.Time) (*Status, error) {
	s, err := LoadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	st := &Status{Product: cfg.Product, Hardware: cfg.Hardware, Version: s.Version, SecurityVersion: s.SecurityVersion,
		MaxSecurityVersion: s.MaxSecurityVersion, Phase: s.Phase, LastCheck: s.LastCheck, Failed: s.Failed}
	if slots != nil {
		if bs, err := slots.State(ctx); err == nil {
			st.BootedSlot = bs.Booted
		} else {
			st.Warnings = append(st.Warnings, "cannot read the bootloader state: "+err.Error())
		}
	}
	if s.Pending != nil {
		st.Installing = s.Pending.Version
	}
	if s.Support != nil {
		st.SupportUntil = s.Support.Until
		if t, err := time.Parse(time.DateOnly, s.Support.Until); err == nil && now.After(t.Add(24*time.Hour)) {
			st.Warnings = append(st.Warnings, fmt.Sprintf("security support for this device ended on %s", s.Support.Until))
		}
	}
	q := &reportQueue{dir: reportsDir(cfg)}
	if files, err := q.pending(); err == nil {
		st.QueuedReports = len(files)
	}
	if s.LastCheck == nil {
		st.Warnings = append(st.Warnings, "no update check has run yet")
	} else if now.Sub(s.LastCheck.At) > 3*time.Duration(cfg.PollInterval) {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the last update check was %s ago", now.Sub(s.LastCheck.At).Round(time.Minute)))
	}
	return st, nil
}

// WriteText prints the status for a person.
func (st *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "product:          %s (hardware %s)\n", st.Product, st.Hardware)
	fmt.Fprintf(w, "running:          %s (security version %d) in slot %s\n", st.Version, st.SecurityVersion, orDash(string(st.BootedSlot)))
	if st.SupportUntil != "" {
		fmt.Fprintf(w, "supported until:  %s\n", st.SupportUntil)
	}
	if st.Installing != "" {
		fmt.Fprintf(w, "installing:       %s (step: %s)\n", st.Installing, st.Phase)
	}
	if c := st.LastCheck; c != nil {
		fmt.Fprintf(w, "last check:       %s\n", c.At.Format(time.RFC3339))
		fmt.Fprintf(w, "offered:          %s\n", orDash(c.Offered))
		fmt.Fprintf(w, "decision:         %s\n", c.Action)
		fmt.Fprintf(w, "why:              %s\n", c.Reason)
		if c.ErrorClass != "" {
			fmt.Fprintf(w, "error class:      %s\n", c.ErrorClass)
		}
	}
	if len(st.Failed) > 0 {
		var vs []string
		for v := range st.Failed {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		for _, v := range vs {
			f := st.Failed[v]
			fmt.Fprintf(w, "failed release:   %s (%s) %s\n", v, f.ErrorClass, f.Reason)
		}
	}
	fmt.Fprintf(w, "queued reports:   %d\n", st.QueuedReports)
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "WARNING:          %s\n", warn)
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func reportsDir(cfg *Config) string { return cfg.DataDir + "/reports" }
