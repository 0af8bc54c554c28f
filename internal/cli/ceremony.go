package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/project"
)

// holderPassphrase returns a root key holder's passphrase from
// UPTRUST_PASSPHRASE_<HOLDER> or a prompt that names the holder, asked
// twice when confirm is set.
func holderPassphrase(env Env, confirm bool) func(string) ([]byte, error) {
	return func(holder string) ([]byte, error) {
		v := project.HolderEnv(holder)
		if p := env.Getenv(v); p != "" {
			return []byte(p), nil
		}
		if env.Prompt == nil {
			return nil, fmt.Errorf("key holder %s: set %s (no terminal to ask on)", holder, v)
		}
		p, err := env.Prompt(fmt.Sprintf("Passphrase of key holder %s: ", holder))
		if err != nil {
			return nil, err
		}
		if confirm {
			again, err := env.Prompt(fmt.Sprintf("Repeat passphrase of key holder %s: ", holder))
			if err != nil {
				return nil, err
			}
			if string(again) != string(p) {
				return nil, fmt.Errorf("key holder %s: the passphrases differ", holder)
			}
		}
		return p, nil
	}
}

// openHolderProject opens a project whose key holders may be asked for
// their passphrases.
func openHolderProject(ctx context.Context, env Env, dir string, confirm bool) (*project.Project, error) {
	return project.Open(ctx, dir, project.Options{Passphrase: passphrase(env, false), HolderPassphrase: holderPassphrase(env, confirm), Database: env.Getenv(DatabaseEnv),
		Warn: func(s string) { fmt.Fprintln(env.Stderr, "uptrust: warning:", s) }})
}

// keyFiles is a repeatable --key flag.
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

// cmdRoot runs the root changes of a key ceremony: "root propose" writes a
// proposal, "root sign" adds one holder's signatures (on any machine with
// the proposal file and the holder's key file), "root status" shows who
// signed and who is missing, "root publish" publishes what meets both
// thresholds.
func cmdRoot(env Env) *cmdline.Command {
	statusOrPublish := func(name, synopsis string) *cmdline.Command {
		return &cmdline.Command{Name: name, Args: "[SIGNED-COPY...]", Synopsis: synopsis, Files: true,
			Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
				dir := dirFlag(fs, env)
				var asJSON *bool
				if name == "status" {
					asJSON = jsonFlag(fs)
				}
				return func(ctx context.Context, pos []string) error {
					p, err := openHolderProject(ctx, env, *dir, false)
					if err != nil {
						return err
					}
					defer p.Close()
					if name == "status" {
						sts, err := p.CollectProposals(ctx, pos...)
						if err != nil {
							return err
						}
						if *asJSON {
							return writeJSON(env.Stdout, proposalsJSON(sts))
						}
						if len(sts) == 0 {
							fmt.Fprintln(env.Stdout, "no root change is pending")
						}
						for _, st := range sts {
							printStatus(env, st)
						}
						return nil
					}
					done, err := p.PublishRoot(ctx, pos...)
					for _, st := range done {
						fmt.Fprintf(env.Stdout, "published %s root v%d (%s); device roots rewritten in %s/device\n", st.Repository, st.Version, st.Change, *dir)
					}
					return err
				}
			}}
	}
	return &cmdline.Command{Name: "root", Synopsis: "change a repository's root with the key holders' signatures, one holder at a time",
		Long: `A root change is proposed (root propose), signed by each key holder on their
own machine if they like (root sign), and published once go-tuf finds both the
old and the new root's thresholds met (root publish). A key holder's passphrase
comes from $UPTRUST_PASSPHRASE_<HOLDER> (upper case, characters other than
letters and digits as _), or a prompt naming them.`,
		Sub: []*cmdline.Command{
			{Name: "propose", Args: "release|fleet", Synopsis: "write a proposal for the repository's next root (re-sign, rotate, add or remove holders, threshold)",
				Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
					dir := dirFlag(fs, env)
					rotate := fs.String("rotate", "", "comma-separated key holders whose root key is replaced by a new one")
					add := fs.String("add-holder", "", "comma-separated new key holders, each given a new root key")
					remove := fs.String("remove-holder", "", "comma-separated key holders whose root key leaves the root")
					threshold := fs.Int("threshold", 0, "new root threshold (default: unchanged)")
					return func(ctx context.Context, pos []string) error {
						if len(pos) != 1 {
							return usagef("root propose: want exactly one REPO (release or fleet)")
						}
						p, err := openHolderProject(ctx, env, *dir, true)
						if err != nil {
							return err
						}
						defer p.Close()
						path, err := p.ProposeRoot(ctx, pos[0], project.RootChange{Rotate: splitList(*rotate), Add: splitList(*add),
							Remove: splitList(*remove), Threshold: *threshold})
						if err != nil {
							return err
						}
						fmt.Fprintf(env.Stdout, "proposed: %s\n", path)
						return printProposal(env, path)
					}
				}},
			{Name: "sign", Args: "[PROPOSAL-FILE]", Files: true, Synopsis: "add a key holder's signature to a proposal (needs only that holder's key files and passphrase)",
				Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
					dir := dirFlag(fs, env)
					holder := fs.String("holder", "", "key holder who signs (required)")
					var files keyFiles
					fs.Var(&files, "key", "root key file to sign with (repeatable; default: the holder's key files in the project)")
					return func(ctx context.Context, pos []string) error {
						if *holder == "" {
							return usagef("root sign: --holder NAME is required")
						}
						if len(pos) > 1 {
							return usagef("root sign: want at most one PROPOSAL-FILE")
						}
						return rootSign(env, *dir, *holder, files, pos)
					}
				}},
			statusOrPublish("status", "show each pending proposal: who signed, what each threshold still needs (signed copies given are merged)"),
			statusOrPublish("publish", "publish the pending proposals whose old and new thresholds are met (signed copies given are merged)"),
		}}
}

