package cli

import (
	"flag"
	"net/url"
	"time"

	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/uptrust/uptrust/internal/cmdline"

	"github.com/uptrust/uptrust/internal/progress"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/units"
)

func cmdInit(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "init", Synopsis: "create a project: keys, the release and fleet repositories, the database",
		Long: `Without --dev the offline keys are encrypted with a passphrase ($UPTRUST_PASSPHRASE,
else asked twice on the terminal). With --key-holders each holder gets one root key
per repository under their own passphrase ($UPTRUST_PASSPHRASE_<HOLDER>, else
asked on the terminal naming them); root changes then go through uptrust root.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			db := databaseFlag(fs, env)
			dev := fs.Bool("dev", false, "1-of-1 unencrypted keys, for trying things out only")
			holders, threshold := holderFlags(fs)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("init takes no arguments")
				}
				if err := checkHolderFlags(splitList(*holders), *threshold, *dev); err != nil {
					return err
				}
				return runInit(ctx, env, *dir, *db, *dev, splitList(*holders), *threshold)
			}
		}}
}

func runInit(ctx context.Context, env Env, dir, db string, dev bool, holders []string, threshold int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p, err := project.Init(ctx, dir, project.InitOptions{Dev: dev, KeyHolders: holders, RootThreshold: threshold,
		Options: project.Options{Passphrase: passphrase(env, true), HolderPassphrase: holderPassphrase(env, true), Database: db}})
	if err != nil {
		return err
	}
	defer p.Close()
	if dev {
		fmt.Fprintln(env.Stderr, `
  ************************************************************************
  *  DEVELOPMENT PROJECT: every key is 1-of-1 and stored UNENCRYPTED.     *
  *  Anyone who copies this directory can sign firmware for your devices. *
  *  Never ship devices provisioned with these roots.                     *
  ************************************************************************`)
	}
	fmt.Fprintf(env.Stdout, "initialised uptrust project in %s\n", dir)
	fmt.Fprintf(env.Stdout, "  root keys: %d, threshold %d (release and fleet repositories)\n", p.Config.RootKeys, p.Config.RootThreshold)
	for _, h := range p.Config.Holders() {
		fmt.Fprintf(env.Stdout, "  key holder %s: %s, %s\n", h, project.HolderKeyPath(dir, "release", h), project.HolderKeyPath(dir, "fleet", h))
	}
	fmt.Fprintf(env.Stdout, "  offline keys: %s/keys/offline (move them off this machine after setup)\n", dir)
	fmt.Fprintf(env.Stdout, "  online keys:  %s/keys/online (the server needs these)\n", dir)
	fmt.Fprintf(env.Stdout, "  device roots: %s, %s\n", project.DeviceRootPath(dir, "release"), project.DeviceRootPath(dir, "fleet"))
	fmt.Fprintln(env.Stdout, adminTokenLine(dir))
	return nil
}

func cmdProduct(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "product", Synopsis: "add, list and show products; extend their support; set their update policy",
		Sub: []*cmdline.Command{cmdProductAdd(env), cmdProductList(env), cmdProductShow(env),
			{Name: "support", Synopsis: "change a product's support period", Sub: []*cmdline.Command{cmdProductSupportExtend(env)}},
			cmdProductPolicy(env), cmdProductMode(env), cmdProductInventory(env)}}
}

func cmdProductAdd(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "add", Args: "NAME", Synopsis: "add a product and sign its support declaration",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			blobs := blobsFlag(fs, env)
			hw := fs.String("hardware", "", "comma-separated hardware revisions")
			until := fs.String("support-until", "", "last day of security support, YYYY-MM-DD (required)")
			model := fs.String("model", "", "model designation shown to owners (default: the name)")
			contact := fs.String("contact", "", "where owners report security issues")
			auto := fs.String("auto-install", "security,fix,feature", "release kinds that install without the owner's action (when without adverse impact)")
			postpone := fs.Int("max-postpone-days", 30, "longest an owner may postpone automatic updates")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("product add: want exactly one NAME")
				}
				if *until == "" {
					return usagef("product add: --support-until is required (owners must know how long the device is supported)")
				}
				p, err := openProjectBlobs(ctx, env, *dir, *blobs)
				if err != nil {
					return err
				}
				defer p.Close()
				pol, err := parsePolicy(*auto, *postpone)
				if err != nil {
					return err
				}
				spec := project.ProductSpec{Name: pos[0], Model: *model, Hardware: splitList(*hw), SupportUntil: *until, Contact: *contact, Policy: &pol}
				if err := p.AddProduct(ctx, spec); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "added product %s: role products/%s, hardware %s, supported until %s\n", pos[0], pos[0], strings.Join(spec.Hardware, ","), *until)
				return nil
			}
		}}
}

// ProductJSON is one product in `uptrust product list --json`.
type ProductJSON struct {
	Name     string    `json:"name"`
	Model    string    `json:"model"`
	Hardware []string  `json:"hardware"`
	Created  time.Time `json:"created"`
}

func cmdProductList(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "list", Synopsis: "list the products",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("product list takes no arguments")
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]ProductJSON, error) {
					return listAll[ProductJSON](ctx, c, "/products", nil)
				}, func(p *project.Project) ([]ProductJSON, error) {
					ps, err := p.Store.Products(ctx)
					if err != nil {
						return nil, err
					}
					out := make([]ProductJSON, 0, len(ps))
					for _, pr := range ps {
						out = append(out, ProductJSON{Name: pr.Name, Model: pr.Model, Hardware: nonNil(pr.Hardware), Created: pr.Created.UTC()})
					}
					return out, nil
				})
				if err != nil {
					return err
				}
				return printProducts(env, out, *asJSON)
			}
		}}
}

func printProducts(env Env, ps []ProductJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, ps)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tMODEL\tHARDWARE")
	for _, pr := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", pr.Name, pr.Model, strings.Join(pr.Hardware, ","))
	}
	return tw.Flush()
}

func cmdProductSupportExtend(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "extend", Args: "PRODUCT", Synopsis: "extend a product's support and re-issue its signed declaration",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			blobs := blobsFlag(fs, env)
			until := fs.String("until", "", "new last day of support, YYYY-MM-DD (required)")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 || *until == "" {
					return usagef("product support extend: want PRODUCT --until YYYY-MM-DD")
				}
				p, err := openProjectBlobs(ctx, env, *dir, *blobs)
				if err != nil {
					return err
				}
				defer p.Close()
				sup, err := p.ExtendSupport(ctx, pos[0], *until)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "support for %s now ends %s (signed declaration re-issued)\n", sup.Product, sup.Until)
				return nil
			}
		}}
}

func cmdProductPolicy(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "policy", Args: "PRODUCT", Synopsis: "set the maker's update policy of a product",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			blobs := blobsFlag(fs, env)
			auto := fs.String("auto-install", "security,fix,feature", "release kinds that install without the owner's action")
			postpone := fs.Int("max-postpone-days", 30, "longest an owner may postpone automatic updates")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("product policy: want PRODUCT")
				}
				pol, err := parsePolicy(*auto, *postpone)
				if err != nil {
					return err
				}
				p, err := openProjectBlobs(ctx, env, *dir, *blobs)
				if err != nil {
					return err
				}
				defer p.Close()
				if _, err := p.SetPolicy(ctx, pos[0], pol); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "policy for %s: auto-install %s, owners may postpone up to %d days\n", pos[0], *auto, *postpone)
				return nil
			}
		}}
}

// ProductShowJSON is `uptrust product show --json`: the product's signed
// support declaration with the policy devices apply.
type ProductShowJSON struct {
	Product         string    `json:"product"`
	Model           string    `json:"model"`
	Hardware        []string  `json:"hardware"`
	SupportUntil    string    `json:"support_until"`
	Contact         string    `json:"contact"`
	AutoInstall     []string  `json:"auto_install"`
	MaxPostponeDays int       `json:"max_postpone_days"`
	Issued          time.Time `json:"issued"`
}

func cmdProductShow(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "show", Args: "PRODUCT", Synopsis: "show a product's support declaration and policy",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 1 {
					return usagef("product show: want PRODUCT")
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) (ProductShowJSON, error) {
					return apiGet[ProductShowJSON](ctx, c, "/products/"+url.PathEscape(pos[0]))
				}, func(p *project.Project) (ProductShowJSON, error) {
					sup, err := p.Support(ctx, pos[0])
					if err != nil {
						return ProductShowJSON{}, err
					}
					pol := sup.EffectivePolicy()
					out := ProductShowJSON{Product: sup.Product, Model: sup.Model, Hardware: nonNil(sup.Hardware), SupportUntil: sup.Until,
						Contact: sup.Contact, AutoInstall: []string{}, MaxPostponeDays: pol.MaxPostponeDays, Issued: sup.Issued.UTC()}
					for _, k := range pol.AutoInstall {
						out.AutoInstall = append(out.AutoInstall, string(k))
					}
					return out, nil
				})
				if err != nil {
					return err
				}
				return printProductShow(env, out, *asJSON)
			}
		}}
}

func printProductShow(env Env, out ProductShowJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stdout, "product:        %s\nmodel:          %s\nhardware:       %s\nsupport until:  %s\ncontact:        %s\nauto-install:   %v\nmax postpone:   %d days\nissued:         %s\n",
		out.Product, out.Model, strings.Join(out.Hardware, ","), out.SupportUntil, out.Contact, out.AutoInstall, out.MaxPostponeDays, out.Issued.Format("2006-01-02 15:04:05Z07:00"))
	return nil
}

// nonNil makes an empty list print as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func parsePolicy(auto string, postpone int) (release.Policy, error) {
	pol := release.Policy{MaxPostponeDays: postpone}
	for _, k := range splitList(auto) {
		kind, err := release.ParseKind(k)
		if err != nil {
			return pol, usagef("--auto-install: %v", err)
		}
		pol.AutoInstall = append(pol.AutoInstall, kind)
	}
	if err := pol.Validate(); err != nil {
		return pol, usagef("%v", err)
	}
	return pol, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func cmdRelease(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "release", Synopsis: "publish and list releases",
		Sub: []*cmdline.Command{cmdReleaseAdd(env), cmdReleaseList(env)}}
}

func cmdReleaseAdd(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "add", Args: "PRODUCT VERSION FILE", Files: true,
		Synopsis: "sign and publish FILE as release VERSION of PRODUCT",
		Long: `Offline keys sign the release; it is offered to devices once a rollout starts
(uptrust rollout start). The declared impact (--data-collection, --new-recipient,
--functionality) decides whether devices install it by themselves or wait for
the owner's consent.`,
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			kind := fs.String("kind", "", "security, fix or feature (required)")
			sv := fs.String("security-version", "", "monotonic security `number` (required)")
			notesFile := fs.String("notes", "", "`file` with release notes")
			hw := fs.String("hardware", "", "comma-separated hardware revisions (default: all of the product's)")
			var adv, recipients multiFlag
			fs.Var(&adv, "advisory", "`ID:SUMMARY` of a fixed vulnerability (repeatable)")
			dataColl := fs.String("data-collection", "none", "does the release collect more, less or no different data: more|less|none")
			dataText := fs.String("data-collection-text", "", "what data is collected in addition, and why")
			fs.Var(&recipients, "new-recipient", "a party that receives data from the device for the first time (repeatable)")
			recipText := fs.String("new-recipients-text", "", "what the new recipients receive, and why")
			function := fs.String("functionality", "none", "does the release add or remove functions: more|less|none")
			funcText := fs.String("functionality-text", "", "what is removed or added")
			secOnly := fs.Bool("security-only", false, "a security-only build (for owners who decline a feature build)")
			secOnlyOf := fs.String("security-only-of", "", "the feature `version` this security-only build stands in for")
			compress := fs.String("compress", "none", "store the payload compressed: none|zstd (devices verify the decompressed image too)")
			zstdFrame := fs.String("zstd-frame", "", "with --compress zstd: start an independent zstd frame every `SIZE` bytes of the image (e.g. 4MiB), so that devices streaming it into the slot resume after a power loss at a frame boundary (default: one frame)")
			blobs := blobsFlag(fs, env)
			deltaFrom := fs.String("delta-from", "", "comma-separated earlier `versions`: publish a delta from each one's image to this release")
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 3 {
					return usagef("release add: want PRODUCT VERSION FILE")
				}
				k, err := release.ParseKind(*kind)
				if err != nil {
					return usagef("release add: --kind: %v", err)
				}
				if err := project.CheckCompression(*compress); err != nil {
					return usagef("release add: --compress: %v", err)
				}
				var frame int64
				if *zstdFrame != "" {
					size, err := units.ParseByteSize(*zstdFrame)
					if frame = int64(size); err != nil || frame == 0 {
						return usagef("release add: --zstd-frame %q: want a size such as 4MiB", *zstdFrame)
					}
				}
				if err := project.CheckZstdFrame(*compress, frame); err != nil {
					return usagef("release add: --zstd-frame %q with --compress %s: %v", *zstdFrame, *compress, err)
				}
				if *sv == "" {
					return usagef("release add: --security-version is required")
				}
				secv, err := strconv.ParseUint(*sv, 10, 64)
				if err != nil {
					return usagef("release add: --security-version %q is not a non-negative integer", *sv)
				}
				var notes string
				if *notesFile != "" {
					b, err := os.ReadFile(*notesFile)
					if err != nil {
						return fmt.Errorf("release add: notes: %w", err)
					}
					notes = string(b)
				}
				var advisories []release.Advisory
				for _, a := range adv {
					id, summary, _ := strings.Cut(a, ":")
					advisories = append(advisories, release.Advisory{ID: strings.TrimSpace(id), Summary: strings.TrimSpace(summary)})
				}
				f, err := os.Open(pos[2])
				if err != nil {
					return fmt.Errorf("release add: payload: %w", err)
				}
				defer f.Close()
				p, err := openProjectBlobs(ctx, env, *dir, *blobs)
				if err != nil {
					return err
				}
				defer p.Close()
				p.Progress = progress.ForWriter(env.Stderr, false)
				impact := release.Impact{DataCollection: release.Change(*dataColl), DataCollectionText: *dataText,
					NewRecipients: recipients, NewRecipientsText: *recipText, Functionality: release.Change(*function), FunctionalityText: *funcText}
				pub, err := p.AddRelease(ctx, project.ReleaseSpec{Product: pos[0], Version: pos[1], Payload: f, Kind: k,
					SecurityVersion: secv, Notes: notes, Hardware: splitList(*hw), Advisories: advisories, Impact: impact,
					SecurityOnly: *secOnly, SecurityOnlyOf: *secOnlyOf, Compression: *compress, ZstdFrame: frame, DeltaFrom: splitList(*deltaFrom)})
				if err != nil {
					return err
				}
				rel, m := pub.Release, pub.Manifest
				fmt.Fprintf(env.Stdout, "published %s %s (%s, security version %d): %d bytes, sha256 %s\n",
					rel.Product, rel.Version, rel.Kind, rel.SecurityVersion, rel.Length, rel.SHA256)
				if m.Payload.Compression == release.CompressionZstd {
					fmt.Fprintf(env.Stdout, "zstd-compressed; image %d bytes, sha256 %s\n", m.Payload.ImageLength, m.Payload.ImageSHA256)
				}
				for _, d := range m.Deltas {
					fmt.Fprintf(env.Stdout, "delta from %s: %s, %d bytes, sha256 %s\n", d.From, d.Target, d.Length, d.SHA256)
				}
				return nil
			}
		}}
}

