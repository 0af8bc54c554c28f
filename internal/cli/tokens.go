package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// TokenJSON is a token in `uptrust token list --json` and `token create
// --json`: the management API's token, so --server prints what --dir
// prints. Token (the secret) is set by create only.
type TokenJSON = api.Token

func tokenJSON(t store.Token, now time.Time) TokenJSON { return api.TokenOf(t, now) }

func cmdToken(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "token", Synopsis: "create, list and revoke management API tokens",
		Long: `Tokens authenticate to the server's management API. Each has a name (the actor
in the audit log: name it after a job or system, not a person), a role and an
expiry:

  admin            tokens and settings; reads everything, the audit log included
  release-manager  push releases, change products; reads
  operator         rollouts; reads
  auditor          reads everything, the audit log included; changes nothing

admin does not include the others' changes: an admin creates a token of the
role a job needs, and that is in the audit log. A token is shown once, when it
is created; the database keeps only a hash of its secret. Every change is
recorded in the audit log.`,
		Sub: []*cmdline.Command{cmdTokenCreate(env), cmdTokenList(env), cmdTokenRevoke(env)}}
}

func cmdTokenCreate(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "create", Synopsis: "create a token and print it, once",
		Long: `Prints the token alone on standard output (TOKEN=$(uptrust token create ...)
works) and what it is on standard error. It is not shown again.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			name := fs.String("name", "", "the token's `name`, such as ci (required)")
			role := fs.String("role", "", "the token's `role`: admin, release-manager, operator or auditor (required)")
			expires := fs.String("expires", project.Period(project.DefaultTokenTTL).String(), "how long the token is valid: `days` such as 90d, or a duration such as 12h")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("token create takes no arguments; name the token with --name")
				}
				if *name == "" || *role == "" {
					return usagef("token create needs --name and --role")
				}
				r, err := access.ParseRole(*role)
				if err != nil {
					return usagef("--role: %v", err)
				}
				ttl, err := project.ParsePeriod(*expires)
				if err != nil || ttl <= 0 {
					return usagef("--expires %q: want a positive period such as 90d or 12h", *expires)
				}
				j, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (TokenJSON, error) {
					body := api.TokenCreate{Name: *name, Role: string(r), Expires: *expires}
					return apiSend[TokenJSON](ctx, c, http.MethodPost, "/tokens", body)
				}, func(p *project.Project) (TokenJSON, error) {
					ct, err := p.CreateToken(ctx, project.TokenSpec{Name: *name, Role: r, TTL: time.Duration(ttl)})
					if err != nil {
						return TokenJSON{}, err
					}
					j := tokenJSON(ct.Token, ct.Token.Created)
					j.Token = ct.Text
					return j, nil
				})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(env.Stdout, j)
				}
				fmt.Fprintf(env.Stderr, "created token %s: role %s, id %s, expires %s\n", j.Name, j.Role, j.ID,
					j.Expires.Format(time.RFC3339))
				fmt.Fprintln(env.Stderr, "this is the only time it is shown: keep it in a secret store")
				_, err = fmt.Fprintln(env.Stdout, j.Token)
				return err
			}
		}}
}

func cmdTokenList(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "list", Synopsis: "list tokens (never their secrets)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("token list takes no arguments")
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]TokenJSON, error) {
					return listAll[TokenJSON](ctx, c, "/tokens", nil)
				}, func(p *project.Project) ([]TokenJSON, error) {
					ts, err := p.Tokens(ctx)
					if err != nil {
						return nil, err
					}
					now := p.Clock.Now()
					out := make([]TokenJSON, len(ts))
					for i, t := range ts {
						out[i] = tokenJSON(t, now)
					}
					return out, nil
				})
				if err != nil {
					return err
				}
				return printJSONOr(env, *asJSON, out, printTokens)
			}
		}}
}

func printTokens(env Env, out []TokenJSON) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tID\tSTATE\tCREATED\tEXPIRES\tLAST USED")
	for _, j := range out {
		state := j.State
		if j.Revoked != nil {
			state += " " + j.Revoked.Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, j.Role, j.ID, state,
			j.Created.Format(time.DateOnly), j.Expires.Format(time.DateOnly), orDash(j.LastUsed))
	}
	return tw.Flush()
}

func cmdTokenRevoke(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "revoke", Args: "NAME", Synopsis: "revoke a token: the server refuses it from now on",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("token revoke takes the token's NAME")
				}
				t, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (TokenJSON, error) {
					return apiSend[TokenJSON](ctx, c, http.MethodDelete, "/tokens/"+url.PathEscape(pos[0]), nil)
				}, func(p *project.Project) (TokenJSON, error) {
					tk, err := p.RevokeToken(ctx, pos[0])
					if err != nil {
						return TokenJSON{}, err
					}
					return tokenJSON(tk, tk.Revoked), nil
				})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(env.Stdout, "revoked token %s (role %s, id %s)\n", t.Name, t.Role, t.ID)
				return err
			}
		}}
}

// adminTokenLine is what init prints about the first admin token.
func adminTokenLine(dir string) string {
	return fmt.Sprintf("  admin token:  %s (0600; the management API's first admin token, shown nowhere else; only its hash is stored)",
		filepath.Join(dir, project.AdminTokenFile))
}
