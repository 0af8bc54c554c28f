package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// writeJSON writes v indented, with a final newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// cmdReports prints the anonymous report counters with small counts hidden.
func cmdReports(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "reports", Args: "[PRODUCT]", Synopsis: "print the anonymous report counters, small counts hidden",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			k := fs.Int("k", 0, "hide counts below K (default: report_k from uptrust.json; cannot be lower)")
			asJSON := fs.Bool("json", false, "print JSON")
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) > 1 {
					return usagef("reports: at most one PRODUCT")
				}
				if *k < 0 {
					return usagef("reports: --k must be positive")
				}
				product := ""
				if len(pos) == 1 {
					product = pos[0]
				}
				if c, err := rf.client(); err != nil || c != nil {
					if err != nil {
						return err
					}
					q := url.Values{}
					if product != "" {
						q.Set("product", product)
					}
					if *k != 0 {
						q.Set("k", strconv.Itoa(*k))
					}
					var sum project.ReportSummary
					if _, err := c.get(ctx, "/reports", q, &sum); err != nil {
						return err
					}
					return printReports(env, sum, *asJSON)
				}
				p, err := openProject(ctx, env, *dir)
				if err != nil {
					return err
				}
				defer p.Close()
				sum, err := p.Reports(ctx, product, *k)
				if err != nil {
					return err
				}
				return printReports(env, sum, *asJSON)
			}
		}}
}

func printReports(env Env, sum project.ReportSummary, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, sum)
	}
	fmt.Fprintf(env.Stdout, "anonymous update reports of the last %s, per release, outcome and error class\n", sum.Retention)
	fmt.Fprintf(env.Stdout, "counts below %d are shown as \"fewer than %d\"\n\n", sum.K, sum.K)
	if len(sum.Rows) == 0 {
		fmt.Fprintln(env.Stdout, "no reports")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tVERSION\tOUTCOME\tERROR CLASS\tREPORTS")
	for _, r := range sum.Rows {
		class := r.ErrorClass
		if class == "" {
			class = "-"
		}
		count := fmt.Sprintf("fewer than %d", r.FewerThan)
		if r.Count != nil {
			count = strconv.FormatInt(*r.Count, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Product, r.Version, r.Outcome, class, count)
	}
	return tw.Flush()
}

// cmdPurge applies the configured retention once.
func cmdPurge(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "purge", Synopsis: "apply the retention of uptrust.json once",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("purge takes no arguments")
				}
				p, err := openProject(ctx, env, *dir)
				if err != nil {
					return err
				}
				defer p.Close()
				res, err := p.Purge(ctx)
				for _, t := range res.Tables {
					fmt.Fprintf(env.Stdout, "%s: removed %d rows older than %s (retention %s)\n",
						t.Table, t.Rows, t.Before.Format(time.RFC3339), t.Period)
				}
				if res.Uploads > 0 {
					fmt.Fprintf(env.Stdout, "unfinished uploads: removed %d not continued for %s\n", res.Uploads, project.Period(project.UnfinishedUploadAge))
				}
				if res.Nonces > 0 {
					fmt.Fprintf(env.Stdout, "%s: removed %d whose signature window closed\n", store.TableDeviceNonces, res.Nonces)
				}
				return err
			}
		}}
}

// purgeEvery is how often uptrust serve applies the retention.
const purgeEvery = time.Hour

// purgeLoop applies the project's retention now and then every interval
// until ctx ends, logging what each run removed. Errors are logged and the
// loop goes on: a failed purge is retried at the next tick.
func purgeLoop(ctx context.Context, p *project.Project, logger *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		res, err := p.Purge(ctx)
		if err != nil && ctx.Err() == nil {
			logger.Error("retention purge failed; retrying at the next run", "err", err)
		}
		if res.Uploads > 0 {
			logger.Info("removed unfinished uploads", "uploads", res.Uploads)
		}
		if res.Nonces > 0 {
			logger.Info("removed expired device nonces", "nonces", res.Nonces)
		}
		if res.Rows() > 0 {
			attrs := []any{"rows", res.Rows()}
			for _, tb := range res.Tables {
				attrs = append(attrs, tb.Table, tb.Rows)
			}
			logger.Info("retention purge", attrs...)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cmdPrivacy prints the privacy report.
func cmdPrivacy(env Env) *cmdline.Command {
	report := &cmdline.Command{Name: "report", Synopsis: "say what the server stores about devices, for how long and why, from the live database schema",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("privacy report takes no arguments")
				}
				return runPrivacyReport(ctx, env, *dir, *asJSON)
			}
		}}
	return &cmdline.Command{Name: "privacy", Synopsis: "report what the project stores about devices", Sub: []*cmdline.Command{report}}
}

func runPrivacyReport(ctx context.Context, env Env, dir string, asJSON bool) error {
	p, err := openProject(ctx, env, dir)
	if err != nil {
		return err
	}
	defer p.Close()
	r, err := p.PrivacyReport(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env.Stdout, r)
	}
	return writePrivacyReport(env.Stdout, r)
}

func writePrivacyReport(w io.Writer, r *project.PrivacyReport) error {
	var b strings.Builder
	yesNo := func(v bool) string {
		if v {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(&b, "uptrust privacy report, generated %s\n", r.Generated.Format(time.RFC3339))
	fmt.Fprintf(&b, "from the live schema of %s and the project's uptrust.json\n\n", r.Database)
	fmt.Fprintf(&b, "Mode: %s. Devices have no identity on this server.\n\n", r.Mode)

	b.WriteString("WHAT DEVICES SEND\n")
	fmt.Fprintf(&b, "  Reading updates: %s.\n", r.DeviceRequests)
	b.WriteString("  After an update attempt, one anonymous report with exactly these fields:\n")
	for _, f := range r.DeviceReport {
		fmt.Fprintf(&b, "    %-12s %s\n", f.Name, f.Description)
	}
	b.WriteString("  The server adds the report to a daily counter per release, outcome and error class and keeps nothing else of it.\n\n")

	b.WriteString("CLIENT ADDRESSES\n")
	fmt.Fprintf(&b, "  Stored: %s. Logged: %s.\n", yesNo(r.ClientAddressesStored), yesNo(r.ClientAddressesLogged))
	fmt.Fprintf(&b, "  %s.\n\n", r.ClientAddresses)

	b.WriteString("RATE LIMITING\n")
	fmt.Fprintf(&b, "  %s.\n\n", r.RateLimit)

	b.WriteString("WHAT THE SERVER STORES, FOR HOW LONG, AND WHY\n")
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "  table %s\n", t.Name)
		fmt.Fprintf(&b, "    why:  %s\n", orNone(t.Purpose))
		fmt.Fprintf(&b, "    retention: %s\n", t.Kept)
		b.WriteString("    columns:\n")
		for _, c := range t.Columns {
			fmt.Fprintf(&b, "      %s (%s): %s\n", c.Name, orNone(c.Type), orNone(c.Purpose))
		}
	}
	b.WriteString("\n")

	b.WriteString("WHAT OPERATORS SEE\n")
	fmt.Fprintf(&b, "  uptrust reports sums the counters over the retained days and shows every count below %d as \"fewer than %d\" (report_k in uptrust.json).\n\n", r.ReportK, r.ReportK)

	b.WriteString("WHAT THE SERVER LOGS\n")
	for _, l := range r.ServerLogs {
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	b.WriteString("\nNOT COVERED BY THIS REPORT\n")
	for _, l := range r.NotCovered {
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(not stated in the schema)"
	}
	return s
}