// ReleaseJSON is one release in `uptrust release list --json`. Offered is
// the product's rollout when it offers this release, else null.
type ReleaseJSON struct {
	Product         string       `json:"product"`
	Version         string       `json:"version"`
	Kind            string       `json:"kind"`
	SecurityVersion uint64       `json:"security_version"`
	Bytes           int64        `json:"bytes"`
	SHA256          string       `json:"sha256"`
	Published       time.Time    `json:"published"`
	Offered         *OfferedJSON `json:"offered"`
}

// OfferedJSON is the rollout offering a release.
type OfferedJSON struct {
	Percent int  `json:"percent"`
	Halted  bool `json:"halted"`
}

func cmdReleaseList(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "list", Args: "[PRODUCT]", Synopsis: "list the releases, of one product or all, with the rollout offering each",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				product := ""
				if len(pos) == 1 {
					product = pos[0]
				} else if len(pos) > 1 {
					return usagef("release list: at most one PRODUCT")
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]ReleaseJSON, error) {
					q := url.Values{}
					if product != "" {
						q.Set("product", product)
					}
					return listAll[ReleaseJSON](ctx, c, "/releases", q)
				}, func(p *project.Project) ([]ReleaseJSON, error) {
					if err := p.CheckProduct(ctx, product); err != nil {
						return nil, err
					}
					rels, err := p.Store.Releases(ctx, product)
					if err != nil {
						return nil, err
					}
					ros := map[string]store.Rollout{}
					if all, err := p.Store.Rollouts(ctx); err == nil {
						for _, r := range all {
							ros[r.Product] = r
						}
					}
					out := make([]ReleaseJSON, 0, len(rels))
					for _, r := range rels {
						rj := ReleaseJSON{Product: r.Product, Version: r.Version, Kind: r.Kind, SecurityVersion: r.SecurityVersion,
							Bytes: r.Length, SHA256: r.SHA256, Published: r.Created.UTC()}
						if ro, ok := ros[r.Product]; ok && ro.Version == r.Version {
							rj.Offered = &OfferedJSON{Percent: ro.Percent, Halted: ro.Halted}
						}
						out = append(out, rj)
					}
					return out, nil
				})
				if err != nil {
					return err
				}
				return printReleases(env, out, *asJSON)
			}
		}}
}

