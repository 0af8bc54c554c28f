package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// Managed fleets, the operator's commands: product mode and inventory,
// enrolment tokens, devices. Each runs on the project directory (--dir) or
// against a server (--server, an operator token; reading devices also an
// auditor's or admin's) and prints the same either way: both print the
// management API's types.

func printPolicy(env Env, pol api.DevicePolicy) error {
	inv := strings.Join(pol.Inventory, ",")
	if inv == "" {
		inv = "(none)"
	}
	_, err := fmt.Fprintf(env.Stdout, "product %s: mode %s, inventory fields %s\n", pol.Product, pol.Mode, inv)
	return err
}

func cmdProductMode(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "mode", Args: "NAME [managed|anonymous]", Synopsis: "show or set whether a product's devices are anonymous or managed",
		Long: `anonymous (the default): the server knows nothing about devices. managed:
devices enrol with an Ed25519 key and the server keeps the inventory fields the
product declares (uptrust product inventory) and each device's update history.
Going back to anonymous is refused while devices of the product are stored:
erase them first.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) < 1 || len(pos) > 2 {
					return usagef("product mode: want NAME and optionally managed or anonymous")
				}
				name := pos[0]
				pol, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (api.DevicePolicy, error) {
					if len(pos) == 1 {
						return apiGet[api.DevicePolicy](ctx, c, "/products/"+url.PathEscape(name)+"/device-policy")
					}
					return apiSend[api.DevicePolicy](ctx, c, http.MethodPut, "/products/"+url.PathEscape(name)+"/mode", api.ModeSet{Mode: pos[1]})
				}, func(p *project.Project) (api.DevicePolicy, error) {
					var sp store.DevicePolicy
					var err error
					if len(pos) == 1 {
						sp, err = p.DevicePolicy(ctx, name)
					} else {
						sp, err = p.SetProductMode(ctx, name, pos[1])
					}
					return api.DevicePolicyOf(sp), err
				})
				if err != nil {
					return err
				}
				return printJSONOr(env, *asJSON, pol, printPolicy)
			}
		}}
}

func cmdProductInventory(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "inventory", Args: "NAME", Synopsis: "declare the inventory fields a managed product's devices may report",
		Long: `Devices report only the declared fields; anything else is refused and never
stored. Fields no longer declared are deleted from every device at once.
Fields uptrust knows: ` + strings.Join(project.InventoryFields, ", ") + `.
--fields "" declares none.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			fields := fs.String("fields", "", "comma-separated `fields`, such as hardware,version,agent_version,slot (required)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("product inventory: want exactly one NAME")
				}
				set := false
				fs.Visit(func(f *flag.Flag) { set = set || f.Name == "fields" })
				if !set {
					return usagef("product inventory: --fields is required (--fields \"\" declares none)")
				}
				list := splitList(*fields)
				if list == nil {
					list = []string{}
				}
				pol, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (api.DevicePolicy, error) {
					return apiSend[api.DevicePolicy](ctx, c, http.MethodPut, "/products/"+url.PathEscape(pos[0])+"/inventory", api.InventorySet{Fields: list})
				}, func(p *project.Project) (api.DevicePolicy, error) {
					sp, err := p.SetInventoryFields(ctx, pos[0], list)
					return api.DevicePolicyOf(sp), err
				})
				if err != nil {
					return err
				}
				return printJSONOr(env, *asJSON, pol, printPolicy)
			}
		}}
}

func cmdEnrollmentToken(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "enrollment-token", Synopsis: "create, list and revoke the tokens devices of a managed product enrol with",
		Long: `An enrolment token lets a number of devices of one managed product enrol until
it expires. Devices enrolling with it wait for the operator (uptrust device
accept) unless it was created with --auto-accept. It is shown once; the
database keeps a hash of its secret. These are fleet credentials: the
operator's, not the admin's (uptrust token is for people and systems using
the management API).`,
		Sub: []*cmdline.Command{cmdEnrollmentTokenCreate(env), cmdEnrollmentTokenList(env), cmdEnrollmentTokenRevoke(env)}}
}

func cmdEnrollmentTokenCreate(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "create", Synopsis: "create an enrolment token and print it, once",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			product := fs.String("product", "", "the managed `product` (required)")
			uses := fs.Int("uses", 1, "how many devices may enrol with it")
			expires := fs.String("expires", "24h", "how long it is valid: a `period` such as 24h or 7d")
			auto := fs.Bool("auto-accept", false, "accept devices enrolling with it at once (a factory line you trust)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 || *product == "" {
					return usagef("enrollment-token create takes no arguments and needs --product")
				}
				ttl, err := project.ParsePeriod(*expires)
				if err != nil || ttl <= 0 {
					return usagef("--expires %q: want a positive period such as 24h or 7d", *expires)
				}
				j, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (api.EnrollmentToken, error) {
					body := api.EnrollmentTokenCreate{Product: *product, Uses: *uses, Expires: *expires, AutoAccept: *auto}
					return apiSend[api.EnrollmentToken](ctx, c, http.MethodPost, "/enrollment-tokens", body)
				}, func(p *project.Project) (api.EnrollmentToken, error) {
					ct, err := p.CreateEnrollmentToken(ctx, project.EnrollmentTokenSpec{Product: *product, Uses: *uses,
						TTL: time.Duration(ttl), AutoAccept: *auto})
					j := api.EnrollmentTokenOf(ct.Token)
					j.Token = ct.Text
					return j, err
				})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(env.Stdout, j)
				}
				fmt.Fprintf(env.Stderr, "created enrolment token %s for %s: %d uses, auto-accept %v, expires %s\n",
					j.ID, j.Product, j.Uses, j.AutoAccept, j.Expires.Format(time.RFC3339))
				fmt.Fprintln(env.Stderr, "this is the only time it is shown")
				_, err = fmt.Fprintln(env.Stdout, j.Token)
				return err
			}
		}}
}

