package cli

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// ExitAuditBroken is uptrust's exit status when `uptrust audit verify`
// finds the audit chain broken: a result, told apart from a failure to
// read the log (1).
const ExitAuditBroken = 4

// AuditEntryJSON is one entry of `uptrust audit --json`: the management
// API's entry, so --server prints what --dir prints.
type AuditEntryJSON = api.AuditEntry

// cmdAudit prints the audit log, filtered; `audit verify` checks its chain.
func cmdAudit(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "audit", Synopsis: "print the audit log, filtered; verify its hash chain",
		Long: `Prints the audit log oldest first: every management action with who did it
(a token's name and role, or cli for the operator working on the project
directory), its outcome (ok, refused, failed) and the API request id.

--since and --until take a time (2026-03-01T12:00:00Z), a UTC day
(2026-03-01), or a period before now (7d, 36h). --limit N keeps the N newest
matching entries.

With --server (or $UPTRUST_SERVER) the entries come from a running server's
management API, with the same filters and the same output; that needs an
admin or auditor token.`,
		Sub: []*cmdline.Command{cmdAuditVerify(env)},
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			action := fs.String("action", "", "only entries of this `action`, such as rollout.change")
			object := fs.String("object", "", "only entries about this `object`, such as thermostat/1.1.0")
			actor := fs.String("actor", "", "only entries by this `actor`: a token name, or cli")
			outcome := fs.String("outcome", "", "only entries with this `outcome`: ok, refused or failed")
			since := fs.String("since", "", "only entries at or after `when`")
			until := fs.String("until", "", "only entries before `when`")
			limit := fs.Int("limit", 0, "print at most `N` entries, the newest")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("audit takes no arguments (did you mean audit verify?)")
				}
				if *limit < 0 {
					return usagef("--limit %d: want a positive number", *limit)
				}
				f := store.AuditFilter{Action: *action, Object: *object, Actor: *actor, Outcome: *outcome}
				now := time.Now()
				var err error
				if f.Since, err = parseWhen("--since", *since, now); err != nil {
					return err
				}
				if f.Until, err = parseWhen("--until", *until, now); err != nil {
					return err
				}
				if *limit > 0 {
					f.Limit, f.Newest = *limit, true
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]AuditEntryJSON, error) {
					return remoteAudit(ctx, c, f)
				}, func(p *project.Project) ([]AuditEntryJSON, error) {
					es, err := p.AuditQuery(ctx, f)
					if err != nil {
						return nil, err
					}
					out := make([]AuditEntryJSON, len(es))
					for i, e := range es {
						out[i] = api.AuditEntryOf(e)
					}
					return out, nil
				})
				if err != nil {
					return err
				}
				if f.Newest { // print oldest first
					slices.Reverse(out)
				}
				if *asJSON {
					return writeJSON(env.Stdout, out)
				}
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tOUTCOME\tACTION\tOBJECT\tREQUEST\tDETAIL")
				for _, e := range out {
					who := e.Actor
					if e.Role != "" {
						who += " (" + e.Role + ")"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), who, e.Outcome,
						e.Action, e.Object, orDash(e.RequestID), e.Detail)
				}
				return tw.Flush()
			}
		}}
}

// remoteAudit reads the entries f selects from the management API,
// following its cursors; with f.Newest, newest first as the store gives
// them.
func remoteAudit(ctx context.Context, c *apiClient, f store.AuditFilter) ([]AuditEntryJSON, error) {
	q := url.Values{}
	for k, v := range map[string]string{"action": f.Action, "object": f.Object, "actor": f.Actor, "outcome": f.Outcome} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if !f.Newest {
		return listAll[AuditEntryJSON](ctx, c, "/audit", q)
	}
	q.Set("newest", "true")
	out := []AuditEntryJSON{}
	for len(out) < f.Limit {
		q.Set("limit", strconv.Itoa(min(f.Limit-len(out), api.MaxLimit)))
		var page api.Page[AuditEntryJSON]
		if _, err := c.get(ctx, "/audit", q, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			break
		}
		q.Set("cursor", page.Next)
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads a --since or --until value; "" is no bound.
func parseWhen(flagName, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if per, err := project.ParsePeriod(s); err == nil && per > 0 {
		return now.Add(-time.Duration(per)), nil
	}
	return time.Time{}, usagef("%s %q: want a time such as 2026-03-01T12:00:00Z, a day such as 2026-03-01, or a period before now such as 7d or 36h", flagName, s)
}

func cmdAuditVerify(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "verify", Synopsis: "check that the audit log's hash chain is intact",
		Long: fmt.Sprintf(`Walks the audit log's hash chain from its anchor (the last entry a retention
purge removed, or the start) to its head (the last entry appended) and says
whether it is intact, or the first place it is broken: an entry edited, an
entry missing, an entry inserted, or a link that does not match.

Exits 0 when the chain is intact and %d when it is broken. The head's
sequence number and hash are printed: record them elsewhere now and then, so
that even someone able to rewrite the whole database cannot do it unseen.`, ExitAuditBroken),
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("audit verify takes no arguments")
				}
				v, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (store.AuditVerification, error) {
					return apiGet[store.AuditVerification](ctx, c, "/audit/verify")
				}, func(p *project.Project) (store.AuditVerification, error) {
					return p.VerifyAudit(ctx)
				})
				if err != nil {
					return err
				}
				if err := printJSONOr(env, *asJSON, v, writeVerification); err != nil {
					return err
				}
				if !v.Intact {
					return &cmdline.ExitError{Code: ExitAuditBroken,
						Err: fmt.Errorf("audit log broken at seq %d (%s)", v.Break.Seq, v.Break.Kind)}
				}
				return nil
			}
		}}
}

func writeVerification(env Env, v store.AuditVerification) error {
	var b strings.Builder
	if v.Intact {
		if v.Entries == 0 {
			fmt.Fprintf(&b, "intact: 0 entries")
		} else {
			fmt.Fprintf(&b, "intact: %d entries from seq %d to %d", v.Entries, v.FirstSeq, v.LastSeq)
		}
	} else {
		fmt.Fprintf(&b, "BROKEN at seq %d (%s): %s\n", v.Break.Seq, v.Break.Kind, v.Break.Reason)
		fmt.Fprintf(&b, "checked: %d entries stored, seq %d to %d", v.Entries, v.FirstSeq, v.LastSeq)
	}
	b.WriteString("\n")
	if v.AnchorSeq > 0 {
		fmt.Fprintf(&b, "anchor: seq %d hash %s (the last entry removed by retention; verification starts after it)\n", v.AnchorSeq, v.AnchorHash)
	}
	fmt.Fprintf(&b, "head:   seq %d hash %s\n", v.HeadSeq, v.HeadHash)
	if v.LegacySeq > 0 {
		fmt.Fprintf(&b, "note: entries up to seq %d were written before the log was a hash chain; they were chained when the database was upgraded, so the chain shows they have not changed since then\n", v.LegacySeq)
	}
	_, err := fmt.Fprint(env.Stdout, b.String())
	return err
}
