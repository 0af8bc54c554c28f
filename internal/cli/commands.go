package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/uptrust/uptrust/internal/progress"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/units"
)

func cmdInit(ctx context.Context, env Env, args []string) error {
	fs, dir := flags(env, "init")
	dev := fs.Bool("dev", false, "1-of-1 unencrypted keys, for trying things out only")
	holders, threshold := holderFlags(fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("init takes no arguments")
	}
	if err := checkHolderFlags(splitList(*holders), *threshold, *dev); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	p, err := project.Init(ctx, *dir, project.InitOptions{Dev: *dev, KeyHolders: splitList(*holders), RootThreshold: *threshold,
		Options: project.Options{Passphrase: passphrase(env, true), HolderPassphrase: holderPassphrase(env, true)}})
	if err != nil {
		return err
	}
	defer p.Close()
	if *dev {
		fmt.Fprintln(env.Stderr, `
  ************************************************************************
  *  DEVELOPMENT PROJECT: every key is 1-of-1 and stored UNENCRYPTED.     *
  *  Anyone who copies this directory can sign firmware for your devices. *
  *  Never ship devices provisioned with these roots.                     *
  ************************************************************************`)
	}
	fmt.Fprintf(env.Stdout, "initialised uptrust project in %s\n", *dir)
	fmt.Fprintf(env.Stdout, "  root keys: %d, threshold %d (release and fleet repositories)\n", p.Config.RootKeys, p.Config.RootThreshold)
	for _, h := range p.Config.Holders() {
		fmt.Fprintf(env.Stdout, "  key holder %s: %s, %s\n", h, project.HolderKeyPath(*dir, "release", h), project.HolderKeyPath(*dir, "fleet", h))
	}
	fmt.Fprintf(env.Stdout, "  offline keys: %s/keys/offline (move them off this machine after setup)\n", *dir)
	fmt.Fprintf(env.Stdout, "  online keys:  %s/keys/online (the server needs these)\n", *dir)
	fmt.Fprintf(env.Stdout, "  device roots: %s, %s\n", project.DeviceRootPath(*dir, "release"), project.DeviceRootPath(*dir, "fleet"))
	return nil
}

func cmdProduct(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return usagef("product: want add or list")
	}
	fs, dir := flags(env, "product "+args[0])
	switch args[0] {
	case "add":
		hw := fs.String("hardware", "", "comma-separated hardware revisions")
		until := fs.String("support-until", "", "last day of security support, YYYY-MM-DD")
		model := fs.String("model", "", "model designation shown to owners (default: the name)")
		contact := fs.String("contact", "", "where owners report security issues")
		auto := fs.String("auto-install", "security,fix,feature", "release kinds that install without the owner's action (when without adverse impact)")
		postpone := fs.Int("max-postpone-days", 30, "longest an owner may postpone automatic updates")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("product add: want exactly one NAME")
		}
		if *until == "" {
			return usagef("product add: --support-until is required (owners must know how long the device is supported)")
		}
		p, err := openProject(ctx, env, *dir)
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
	case "list":
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		p, err := openProject(ctx, env, *dir)
		if err != nil {
			return err
		}
		defer p.Close()
		ps, err := p.Store.Products(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PRODUCT\tMODEL\tHARDWARE")
		for _, pr := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", pr.Name, pr.Model, strings.Join(pr.Hardware, ","))
		}
		return tw.Flush()
	case "support":
		if len(args) < 2 || args[1] != "extend" {
			return usagef("product support: want extend PRODUCT --until YYYY-MM-DD")
		}
		until := fs.String("until", "", "new last day of support, YYYY-MM-DD")
		pos, err := parse(fs, args[2:])
		if err != nil {
			return err
		}
		if len(pos) != 1 || *until == "" {
			return usagef("product support extend: want PRODUCT --until YYYY-MM-DD")
		}
		p, err := openProject(ctx, env, *dir)
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
	case "policy":
		auto := fs.String("auto-install", "security,fix,feature", "release kinds that install without the owner's action")
		postpone := fs.Int("max-postpone-days", 30, "longest an owner may postpone automatic updates")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("product policy: want PRODUCT")
		}
		pol, err := parsePolicy(*auto, *postpone)
		if err != nil {
			return err
		}
		p, err := openProject(ctx, env, *dir)
		if err != nil {
			return err
		}
		defer p.Close()
		if _, err := p.SetPolicy(ctx, pos[0], pol); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "policy for %s: auto-install %s, owners may postpone up to %d days\n", pos[0], *auto, *postpone)
		return nil
	case "show":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("product show: want PRODUCT")
		}
		p, err := openProject(ctx, env, *dir)
		if err != nil {
			return err
		}
		defer p.Close()
		sup, err := p.Support(ctx, pos[0])
		if err != nil {
			return err
		}
		pol := sup.EffectivePolicy()
		fmt.Fprintf(env.Stdout, "product:        %s\nmodel:          %s\nhardware:       %s\nsupport until:  %s\ncontact:        %s\nauto-install:   %v\nmax postpone:   %d days\nissued:         %s\n",
			sup.Product, sup.Model, strings.Join(sup.Hardware, ","), sup.Until, sup.Contact, pol.AutoInstall, pol.MaxPostponeDays, sup.Issued.Format("2006-01-02 15:04:05Z07:00"))
		return nil
	}
	return usagef("product: unknown subcommand %q", args[0])
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

