package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// Rollouts in waves of managed products (rollout start with the wave
// flags, status, pause, resume, abort) and device groups and tags. Each
// runs on the project directory (--dir) or against a server (--server)
// and prints the management API's types either way.

// waveFlags are the flags of `rollout start` for managed products.
type waveFlags struct {
	sel, waves, maxFailure, minSuccess, soak, start, window *string
}

func (w waveFlags) given() bool {
	for _, s := range []*string{w.sel, w.waves, w.maxFailure, w.minSuccess, w.soak, w.start, w.window} {
		if *s != "" {
			return true
		}
	}
	return false
}

func (w waveFlags) plan(now time.Time) (rollout.Plan, error) {
	pl, err := rollout.ParsePlan(rollout.PlanFlags{Waves: *w.waves, MaxFailure: *w.maxFailure, MinSuccess: *w.minSuccess,
		Soak: *w.soak, Start: *w.start, Window: *w.window}, now)
	if err != nil {
		return pl, usagef("rollout start: %v", err)
	}
	if _, err := rollout.ParseSelector(*w.sel); err != nil {
		return pl, usagef("rollout start: %v", err)
	}
	return pl, nil
}

func cmdRolloutStart(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "start", Args: "PRODUCT VERSION", Synopsis: "offer VERSION to PRODUCT's devices: a share of them (anonymous) or in waves (managed)",
		Long: `Anonymous products: --percent P offers the release to P % of the devices, which
place themselves (uptrust rollout set-percent|halt|resume change it).

Managed products: a rollout in waves that halts itself:
  uptrust rollout start P VERSION --select FILTER --waves 1%,10%,50%,100% \
    --max-failure 5% --min-success 20 --soak 1h [--start TIME] [--window SPEC]
--select picks devices: KEY=VALUE[|VALUE] terms joined by commas, all must
match (keys version, hardware, group, tag, inventory.FIELD; empty: every
device), evaluated whenever a device asks, so devices that enrol later take
part. A wave advances after --soak with --min-success successes (owners'
skips never count as failures); a wave whose failed and rolled-back share of
finished devices passes --max-failure halts the whole rollout, in the audit
log. The newest rollout selecting a device owns it. --window is the
maintenance window devices install in ("Mon-Fri 02:00-04:00 Europe/Berlin").`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			percent := fs.Int("percent", -1, "anonymous products: share of devices, 0..100")
			w := waveFlags{
				sel:        fs.String("select", "", "managed products: selection `FILTER` such as group=lab,hardware=rev-a (default every device)"),
				waves:      fs.String("waves", "", "managed products: cumulative `SHARES` such as 1%,10%,50%,100%"),
				maxFailure: fs.String("max-failure", "", "managed products: highest tolerated failure ratio of a wave, such as 5%"),
				minSuccess: fs.String("min-success", "", "managed products: successes a wave needs before the next starts"),
				soak:       fs.String("soak", "", "managed products: how long each wave runs at least, such as 1h"),
				start:      fs.String("start", "", "managed products: RFC 3339 `TIME` the first wave starts (default now)"),
				window:     fs.String("window", "", "managed products: maintenance window such as \"Mon-Fri 02:00-04:00 Europe/Berlin\""),
			}
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 2 {
					return usagef("rollout start: want PRODUCT VERSION, then --percent P or the wave flags")
				}
				product, version := pos[0], pos[1]
				switch {
				case *percent >= 0 && w.given():
					return usagef("rollout start: --percent is for anonymous products and --select, --waves, --max-failure, --min-success, --soak, --start, --window for managed ones: give one or the other")
				case *percent < 0 && !w.given():
					return usagef("rollout start: want --percent P (anonymous products) or --waves, --max-failure, --min-success and --soak (managed products)")
				}
				if *percent < 0 {
					if _, err := w.plan(time.Now()); err != nil {
						return err // bad flags: refused before anything is read or sent
					}
				}
				wrongMode := func(mode string) error {
					if *percent >= 0 && mode == store.ModeManaged {
						return fmt.Errorf("rollout start: %s is a managed product: start a rollout in waves (--waves, --max-failure, --min-success, --soak, --select); --percent is for anonymous products", product)
					}
					if *percent < 0 && mode != store.ModeManaged {
						return fmt.Errorf("rollout start: %s is an anonymous product: use --percent; the wave flags are for managed products (uptrust product mode %s managed)", product, product)
					}
					return nil
				}
				if *percent >= 0 {
					err := doLocalOrRemote(ctx, env, rf, *dir, func(c *apiClient) error {
						pol, err := apiGet[api.DevicePolicy](ctx, c, "/products/"+url.PathEscape(product)+"/device-policy")
						if err != nil {
							return err
						}
						if err := wrongMode(pol.Mode); err != nil {
							return err
						}
						return remoteStartRollout(ctx, env, c, product, version, *percent)
					}, func(p *project.Project) error {
						if err := p.CheckProduct(ctx, product); err != nil {
							return err
						}
						pol, err := p.DevicePolicy(ctx, product)
						if err != nil {
							return err
						}
						if err := wrongMode(pol.Mode); err != nil {
							return err
						}
						ro, err := p.StartRollout(ctx, product, version, *percent)
						if err != nil {
							return err
						}
						printRollout(env, ro)
						return nil
					})
					return err
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (api.ManagedRolloutJSON, error) {
					pol, err := apiGet[api.DevicePolicy](ctx, c, "/products/"+url.PathEscape(product)+"/device-policy")
					if err != nil {
						return api.ManagedRolloutJSON{}, err
					}
					if err := wrongMode(pol.Mode); err != nil {
						return api.ManagedRolloutJSON{}, err
					}
					n, _ := strconv.Atoi(strings.TrimSpace(*w.minSuccess)) // checked by plan
					return apiSend[api.ManagedRolloutJSON](ctx, c, http.MethodPost, "/managed-rollouts", api.ManagedRolloutStart{
						Product: product, Version: version, Select: *w.sel, Waves: *w.waves, MaxFailure: *w.maxFailure, MinSuccess: &n,
						Soak: *w.soak, Start: *w.start, Window: *w.window})
				}, func(p *project.Project) (api.ManagedRolloutJSON, error) {
					if err := p.CheckProduct(ctx, product); err != nil {
						return api.ManagedRolloutJSON{}, err
					}
					pol, err := p.DevicePolicy(ctx, product)
					if err != nil {
						return api.ManagedRolloutJSON{}, err
					}
					if err := wrongMode(pol.Mode); err != nil {
						return api.ManagedRolloutJSON{}, err
					}
					pl, err := w.plan(p.Clock.Now().UTC())
					if err != nil {
						return api.ManagedRolloutJSON{}, err
					}
					m, err := p.StartManagedRollout(ctx, product, version, *w.sel, pl)
					return api.ManagedRolloutOf(m), err
				})
				if err != nil {
					return err
				}
				return printJSONOr(env, *asJSON, out, printManagedRollout)
			}
		}}
}