func printReleases(env Env, rels []ReleaseJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, rels)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tVERSION\tKIND\tSECURITY\tBYTES\tSHA256\tPUBLISHED\tOFFERED")
	for _, r := range rels {
		offered := ""
		if r.Offered != nil {
			offered = fmt.Sprintf("%d%%", r.Offered.Percent)
			if r.Offered.Halted {
				offered += " (halted)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.12s\t%s\t%s\n", r.Product, r.Version, r.Kind, r.SecurityVersion, r.Bytes, r.SHA256,
			r.Published.Format("2006-01-02 15:04"), offered)
	}
	return tw.Flush()
}

func cmdRollout(env Env) *cmdline.Command {
	change := func(name, args, synopsis string, want int, apply func(pos []string) (func(*store.Rollout), error)) *cmdline.Command {
		return &cmdline.Command{Name: name, Args: args, Synopsis: synopsis,
			Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
				dir := dirFlag(fs, env)
				rf := addRemote(fs, env)
				return func(ctx context.Context, pos []string) error {
					if len(pos) != want {
						return usagef("rollout %s: want %s", name, args)
					}
					fn, err := apply(pos)
					if err != nil {
						return err
					}
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
	setPercent := change("set-percent", "PRODUCT P", "change the share of devices offered the rollout", 2,
		func(pos []string) (func(*store.Rollout), error) {
			pc, err := strconv.Atoi(pos[1])
			if err != nil {
				return nil, usagef("rollout set-percent: %q is not a number", pos[1])
			}
			return func(r *store.Rollout) { r.Percent = pc }, nil
		})
	halt := change("halt", "PRODUCT", "stop offering the rollout to more devices", 1,
		func([]string) (func(*store.Rollout), error) { return func(r *store.Rollout) { r.Halted = true }, nil })
	return &cmdline.Command{Name: "rollout", Synopsis: "offer releases to devices, in stages",
		Sub: []*cmdline.Command{cmdRolloutStart(env), setPercent, halt, cmdRolloutResume(env), cmdRolloutList(env),
			cmdRolloutStatus(env), cmdRolloutOp(env, "pause", "pause a managed product's rollout in waves"),
			cmdRolloutOp(env, "abort", "stop a managed product's rollout in waves for good")}}
}

func changeRollout(ctx context.Context, env Env, dir, product string, fn func(*store.Rollout)) error {
	p, err := openProject(ctx, env, dir)
	if err != nil {
		return err
	}
	defer p.Close()
	ro, err := p.ChangeRollout(ctx, product, fn)
	if err != nil {
		return err
	}
	printRollout(env, ro)
	return nil
}

func printRollout(env Env, ro store.Rollout) {
	state := "running"
	if ro.Halted {
		state = "halted"
	}
	fmt.Fprintf(env.Stdout, "rollout of %s %s: %d%% of devices, %s\n", ro.Product, ro.Version, ro.Percent, state)
}

// RolloutJSON is one rollout in `uptrust rollout list --json`.
type RolloutJSON struct {
	Product string    `json:"product"`
	Version string    `json:"version"`
	Percent int       `json:"percent"`
	Halted  bool      `json:"halted"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

func cmdRolloutList(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "list", Synopsis: "list the rollouts, one per product",
		Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
			dir := dirFlag(fs, env)
			asJSON := jsonFlag(fs)
			rf := addRemote(fs, env)
			return func(ctx context.Context, pos []string) error {
				if len(pos) != 0 {
					return usagef("rollout list takes no arguments")
				}
				out, err := localOrRemote(ctx, env, rf, *dir, func(c *apiClient) ([]RolloutJSON, error) {
					return listAll[RolloutJSON](ctx, c, "/rollouts", nil)
				}, func(p *project.Project) ([]RolloutJSON, error) {
					all, err := p.Store.Rollouts(ctx)
					if err != nil {
						return nil, err
					}
					out := make([]RolloutJSON, 0, len(all))
					for _, r := range all {
						out = append(out, RolloutJSON{Product: r.Product, Version: r.Version, Percent: r.Percent, Halted: r.Halted,
							Started: r.Start.UTC(), Updated: r.Updated.UTC()})
					}
					return out, nil
				})
				if err != nil {
					return err
				}
				return printRollouts(env, out, *asJSON)
			}
		}}
}

func printRollouts(env Env, all []RolloutJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, all)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tVERSION\tPERCENT\tHALTED\tSTARTED")
	for _, r := range all {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\n", r.Product, r.Version, r.Percent, r.Halted, r.Started.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}