func cmdRelease(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return usagef("release: want add or list")
	}
	fs, dir := flags(env, "release "+args[0])
	switch args[0] {
	case "add":
		kind := fs.String("kind", "", "security, fix or feature")
		sv := fs.String("security-version", "", "monotonic security version")
		notesFile := fs.String("notes", "", "file with release notes")
		hw := fs.String("hardware", "", "comma-separated hardware revisions (default: all of the product's)")
		var adv, recipients multiFlag
		fs.Var(&adv, "advisory", "ID:SUMMARY of a fixed vulnerability (repeatable)")
		dataColl := fs.String("data-collection", "none", "does the release collect more, less or no different data: more|less|none")
		dataText := fs.String("data-collection-text", "", "what data is collected in addition, and why")
		fs.Var(&recipients, "new-recipient", "a party that receives data from the device for the first time (repeatable)")
		recipText := fs.String("new-recipients-text", "", "what the new recipients receive, and why")
		function := fs.String("functionality", "none", "does the release add or remove functions: more|less|none")
		funcText := fs.String("functionality-text", "", "what is removed or added")
		secOnly := fs.Bool("security-only", false, "a security-only build (for owners who decline a feature build)")
		secOnlyOf := fs.String("security-only-of", "", "the feature version this security-only build stands in for")
		compress := fs.String("compress", "none", "store the payload compressed: none|zstd (devices verify the decompressed image too)")
		zstdFrame := fs.String("zstd-frame", "", "with --compress zstd: start an independent zstd frame every SIZE bytes of the image (e.g. 4MiB), so that devices streaming it into the slot resume after a power loss at a frame boundary (default: one frame)")
		deltaFrom := fs.String("delta-from", "", "comma-separated earlier versions: publish a delta from each one's image to this release")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
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
		p, err := openProject(ctx, env, *dir)
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
	case "list":
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		product := ""
		if len(pos) == 1 {
			product = pos[0]
		} else if len(pos) > 1 {
			return usagef("release list: at most one PRODUCT")
		}
		p, err := openProject(ctx, env, *dir)
		if err != nil {
			return err
		}
		defer p.Close()
		if err := p.CheckProduct(ctx, product); err != nil {
			return err
		}
		rels, err := p.Store.Releases(ctx, product)
		if err != nil {
			return err
		}
		ros := map[string]store.Rollout{}
		if all, err := p.Store.Rollouts(ctx); err == nil {
			for _, r := range all {
				ros[r.Product] = r
			}
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PRODUCT\tVERSION\tKIND\tSECURITY\tBYTES\tSHA256\tPUBLISHED\tOFFERED")
		for _, r := range rels {
			offered := ""
			if ro, ok := ros[r.Product]; ok && ro.Version == r.Version {
				offered = fmt.Sprintf("%d%%", ro.Percent)
				if ro.Halted {
					offered += " (halted)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.12s\t%s\t%s\n", r.Product, r.Version, r.Kind, r.SecurityVersion, r.Length, r.SHA256,
				r.Created.Format("2006-01-02 15:04"), offered)
		}
		return tw.Flush()
	}
	return usagef("release: unknown subcommand %q", args[0])
}

func cmdRollout(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return usagef("rollout: want start, set-percent, halt, resume or list")
	}
	sub := args[0]
	fs, dir := flags(env, "rollout "+sub)
	percent := fs.Int("percent", -1, "share of devices, 0..100")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	// Check the command line before touching the project, so a usage
	// mistake is reported as one wherever it is typed.
	want := map[string]int{"start": 2, "set-percent": 2, "halt": 1, "resume": 1, "list": 0}
	n, known := want[sub]
	if !known {
		return usagef("rollout: unknown subcommand %q", sub)
	}
	if len(pos) != n || (sub == "start" && *percent < 0) {
		switch sub {
		case "start":
			return usagef("rollout start: want PRODUCT VERSION --percent P")
		case "set-percent":
			return usagef("rollout set-percent: want PRODUCT P")
		case "list":
			return usagef("rollout list takes no arguments")
		default:
			return usagef("rollout %s: want PRODUCT", sub)
		}
	}
	p, err := openProject(ctx, env, *dir)
	if err != nil {
		return err
	}
	defer p.Close()
	var ro store.Rollout
	switch sub {
	case "start":
		if len(pos) != 2 || *percent < 0 {
			return usagef("rollout start: want PRODUCT VERSION --percent P")
		}
		ro, err = p.StartRollout(ctx, pos[0], pos[1], *percent)
	case "set-percent":
		if len(pos) != 2 {
			return usagef("rollout set-percent: want PRODUCT P")
		}
		pc, perr := strconv.Atoi(pos[1])
		if perr != nil {
			return usagef("rollout set-percent: %q is not a number", pos[1])
		}
		ro, err = p.ChangeRollout(ctx, pos[0], func(r *store.Rollout) { r.Percent = pc })
	case "halt", "resume":
		if len(pos) != 1 {
			return usagef("rollout %s: want PRODUCT", sub)
		}
		ro, err = p.ChangeRollout(ctx, pos[0], func(r *store.Rollout) { r.Halted = sub == "halt" })
	case "list":
		all, err := p.Store.Rollouts(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PRODUCT\tVERSION\tPERCENT\tHALTED\tSTARTED")
		for _, r := range all {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\n", r.Product, r.Version, r.Percent, r.Halted, r.Start.Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	default:
		return usagef("rollout: unknown subcommand %q", sub)
	}
	if err != nil {
		return err
	}
	state := "running"
	if ro.Halted {
		state = "halted"
	}
	fmt.Fprintf(env.Stdout, "rollout of %s %s: %d%% of devices, %s\n", ro.Product, ro.Version, ro.Percent, state)
	return nil
}