func printManagedRollout(env Env, m api.ManagedRolloutJSON) error {
	where := string(m.Phase)
	if m.ActiveWave > 0 {
		where += fmt.Sprintf(" in wave %d of %d (%s)", m.ActiveWave, len(m.Plan), m.Plan[m.ActiveWave-1])
	}
	if m.Since != nil {
		where += " since " + m.Since.Format(time.RFC3339)
	}
	if m.Phase == string(rollout.PhaseScheduled) {
		where += " to start " + m.Start.Format(time.RFC3339)
	}
	if m.Reason != "" {
		where += ": " + m.Reason
	}
	sel := m.Select
	if sel == "" {
		sel = "every device"
	}
	_, err := fmt.Fprintf(env.Stdout, "rollout %s of %s %s: %s\n  select %s; waves %s; max failure %s; min success %d; soak %s",
		m.ID, m.Product, m.Version, where, sel, strings.Join(m.Plan, ","), m.MaxFailure, m.MinSuccess, m.Soak)
	if err != nil {
		return err
	}
	if m.Window != "" {
		fmt.Fprintf(env.Stdout, "; window %s", m.Window)
	}
	fmt.Fprintln(env.Stdout)
	if len(m.Waves) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  WAVE\tSHARE\tSTATE\tMEMBERS\tOFFERED\tSUCCEEDED\tFAILED\tROLLED BACK\tSKIPPED\tFAILURE")
	for _, w := range m.Waves {
		c := w.Counts
		fail := fmt.Sprintf("%.2f%%", w.FailurePercent)
		if w.Failing {
			fail += " (over " + m.MaxFailure + ")"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", w.Wave, w.Share, w.State, c.Members, c.Offered, c.Succeeded, c.Failed, c.RolledBack, c.Skipped, fail)
	}
	return tw.Flush()
}

// managedRollouts reads a product's managed rollouts with their status per
// wave (one when id is not empty).
func managedRollouts(ctx context.Context, env Env, rf *remoteFlags, dir, product, id string) ([]api.ManagedRolloutJSON, error) {
	return localOrRemote(ctx, env, rf, dir, func(c *apiClient) ([]api.ManagedRolloutJSON, error) {
		all, err := listAll[api.ManagedRolloutJSON](ctx, c, "/managed-rollouts", url.Values{"product": {product}})
		if err != nil {
			return nil, err
		}
		out := []api.ManagedRolloutJSON{}
		for _, m := range all {
			if id != "" && m.ID != id {
				continue
			}
			full, err := apiGet[api.ManagedRolloutJSON](ctx, c, "/managed-rollouts/"+url.PathEscape(m.ID))
			if err != nil {
				return nil, err
			}
			out = append(out, full)
		}
		return out, nil
	}, func(p *project.Project) ([]api.ManagedRolloutJSON, error) {
		all, err := p.ManagedRollouts(ctx, product)
		if err != nil {
			return nil, err
		}
		out := []api.ManagedRolloutJSON{}
		for _, m := range all {
			if id != "" && m.ID != id {
				continue
			}
			st, err := p.RolloutStatus(ctx, m.ID)
			if err != nil {
				return nil, err
			}
			j := api.ManagedRolloutOf(st.Rollout)
			j.Waves = st.Waves
			out = append(out, j)
		}
		return out, nil
	})
}

func cmdRolloutStatus(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "status", Args: "PRODUCT [ID]", Synopsis: "show a managed product's rollouts in waves with their counts per wave",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) < 1 || len(pos) > 2 {
					return usagef("rollout status: want PRODUCT and optionally a rollout ID")
				}
				id := ""
				if len(pos) == 2 {
					id = pos[1]
				}
				out, err := managedRollouts(ctx, env, rf, *dir, pos[0], id)
				if err != nil {
					return err
				}
				if id != "" && len(out) == 0 {
					return fmt.Errorf("rollout status: %s has no rollout %s: %w", pos[0], id, store.ErrNotFound)
				}
				if *asJSON {
					return writeJSON(env.Stdout, out)
				}
				if len(out) == 0 {
					_, err := fmt.Fprintf(env.Stdout, "%s has no rollouts in waves\n", pos[0])
					return err
				}
				for _, m := range out {
					if err := printManagedRollout(env, m); err != nil {
						return err
					}
				}
				return nil
			}
		}}
}

