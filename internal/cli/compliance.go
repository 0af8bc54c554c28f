package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/compliance"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// cmdCompliance reports, per provision of ETSI EN 303 645 §5.3, the EU CRA
// and the UK PSTI, what can be shown about the product and why. The report
// is printed in full whatever the verdicts; the command then exits
// ExitShallNotMet when a shall provision is not met, so CI can gate on it.
// Its subcommands record what the report cannot compute: attestations of
// facts outside uptrust and the market declaration.
func cmdCompliance(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "compliance", Args: "PRODUCT",
		Synopsis: "self-assess PRODUCT against ETSI EN 303 645 §5.3, the EU CRA and the UK PSTI (exit 3 when a shall is not met)",
		Long: `Verdicts: met (computed from the project, evidence shown), not met, not yet
demonstrable (nothing to judge yet), attested (a fact outside uptrust the
manufacturer recorded with compliance attest; never shown as met) and not
applicable (with the reason). This is a self-assessment, not a conformity
assessment. A product named like a subcommand is reached with --product.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := fs.Bool("json", false, "print the report as one JSON object, provisions in report order")
			product := fs.String("product", "", "the product (instead of the PRODUCT argument)")
			return func(ctx context.Context, pos []string) error {
				if *product != "" {
					pos = append([]string{*product}, pos...)
				}
				if len(pos) != 1 {
					return usagef("compliance: want exactly one PRODUCT")
				}
				return complianceReport(ctx, env, rf, *dir, pos[0], *asJSON)
			}
		},
		Sub: []*cmdline.Command{cmdComplianceAttest(env), cmdComplianceWithdraw(env),
			cmdComplianceAttestations(env), cmdComplianceMarket(env)}}
}

// complianceReport prints the report of product in the project at dir and
// returns a *cmdline.ExitError with ExitShallNotMet when a shall is not met.
func complianceReport(ctx context.Context, env Env, rf *remoteFlags, dir, product string, asJSON bool) error {
	rep, err := localOrRemote(ctx, env, rf, dir, func(c *apiClient) (compliance.Report, error) {
		return apiGet[compliance.Report](ctx, c, "/products/"+url.PathEscape(product)+"/compliance")
	}, func(p *project.Project) (compliance.Report, error) {
		facts, err := compliance.Gather(ctx, p, product)
		if err != nil {
			return compliance.Report{}, err
		}
		return compliance.NewReport(facts), nil
	})
	if err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(env.Stdout, rep); err != nil {
			return fmt.Errorf("compliance: %w", err)
		}
		fmt.Fprintln(env.Stderr, compliance.Summary(rep.Provisions))
	} else if err := rep.WriteText(env.Stdout); err != nil {
		return err
	}
	if len(rep.ShallsNotMet) > 0 {
		return &cmdline.ExitError{Code: ExitShallNotMet, Err: fmt.Errorf("compliance: %d shall provisions of %s not met: %s",
			len(rep.ShallsNotMet), rep.Product, strings.Join(rep.ShallsNotMet, ", "))}
	}
	return nil
}

// cmdComplianceAttest records an attestation:
// compliance attest PRODUCT ITEM --url URL --note TEXT [--by NAME].
func cmdComplianceAttest(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "attest", Args: "PRODUCT ITEM",
		Synopsis: "record the manufacturer's attestation of a fact outside uptrust (shown as attested, never as met)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			url := fs.String("url", "", "where the evidence is published (required)")
			note := fs.String("note", "", "what the evidence shows (required)")
			by := fs.String("by", "", "who attests, as you choose to name them (a role or team is enough)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 2 {
					return usagef("compliance attest: want PRODUCT ITEM")
				}
				if *url == "" || *note == "" {
					return usagef("compliance attest: --url and --note are required: where the evidence is published and what it shows")
				}
				return complianceAttest(ctx, env, rf, *dir, project.AttestSpec{Product: pos[0], Item: pos[1], URL: *url, Note: *note, By: *by})
			}
		}}
}

// complianceAttest records an attestation in the project at dir.
func complianceAttest(ctx context.Context, env Env, rf *remoteFlags, dir string, s project.AttestSpec) error {
	a, err := localOrRemote(ctx, env, rf, dir, func(c *apiClient) (AttestationJSON, error) {
		body := api.AttestationCreate{Item: s.Item, URL: s.URL, Note: s.Note, By: s.By}
		return apiSend[AttestationJSON](ctx, c, http.MethodPost, "/products/"+url.PathEscape(s.Product)+"/attestations", body)
	}, func(p *project.Project) (AttestationJSON, error) {
		att, err := compliance.Attest(ctx, p, s)
		if err != nil {
			return AttestationJSON{}, err
		}
		return api.AttestationOf(att), nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "attested %s of %s at %s: %s (%s)\n", a.Item, s.Product, a.Time.Format(time.RFC3339), a.Note, a.URL)
	return nil
}

// cmdComplianceWithdraw withdraws the standing attestation of an item:
// compliance withdraw PRODUCT ITEM.
func cmdComplianceWithdraw(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "withdraw", Args: "PRODUCT ITEM",
		Synopsis: "withdraw the standing attestation of an item (it stays on record)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 2 {
					return usagef("compliance withdraw: want PRODUCT ITEM")
				}
				return complianceWithdraw(ctx, env, rf, *dir, pos[0], pos[1])
			}
		}}
}

// complianceWithdraw withdraws the standing attestation of item.
func complianceWithdraw(ctx context.Context, env Env, rf *remoteFlags, dir, product, item string) error {
	err := doLocalOrRemote(ctx, env, rf, dir, func(c *apiClient) error {
		path := "/products/" + url.PathEscape(product) + "/attestations/" + url.PathEscape(item)
		_, err := c.do(ctx, http.MethodDelete, path, nil, nil, nil, nil)
		return err
	}, func(p *project.Project) error {
		_, err := p.WithdrawAttestation(ctx, product, item)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "withdrew the attestation of %s of %s; it stays on record\n", item, product)
	return nil
}

// AttestationJSON is one attestation as compliance attestations --json
// prints it: the management API's, so --server prints what --dir prints.
type AttestationJSON = api.Attestation

// cmdComplianceAttestations lists a product's attestations, withdrawn ones
// included: compliance attestations PRODUCT [--json].
func cmdComplianceAttestations(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "attestations", Args: "PRODUCT",
		Synopsis: "list a product's attestations, withdrawn ones included",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("compliance attestations: want exactly one PRODUCT")
				}
				return complianceAttestations(ctx, env, rf, *dir, pos[0], *asJSON)
			}
		}}
}

// complianceAttestations prints every attestation of product.
func complianceAttestations(ctx context.Context, env Env, rf *remoteFlags, dir, product string, asJSON bool) error {
	out, err := localOrRemote(ctx, env, rf, dir, func(c *apiClient) ([]AttestationJSON, error) {
		return listAll[AttestationJSON](ctx, c, "/products/"+url.PathEscape(product)+"/attestations", nil)
	}, func(p *project.Project) ([]AttestationJSON, error) {
		as, err := p.Attestations(ctx, product)
		if err != nil {
			return nil, err
		}
		out := make([]AttestationJSON, 0, len(as))
		for _, a := range as {
			out = append(out, api.AttestationOf(a))
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	return printJSONOr(env, asJSON, out, printAttestations)
}

func printAttestations(env Env, out []AttestationJSON) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ITEM\tTIME\tBY\tSTATE\tURL\tNOTE")
	for _, a := range out {
		state := "standing"
		if a.Withdrawn != nil {
			state = "withdrawn " + a.Withdrawn.Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Item, a.Time.Format(time.RFC3339), a.By, state, a.URL, a.Note)
	}
	return tw.Flush()
}

// cmdComplianceMarket shows or records the product's market declaration:
// compliance market PRODUCT [--placed-on D --expected-use 7y [--justification T]].
func cmdComplianceMarket(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "market", Args: "PRODUCT",
		Synopsis: "show or declare when the product is placed on the market and how long it is expected in use (CRA Art. 13(8))",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			placed := fs.String("placed-on", "", "day the product is placed on the market, YYYY-MM-DD")
			use := fs.String("expected-use", "", "how long users are expected to use it: 7y, 18m, 5y6m")
			why := fs.String("justification", "", "why the support period may be shorter than five years")
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("compliance market: want exactly one PRODUCT")
				}
				declare := *placed != "" || *use != "" || *why != ""
				if declare && (*placed == "" || *use == "") {
					return usagef("compliance market: --placed-on and --expected-use are both required to declare")
				}
				return complianceMarket(ctx, env, rf, *dir, declare, *asJSON, project.MarketSpec{Product: pos[0], PlacedOn: *placed, ExpectedUse: *use, Justification: *why})
			}
		}}
}

// MarketJSON is a product's market declaration in `uptrust compliance
// market --json`: the management API's, so --server prints what --dir
// prints.
type MarketJSON = api.Market

// complianceMarket records the market declaration s when declare is set,
// and prints the product's declaration.
func complianceMarket(ctx context.Context, env Env, rf *remoteFlags, dir string, declare, asJSON bool, s project.MarketSpec) error {
	m, err := marketOf(ctx, env, rf, dir, declare, s)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env.Stdout, m)
	}
	fmt.Fprintf(env.Stdout, "%s: placed on the market %s, expected in use %s", m.Product, m.PlacedOn, project.FormatUse(m.ExpectedUseMonths))
	if m.Justification != "" {
		fmt.Fprintf(env.Stdout, "; justification: %s", m.Justification)
	}
	fmt.Fprintf(env.Stdout, " (declared %s)\n", m.Recorded.Format(time.RFC3339))
	return nil
}