// rootSign signs the proposal pos[0] (default: the only pending proposal
// of the project in dir) with holder's key files.
func rootSign(env Env, dir, holder string, files []string, pos []string) error {
	var path string
	if len(pos) == 1 {
		path = pos[0]
	} else {
		pending, err := project.PendingProposals(dir)
		if err != nil {
			return err
		}
		switch len(pending) {
		case 0:
			return fmt.Errorf("root sign: no root change is pending in %s; name the PROPOSAL-FILE", dir)
		case 1:
			path = pending[0]
		default:
			return usagef("root sign: %d root changes are pending (%s): name the PROPOSAL-FILE", len(pending), strings.Join(pending, ", "))
		}
	}
	if len(files) == 0 {
		pr, err := project.ReadProposal(path)
		if err != nil {
			return err
		}
		if files = project.HolderKeyFiles(dir, pr.Repository, holder); len(files) == 0 {
			return fmt.Errorf("root sign: no %s root key file of %s in %s/keys/offline; give it with --key FILE", pr.Repository, holder, dir)
		}
	}
	st, err := project.SignProposal(path, holder, files, func() ([]byte, error) { return holderPassphrase(env, false)(holder) })
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "signed %s as %s\n", path, holder)
	printStatus(env, st)
	return nil
}

func printProposal(env Env, path string) error {
	pr, err := project.ReadProposal(path)
	if err != nil {
		return err
	}
	printStatus(env, pr.Status(path))
	return nil
}

// ProposalJSON is one pending root change in `uptrust root status --json`.
type ProposalJSON struct {
	Path        string        `json:"path"`
	Repository  string        `json:"repository"`
	Version     int64         `json:"version"`
	Change      string        `json:"change"`
	Diff        []string      `json:"diff"`
	Previous    ThresholdJSON `json:"previous"`
	New         ThresholdJSON `json:"new"`
	Publishable bool          `json:"publishable"`
}

// ThresholdJSON is how one root's threshold stands on a proposal: the
// holders (or key ids) of that root who signed and who did not.
type ThresholdJSON struct {
	Root      int64    `json:"root_version"`
	Threshold int      `json:"threshold"`
	Signed    []string `json:"signed"`
	Missing   []string `json:"missing"`
}

func proposalsJSON(sts []project.ProposalStatus) []ProposalJSON {
	th := func(t project.Threshold) ThresholdJSON {
		return ThresholdJSON{Root: t.Root, Threshold: t.Threshold, Signed: nonNil(t.Signed), Missing: nonNil(t.Missing)}
	}
	out := make([]ProposalJSON, 0, len(sts))
	for _, st := range sts {
		out = append(out, ProposalJSON{Path: st.Path, Repository: st.Repository, Version: st.Version, Change: st.Change,
			Diff: nonNil(st.Diff), Previous: th(st.Old), New: th(st.New), Publishable: st.Publishable()})
	}
	return out
}

func printStatus(env Env, st project.ProposalStatus) {
	fmt.Fprintf(env.Stdout, "%s: %s root v%d: %s\n", st.Path, st.Repository, st.Version, st.Change)
	for _, d := range st.Diff {
		fmt.Fprintf(env.Stdout, "  change: %s\n", d)
	}
	fmt.Fprintf(env.Stdout, "  previous %s\n  new      %s\n", st.Old, st.New)
	if st.Publishable() {
		fmt.Fprintln(env.Stdout, "  publishable: yes (uptrust root publish)")
	} else {
		fmt.Fprintln(env.Stdout, "  publishable: no (TUF needs the threshold of both the previous and the new root's keys)")
	}
}

// keysHolderPassphrase runs "keys passphrase --holder NAME": only that
// holder's root key files are re-encrypted, from their passphrase
// (UPTRUST_PASSPHRASE_<HOLDER> or a prompt) to the new one
// (UPTRUST_NEW_PASSPHRASE or a prompt).
func keysHolderPassphrase(ctx context.Context, env Env, dir, holder string) error {
	p, err := openHolderProject(ctx, env, dir, false)
	if err != nil {
		return err
	}
	defer p.Close()
	if !slices.Contains(p.Config.Holders(), holder) {
		return fmt.Errorf("keys passphrase: %q is not a key holder (holders: %s)", holder, strings.Join(p.Config.Holders(), ", "))
	}
	old, err := holderPassphrase(env, false)(holder)
	if err != nil {
		return err
	}
	newPass, err := newPassphrase(env)
	if err != nil {
		return err
	}
	done, err := p.ReencryptHolderKeys(holder, old, newPass)
	for _, f := range done {
		fmt.Fprintf(env.Stdout, "re-encrypted %s (key holder %s)\n", f, holder)
	}
	if err == nil && len(done) == 0 {
		fmt.Fprintf(env.Stdout, "the key files of %s already open with the new passphrase; nothing to do\n", holder)
	}
	return err
}

// holderFlags adds init's key ceremony flags to fs.
func holderFlags(fs *flag.FlagSet) (holders *string, threshold *int) {
	holders = fs.String("key-holders", "", "comma-separated names of the people who each hold one root key under their own passphrase")
	threshold = fs.Int("root-threshold", 0, "root keys that must sign a root change (default: a majority of the key holders)")
	return holders, threshold
}

// checkHolderFlags refuses init flags that do not go together.
func checkHolderFlags(holders []string, threshold int, dev bool) error {
	if len(holders) == 0 && threshold != 0 {
		return usagef("init: --root-threshold goes with --key-holders")
	}
	if len(holders) > 0 && dev {
		return errors.New("init: --key-holders needs encrypted keys; a --dev project has none")
	}
	return nil
}