// resolveRollout returns id, or the ID of the product's only rollout in
// progress (not aborted or complete) when id is "".
func resolveRollout(ctx context.Context, env Env, rf *remoteFlags, dir, product, id string) (string, error) {
	all, err := localOrRemote(ctx, env, rf, dir, func(c *apiClient) ([]api.ManagedRolloutJSON, error) {
		return listAll[api.ManagedRolloutJSON](ctx, c, "/managed-rollouts", url.Values{"product": {product}})
	}, func(p *project.Project) ([]api.ManagedRolloutJSON, error) {
		ms, err := p.ManagedRollouts(ctx, product)
		out := make([]api.ManagedRolloutJSON, 0, len(ms))
		for _, m := range ms {
			out = append(out, api.ManagedRolloutOf(m))
		}
		return out, err
	})
	if err != nil {
		return "", err
	}
	var open []string
	for _, m := range all {
		if m.ID == id {
			return id, nil
		}
		if !rollout.Phase(m.Phase).Terminal() {
			open = append(open, m.ID)
		}
	}
	switch {
	case id != "":
		return "", fmt.Errorf("%s has no rollout %s: %w", product, id, store.ErrNotFound)
	case len(open) == 0:
		return "", fmt.Errorf("%s has no rollout in waves in progress (uptrust rollout status %s)", product, product)
	case len(open) > 1:
		return "", fmt.Errorf("%s has %d rollouts in progress (%s): give the ID", product, len(open), strings.Join(open, ", "))
	}
	return open[0], nil
}