func cmdEnrollmentTokenList(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "list", Synopsis: "list enrolment tokens (never their secrets)",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			product := fs.String("product", "", "only tokens of this `product`")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("enrollment-token list takes no arguments")
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]api.EnrollmentToken, error) {
					q := url.Values{}
					if *product != "" {
						q.Set("product", *product)
					}
					return listAll[api.EnrollmentToken](ctx, c, "/enrollment-tokens", q)
				}, func(p *project.Project) ([]api.EnrollmentToken, error) {
					ts, err := p.EnrollmentTokens(ctx, *product)
					out := make([]api.EnrollmentToken, 0, len(ts))
					for _, t := range ts {
						out = append(out, api.EnrollmentTokenOf(t))
					}
					return out, err
				})
				if err != nil {
					return err
				}
				return printJSONOr(env, *asJSON, out, printEnrollmentTokens)
			}
		}}
}

func printEnrollmentTokens(env Env, out []api.EnrollmentToken) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPRODUCT\tUSES LEFT\tAUTO-ACCEPT\tCREATED\tEXPIRES\tREVOKED")
	for _, j := range out {
		rev := "-"
		if j.Revoked != nil {
			rev = j.Revoked.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\t%s\t%s\n", j.ID, j.Product, j.Uses, j.AutoAccept,
			j.Created.Format(time.RFC3339), j.Expires.Format(time.RFC3339), rev)
	}
	return tw.Flush()
}

func cmdEnrollmentTokenRevoke(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "revoke", Args: "ID", Synopsis: "revoke an enrolment token",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("enrollment-token revoke: want exactly one ID")
				}
				err := doLocalOrRemote(ctx, env, rf, *dir, func(c *apiClient) error {
					_, err := c.do(ctx, http.MethodDelete, "/enrollment-tokens/"+url.PathEscape(pos[0]), nil, nil, nil, nil)
					return err
				}, func(p *project.Project) error {
					_, err := p.RevokeEnrollmentToken(ctx, pos[0])
					return err
				})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(env.Stdout, "revoked enrolment token %s\n", pos[0])
				return err
			}
		}}
}

func cmdDevice(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "device", Synopsis: "list, accept, reject, decommission, export and erase the devices of managed products",
		Long: `Devices of a managed product enrol with their Ed25519 public key and an
enrolment token (they wait as pending until accepted, unless the token
auto-accepts) or with a key pre-authorised here (accepted at once). Rejected
devices get nothing until accepted again; decommissioned ones get nothing, for
good (erase them to let them enrol anew). export prints everything the server
holds about a device; erase removes all of it.`,
		Sub: []*cmdline.Command{cmdDeviceList(env), cmdDeviceShow(env),
			cmdDeviceState(env, "accept", "accept a pending or rejected device"),
			cmdDeviceState(env, "reject", "reject a device: it gets nothing until accepted again"),
			cmdDeviceState(env, "decommission", "take a device out of service for good"),
			cmdDevicePreauthorize(env), cmdDeviceExport(env), cmdDeviceErase(env),
			cmdDeviceLabel(env, store.LabelGroup), cmdDeviceLabel(env, store.LabelTag)}}
}

func printDevices(env Env, ds []api.Device) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPRODUCT\tSTATE\tENROLLED\tINVENTORY")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Product, d.State, d.Enrolled.Format(time.RFC3339), inventoryText(d.Inventory))
	}
	return tw.Flush()
}

func inventoryText(inv map[string]string) string {
	keys := make([]string, 0, len(inv))
	for k := range inv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + inv[k]
	}
	return orDash(strings.Join(parts, " "))
}

func cmdDeviceList(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "list", Synopsis: "list devices, by id",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			product := fs.String("product", "", "only devices of this `product`")
			state := fs.String("state", "", "only devices in this `state`: pending, accepted, rejected or decommissioned")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("device list takes no arguments")
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]api.Device, error) {
					q := url.Values{}
					if *product != "" {
						q.Set("product", *product)
					}
					if *state != "" {
						q.Set("state", *state)
					}
					return listAll[api.Device](ctx, c, "/devices", q)
				}, func(p *project.Project) ([]api.Device, error) {
					out := []api.Device{}
					f := store.DeviceFilter{Product: *product, State: *state, Limit: 1000}
					for {
						ds, err := p.Devices(ctx, f)
						if err != nil {
							return nil, err
						}
						for _, d := range ds {
							out = append(out, api.DeviceOf(d))
						}
						if len(ds) < f.Limit {
							return out, nil
						}
						f.AfterID = ds[len(ds)-1].ID
					}
				})
				if err != nil {
					return err
				}
				return printJSONOr(env, *asJSON, out, printDevices)
			}
		}}
}