// marketOf records the market declaration s when declare is set, on the
// project directory or through the server, and returns the product's
// declaration.
func marketOf(ctx context.Context, env Env, rf *remoteFlags, dir string, declare bool, s project.MarketSpec) (MarketJSON, error) {
	noDecl := fmt.Errorf("compliance market: %s has no market declaration: make one with --placed-on YYYY-MM-DD --expected-use 7y", s.Product)
	return localOrRemote(ctx, env, rf, dir, func(c *apiClient) (MarketJSON, error) {
		path := "/products/" + url.PathEscape(s.Product) + "/market"
		if declare {
			body := api.MarketDeclare{PlacedOn: s.PlacedOn, ExpectedUse: s.ExpectedUse, Justification: s.Justification}
			return apiSend[MarketJSON](ctx, c, http.MethodPut, path, body)
		}
		m, err := apiGet[MarketJSON](ctx, c, path)
		if se := (*ServerError)(nil); errors.As(err, &se) && se.Status == http.StatusNotFound && strings.Contains(se.Detail, "no market declaration") {
			return m, noDecl
		}
		return m, err
	}, func(p *project.Project) (MarketJSON, error) {
		var sm store.Market
		var err error
		if declare {
			sm, err = p.DeclareMarket(ctx, s)
		} else {
			sm, err = p.Market(ctx, s.Product)
			if errors.Is(err, store.ErrNotFound) {
				return MarketJSON{}, noDecl
			}
		}
		if err != nil {
			return MarketJSON{}, err
		}
		return api.MarketOf(sm), nil
	})
}