// cmdRolloutOp is `rollout pause|abort PRODUCT [ID]` of managed products.
func cmdRolloutOp(env Env, verb, synopsis string) *cmdline.Command {
	return &cmdline.Command{Name: verb, Args: "PRODUCT [ID]", Synopsis: synopsis,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			reason := fs.String("reason", "", "why, for the audit log and the status view")
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) < 1 || len(pos) > 2 {
					return usagef("rollout %s: want PRODUCT and optionally a rollout ID", verb)
				}
				return managedOp(ctx, env, rf, *dir, verb, pos, *reason, *asJSON)
			}
		}}
}

func managedOp(ctx context.Context, env Env, rf *remoteFlags, dir, verb string, pos []string, reason string, asJSON bool) error {
	id := ""
	if len(pos) == 2 {
		id = pos[1]
	}
	id, err := resolveRollout(ctx, env, rf, dir, pos[0], id)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", verb, err)
	}
	out, err := localOrRemote(ctx, env, rf, dir, func(c *apiClient) (api.ManagedRolloutJSON, error) {
		var body any
		if reason != "" {
			body = api.RolloutAction{Reason: reason}
		}
		return apiSend[api.ManagedRolloutJSON](ctx, c, http.MethodPost, "/managed-rollouts/"+url.PathEscape(id)+"/"+verb, body)
	}, func(p *project.Project) (api.ManagedRolloutJSON, error) {
		var m project.ManagedRollout
		var err error
		switch verb {
		case "pause":
			m, err = p.PauseRollout(ctx, id, reason)
		case "resume":
			m, err = p.ResumeRollout(ctx, id)
		case "abort":
			m, err = p.AbortRollout(ctx, id, reason)
		default:
			err = errors.New("unknown operation " + verb)
		}
		return api.ManagedRolloutOf(m), err
	})
	if err != nil {
		return err
	}
	return printJSONOr(env, asJSON, out, printManagedRollout)
}

// cmdRolloutResume resumes a halted anonymous rollout (PRODUCT) or a
// paused or halted managed one (PRODUCT [ID]).
func cmdRolloutResume(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "resume", Args: "PRODUCT [ID]", Synopsis: "offer a halted rollout again (managed: resume a paused or halted rollout in waves)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) < 1 || len(pos) > 2 {
					return usagef("rollout resume: want PRODUCT and, for a managed product, optionally a rollout ID")
				}
				mode, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (string, error) {
					pol, err := apiGet[api.DevicePolicy](ctx, c, "/products/"+url.PathEscape(pos[0])+"/device-policy")
					return pol.Mode, err
				}, func(p *project.Project) (string, error) {
					if err := p.CheckProduct(ctx, pos[0]); err != nil {
						return "", err
					}
					pol, err := p.DevicePolicy(ctx, pos[0])
					return pol.Mode, err
				})
				if err != nil {
					return err
				}
				if mode == store.ModeManaged {
					return managedOp(ctx, env, rf, *dir, "resume", pos, "", *asJSON)
				}
				if len(pos) == 2 {
					return usagef("rollout resume: %s is an anonymous product: its rollout has no ID", pos[0])
				}
				fn := func(r *store.Rollout) { r.Halted = false }
				if c, err := rf.client(); err != nil || c != nil {
					if err != nil {
						return err
					}
					return remoteChangeRollout(ctx, env, c, pos[0], fn)
				}
				return changeRollout(ctx, env, *dir, pos[0], fn)
			}
		}}
}