func cmdDeviceShow(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "show", Args: "ID", Synopsis: "show one device",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("device show: want exactly one ID")
				}
				d, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (api.Device, error) {
					return apiGet[api.Device](ctx, c, "/devices/"+url.PathEscape(pos[0]))
				}, func(p *project.Project) (api.Device, error) {
					sd, err := p.Device(ctx, pos[0])
					return api.DeviceOf(sd), err
				})
				if err != nil {
					return err
				}
				return printJSONOr(env, *asJSON, d, printDevice)
			}
		}}
}

func printDevice(env Env, d api.Device) error {
	_, err := fmt.Fprintf(env.Stdout, "device %s\nproduct    %s\nstate      %s\npublic key %s\nenrolled   %s\nupdated    %s\ninventory  %s\n",
		d.ID, d.Product, d.State, d.PublicKey, d.Enrolled.Format(time.RFC3339), d.Updated.Format(time.RFC3339), inventoryText(d.Inventory))
	return err
}

func cmdDeviceState(env Env, verb, synopsis string) *cmdline.Command {
	return &cmdline.Command{Name: verb, Args: "ID", Synopsis: synopsis,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("device %s: want exactly one ID", verb)
				}
				d, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (api.Device, error) {
					return apiSend[api.Device](ctx, c, http.MethodPost, "/devices/"+url.PathEscape(pos[0])+"/"+verb, nil)
				}, func(p *project.Project) (api.Device, error) {
					do := map[string]func(context.Context, string) (store.Device, error){
						"accept": p.AcceptDevice, "reject": p.RejectDevice, "decommission": p.DecommissionDevice}[verb]
					sd, err := do(ctx, pos[0])
					return api.DeviceOf(sd), err
				})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(env.Stdout, "device %s is %s\n", d.ID, d.State)
				return err
			}
		}}
}

func cmdDevicePreauthorize(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "preauthorize", Synopsis: "accept a device's public key before it enrols",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			product := fs.String("product", "", "the managed `product` (required)")
			keyArg := fs.String("key", "", "the device's Ed25519 public key: a `FILE` (PEM or base64) or base64 of its 32 bytes (required)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 || *product == "" || *keyArg == "" {
					return usagef("device preauthorize takes no arguments and needs --product and --key")
				}
				text := *keyArg
				if b, err := os.ReadFile(*keyArg); err == nil {
					text = string(b)
				}
				key, err := project.ParsePublicKey(text)
				if err != nil {
					return usagef("--key: %v", err)
				}
				err = doLocalOrRemote(ctx, env, rf, *dir, func(c *apiClient) error {
					_, err := c.do(ctx, http.MethodPost, "/products/"+url.PathEscape(*product)+"/preauthorized-keys", nil,
						api.PreauthorizeKey{PublicKey: project.EncodePublicKey(key)}, nil, nil)
					return err
				}, func(p *project.Project) error {
					return p.Preauthorize(ctx, *product, key)
				})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(env.Stdout, "pre-authorised key %s for %s: the device is accepted when it enrols\n", project.EncodePublicKey(key), *product)
				return err
			}
		}}
}

func cmdDeviceExport(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "export", Args: "ID", Synopsis: "print everything the server holds about a device, as JSON",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("device export: want exactly one ID")
				}
				x, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (api.DeviceExport, error) {
					return apiGet[api.DeviceExport](ctx, c, "/devices/"+url.PathEscape(pos[0])+"/export")
				}, func(p *project.Project) (api.DeviceExport, error) {
					px, err := p.ExportDevice(ctx, pos[0])
					return api.DeviceExportOf(px), err
				})
				if err != nil {
					return err
				}
				return writeJSON(env.Stdout, x)
			}
		}}
}

func cmdDeviceErase(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "erase", Args: "ID", Synopsis: "remove a device and everything about it; it must enrol again",
		Long: `Removes the device, its inventory, its update history and any pre-authorisation
of its key from every table. The audit log keeps its entries naming the device
id (random, linked to nothing once the device is gone), this erasure included.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("device erase: want exactly one ID")
				}
				err := doLocalOrRemote(ctx, env, rf, *dir, func(c *apiClient) error {
					_, err := c.do(ctx, http.MethodDelete, "/devices/"+url.PathEscape(pos[0]), nil, nil, nil, nil)
					return err
				}, func(p *project.Project) error {
					return p.EraseDevice(ctx, pos[0])
				})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(env.Stdout, "erased device %s\n", pos[0])
				return err
			}
		}}
}
