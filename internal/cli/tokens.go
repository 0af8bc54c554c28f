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
				var j TokenJSON
				if c, err := rf.client(); err != nil {
					return err
				} else if c != nil {
					body := api.TokenCreate{Name: *name, Role: string(r), Expires: *expires}
					if _, err := c.do(ctx, http.MethodPost, "/tokens", nil, body, nil, &j); err != nil {
						return err
					}
				} else {
					p, err := openProject(ctx, env, *dir)
					if err != nil {
						return err
					}
					defer p.Close()
					ct, err := p.CreateToken(ctx, project.TokenSpec{Name: *name, Role: r, TTL: time.Duration(ttl)})
					if err != nil {
						return err
					}
					j = tokenJSON(ct.Token, ct.Token.Created)
					j.Token = ct.Text
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
				var out []TokenJSON
				if c, err := rf.client(); err != nil {
					return err
				} else if c != nil {
					if out, err = listAll[TokenJSON](ctx, c, "/tokens", nil); err != nil {
						return err
					}
				} else {
					p, err := openProject(ctx, env, *dir)
					if err != nil {
						return err
					}
					defer p.Close()
					ts, err := p.Tokens(ctx)
					if err != nil {
						return err
					}
					now := p.Clock.Now()
					out = make([]TokenJSON, len(ts))
					for i, t := range ts {
						out[i] = tokenJSON(t, now)
					}
				}
				if *asJSON {
					return writeJSON(env.Stdout, out)
				}
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
		}}
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
				var t TokenJSON
				if c, err := rf.client(); err != nil {
					return err
				} else if c != nil {
					if _, err := c.do(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(pos[0]), nil, nil, nil, &t); err != nil {
						return err
					}
				} else {
					p, err := openProject(ctx, env, *dir)
					if err != nil {
						return err
					}
					defer p.Close()
					tk, err := p.RevokeToken(ctx, pos[0])
					if err != nil {
						return err
					}
					t = tokenJSON(tk, tk.Revoked)
				}
				_, err := fmt.Fprintf(env.Stdout, "revoked token %s (role %s, id %s)\n", t.Name, t.Role, t.ID)
				return err
			}
		}}
}

// adminTokenLine is what init prints about the first admin token.
func adminTokenLine(dir string) string {
	return fmt.Sprintf("  admin token:  %s (0600; the management API's first admin token, shown nowhere else; only its hash is stored)",
		filepath.Join(dir, project.AdminTokenFile))
}