// cmdDeviceLabel is `device group|tag add|remove|list`.
func cmdDeviceLabel(env Env, kind string) *cmdline.Command {
	plural := kind + "s"
	change := func(verb string) *cmdline.Command {
		synopsis := map[string]string{"add": "put devices in a static group", "remove": "take devices out of a static group"}[verb]
		if kind == store.LabelTag {
			synopsis = map[string]string{"add": "tag devices", "remove": "remove a tag from devices"}[verb]
		}
		return &cmdline.Command{Name: verb, Args: strings.ToUpper(kind) + " ID...", Synopsis: synopsis,
			Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
				dir := dirFlag(fs, env)
				rf := addRemote(fs, env)
				return func(ctx context.Context, pos []string) error {
					if len(pos) < 2 {
						return usagef("device %s %s: want a %s name and at least one device ID", kind, verb, kind)
					}
					name := pos[0]
					return doLocalOrRemote(ctx, env, rf, *dir, func(c *apiClient) error {
						method := http.MethodPut
						if verb == "remove" {
							method = http.MethodDelete
						}
						for _, id := range pos[1:] {
							if _, err := c.do(ctx, method, "/devices/"+url.PathEscape(id)+"/"+plural+"/"+url.PathEscape(name), nil, nil, nil, nil); err != nil {
								return err
							}
							printLabelChange(env, verb, kind, name, id)
						}
						return nil
					}, func(p *project.Project) error {
						for _, id := range pos[1:] {
							var err error
							if verb == "add" {
								err = p.AddDeviceLabel(ctx, id, kind, name)
							} else {
								err = p.RemoveDeviceLabel(ctx, id, kind, name)
							}
							if err != nil {
								return err
							}
							printLabelChange(env, verb, kind, name, id)
						}
						return nil
					})
				}
			}}
	}
	list := &cmdline.Command{Name: "list", Args: "PRODUCT", Synopsis: "list the " + plural + " of a product's devices",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("device %s list: want exactly one PRODUCT", kind)
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]api.DeviceLabelJSON, error) {
					return listAll[api.DeviceLabelJSON](ctx, c, "/products/"+url.PathEscape(pos[0])+"/device-labels", url.Values{"kind": {kind}})
				}, func(p *project.Project) ([]api.DeviceLabelJSON, error) {
					ls, err := p.DeviceLabels(ctx, pos[0], kind)
					out := make([]api.DeviceLabelJSON, 0, len(ls))
					for _, l := range ls {
						out = append(out, api.DeviceLabelOf(l))
					}
					return out, err
				})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(env.Stdout, out)
				}
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "%s\tDEVICE\tADDED\n", strings.ToUpper(kind))
				for _, l := range out {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Name, l.Device, l.Added.Format(time.RFC3339))
				}
				return tw.Flush()
			}
		}}
	synopsis := "static groups of devices, for selecting them in rollouts"
	if kind == store.LabelTag {
		synopsis = "tags of devices, for selecting them in rollouts"
	}
	return &cmdline.Command{Name: kind, Synopsis: synopsis, Sub: []*cmdline.Command{change("add"), change("remove"), list}}
}

func printLabelChange(env Env, verb, kind, name, id string) {
	if verb == "add" {
		fmt.Fprintf(env.Stdout, "device %s: %s %s added\n", id, kind, name)
		return
	}
	fmt.Fprintf(env.Stdout, "device %s: %s %s removed\n", id, kind, name)
}
