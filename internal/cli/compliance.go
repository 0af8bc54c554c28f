package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/compliance"
)

// cmdCompliance reports, per provision of ETSI EN 303 645 §5.3, the EU CRA
// and the UK PSTI, whether the product's current configuration meets it and
// why. It exits 0 whatever the verdicts: the report is the result.
func cmdCompliance(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "compliance", Args: "PRODUCT",
		Synopsis: "report, per provision of ETSI EN 303 645, the EU CRA and the UK PSTI, whether PRODUCT meets it",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := fs.Bool("json", false, "print one JSON object keyed by provision id")
			return func(ctx context.Context, pos []string) error { return runCompliance(ctx, env, *dir, *asJSON, pos) }
		}}
}

// runCompliance is uptrust compliance with its flags parsed.
func runCompliance(ctx context.Context, env Env, dir string, asJSON bool, pos []string) error {
	if len(pos) != 1 {
		return usagef("compliance: want exactly one PRODUCT")
	}
	p, err := openProject(ctx, env, dir)
	if err != nil {
		return err
	}
	defer p.Close()
	facts, err := compliance.Gather(ctx, p, pos[0])
	if err != nil {
		return err
	}
	results := compliance.Evaluate(facts)
	if asJSON {
		out := make(map[string]compliance.Result, len(results))
		for _, r := range results {
			out[r.ID] = r
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("compliance: %w", err)
		}
		fmt.Fprintln(env.Stderr, compliance.Summary(results))
		return nil
	}
	fmt.Fprintf(env.Stdout, "compliance of %s at %s\n\n", facts.Product, facts.Now.Format("2006-01-02 15:04 UTC"))
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPROVISION / EVIDENCE")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s (%s, %s)\n", r.ID, r.Status, r.Title, r.Source, r.Level)
		for _, e := range r.Evidence {
			fmt.Fprintf(tw, "\t\t- %s\n", e)
		}
		for _, w := range r.Warnings {
			fmt.Fprintf(tw, "\t\t! warning: %s\n", w)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("compliance: %w", err)
	}
	fmt.Fprintf(env.Stdout, "\n%s\n", compliance.Summary(results))
	return nil
}
