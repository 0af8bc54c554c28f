package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// SettingsJSON is `uptrust settings show --json`: the settings that may
// change while servers run, with the values in effect, and which of them
// were changed at run time (their value is in the database, shared by
// every server on it, rather than in uptrust.json).
type SettingsJSON struct {
	ReportK    int               `json:"report_k"`
	Retention  project.Retention `json:"retention"`
	Overridden []string          `json:"overridden"`
}

func settingsJSON(rs project.RuntimeSettings) SettingsJSON {
	return SettingsJSON{ReportK: rs.ReportK, Retention: rs.Retention, Overridden: slices.Clone(rs.Overridden)}
}

// settingsOfAPI converts the API's settings to what --dir prints.
func settingsOfAPI(s api.Settings) (SettingsJSON, error) {
	out := SettingsJSON{ReportK: s.ReportK, Overridden: s.Overridden}
	if out.Overridden == nil {
		out.Overridden = []string{}
	}
	for table, dst := range map[string]*project.Period{store.TableReportCounts: &out.Retention.ReportCounts,
		store.TableAudit: &out.Retention.Audit, store.TableTokens: &out.Retention.Tokens,
		store.TableDeviceEvents: &out.Retention.DeviceEvents} {
		per, err := project.ParsePeriod(s.Retention[table])
		if err != nil {
			return out, fmt.Errorf("server: settings: retention of %s: %w", table, err)
		}
		*dst = per
	}
	return out, nil
}

// value is the text of setting name, as the API and the audit log write it.
func (s SettingsJSON) value(name string) string {
	if name == project.SettingReportK {
		return strconv.Itoa(s.ReportK)
	}
	per, _ := s.Retention.Period(strings.TrimPrefix(name, "retention."))
	return per.String()
}

func printSettings(env Env, s SettingsJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, s)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for _, n := range project.SettingNames {
		from := "uptrust.json"
		if slices.Contains(s.Overridden, n) {
			from = "database (uptrust settings set)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n, s.value(n), from)
	}
	return tw.Flush()
}

func cmdSettings(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "settings", Synopsis: "show and change the settings that may change while servers run",
		Long: `report_k (the smallest report count shown exactly) and the retention periods
may change while servers run. uptrust.json holds their defaults; a change made
with uptrust settings set is kept in the database, so every server on it
applies it at once, and wins over uptrust.json. Every change is recorded in the
audit log (settings.change, old -> new). Against a server (--server) it needs
an admin token.`,
		Sub: []*cmdline.Command{cmdSettingsShow(env), cmdSettingsSet(env)}}
}

func cmdSettingsShow(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "show", Synopsis: "print report_k and the retention periods in effect, and where each comes from",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("settings show takes no arguments")
				}
				s, _, err := readSettings(ctx, env, rf, *dir)
				if err != nil {
					return err
				}
				return printSettings(env, s, *asJSON)
			}
		}}
}

// readSettings reads the settings in effect and, from a server, their ETag.
func readSettings(ctx context.Context, env Env, rf *remoteFlags, dir string) (SettingsJSON, string, error) {
	if c, err := rf.client(); err != nil {
		return SettingsJSON{}, "", err
	} else if c != nil {
		var s api.Settings
		h, err := c.get(ctx, "/settings", nil, &s)
		if err != nil {
			return SettingsJSON{}, "", err
		}
		out, err := settingsOfAPI(s)
		return out, h.Get("ETag"), err
	}
	p, err := openProject(ctx, env, dir)
	if err != nil {
		return SettingsJSON{}, "", err
	}
	defer p.Close()
	rs, err := p.Runtime(ctx)
	return settingsJSON(rs), rs.ETag, err
}

func cmdSettingsSet(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "set", Synopsis: "change report_k or retention periods for every server on the database",
		Long: `Give the settings to change; "default" goes back to the value in uptrust.json.
Prints each named setting as old -> new. Against a server, the change is sent
with the ETag of the settings as read, so a change someone made in between is
refused rather than overwritten.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			flags := map[string]*string{
				project.SettingReportK:               fs.String("report-k", "", "smallest report `count` shown exactly (at least 1), or default"),
				project.SettingRetentionReportCounts: fs.String("retention-report-counts", "", "how long daily report counters are kept: a `period` such as 400d, or default"),
				project.SettingRetentionAudit:        fs.String("retention-audit", "", "how long audit entries are kept: a `period` such as 730d, or default"),
				project.SettingRetentionTokens:       fs.String("retention-tokens", "", "how long revoked or expired tokens are kept: a `period` such as 730d, or default"),
				project.SettingRetentionDeviceEvents: fs.String("retention-device-events", "", "how long device update events are kept: a `period` such as 180d, or default"),
			}
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("settings set takes no arguments; give the settings as flags")
				}
				change := map[string]string{}
				fs.Visit(func(f *flag.Flag) {
					for n := range flags {
						if f.Name == strings.ReplaceAll(strings.ReplaceAll(n, ".", "-"), "_", "-") {
							v := f.Value.String()
							if v == "default" {
								v = ""
							}
							change[n] = v
						}
					}
				})
				if len(change) == 0 {
					return usagef("settings set needs at least one of --report-k, --retention-report-counts, --retention-audit, --retention-tokens")
				}
				before, after, err := changeSettings(ctx, env, rf, *dir, change)
				if err != nil {
					return err
				}
				for _, n := range project.SettingNames {
					if _, ok := change[n]; !ok {
						continue
					}
					from := ""
					if !slices.Contains(after.Overridden, n) {
						from = " (uptrust.json)"
					}
					fmt.Fprintf(env.Stdout, "%s: %s -> %s%s\n", n, before.value(n), after.value(n), from)
				}
				return nil
			}
		}}
}

// changeSettings applies change on the project directory or through the
// server, and returns the settings before and after.
func changeSettings(ctx context.Context, env Env, rf *remoteFlags, dir string, change map[string]string) (before, after SettingsJSON, err error) {
	c, err := rf.client()
	if err != nil {
		return before, after, err
	}
	if c == nil {
		p, err := openProject(ctx, env, dir)
		if err != nil {
			return before, after, err
		}
		defer p.Close()
		b, a, err := p.ChangeSettings(ctx, change, "")
		if err != nil {
			return before, after, err
		}
		return settingsJSON(b), settingsJSON(a), nil
	}
	before, etag, err := readSettings(ctx, env, rf, dir)
	if err != nil {
		return before, after, err
	}
	patch := map[string]any{}
	ret := map[string]any{}
	for n, v := range change {
		var val any
		if v != "" {
			val = v
		}
		if n == project.SettingReportK {
			if v != "" {
				k, err := strconv.Atoi(v)
				if err != nil {
					return before, after, usagef("--report-k %q: want a whole number of at least 1, or default", v)
				}
				val = k
			}
			patch["report_k"] = val
			continue
		}
		ret[strings.TrimPrefix(n, "retention.")] = val
	}
	if len(ret) > 0 {
		patch["retention"] = ret
	}
	var s api.Settings
	if _, err := c.do(ctx, http.MethodPatch, "/settings", nil, patch, map[string]string{"If-Match": etag}, &s); err != nil {
		return before, after, err
	}
	after, err = settingsOfAPI(s)
	return before, after, err
}
