package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/keys"
)

// cmdKeys runs "keys migrate" (rewrite offline keys still on the legacy
// scrypt KDF with Argon2id, same passphrase) and "keys passphrase"
// (re-encrypt every offline key under a new passphrase).
func cmdKeys(env Env) *cmdline.Command {
	return &cmdline.Command{Name: "keys", Synopsis: "re-encrypt the offline keys",
		Sub: []*cmdline.Command{
			{Name: "migrate", Synopsis: "rewrite offline keys still on the legacy scrypt KDF with Argon2id, same passphrase",
				Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
					dir := dirFlag(fs, env)
					return func(ctx context.Context, pos []string) error {
						if len(pos) != 0 {
							return usagef("keys migrate takes no arguments")
						}
						return runKeys(ctx, env, *dir, "migrate")
					}
				}},
			{Name: "passphrase", Synopsis: "re-encrypt the offline keys under a new passphrase ($UPTRUST_NEW_PASSPHRASE, else a prompt)",
				Long: `Without --holder every offline key but the root key holders' is re-encrypted;
with --holder only that holder's root key files are.`,
				Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
					dir := dirFlag(fs, env)
					holder := fs.String("holder", "", "re-encrypt only this root key holder's key files")
					return func(ctx context.Context, pos []string) error {
						if len(pos) != 0 {
							return usagef("keys passphrase takes no arguments")
						}
						if *holder != "" {
							return keysHolderPassphrase(ctx, env, *dir, *holder)
						}
						return runKeys(ctx, env, *dir, "passphrase")
					}
				}},
		}}
}

func runKeys(ctx context.Context, env Env, dir, sub string) error {
	p, err := openProject(ctx, env, dir)
	if err != nil {
		return err
	}
	defer p.Close()
	var newPass []byte
	if sub == "passphrase" {
		if newPass, err = newPassphrase(env); err != nil {
			return err
		}
	}
	done, err := p.ReencryptKeys(newPass)
	for _, f := range done {
		fmt.Fprintf(env.Stdout, "re-encrypted %s (argon2id)\n", f)
	}
	if err != nil {
		return err
	}
	if len(done) == 0 {
		fmt.Fprintln(env.Stdout, "all offline keys already use argon2id; nothing to do")
	}
	return nil
}

// newPassphrase reads the new offline-key passphrase from
// UPTRUST_NEW_PASSPHRASE or, confirmed, from the terminal, and checks its
// strength before anything is decrypted.
func newPassphrase(env Env) ([]byte, error) {
	p := []byte(env.Getenv("UPTRUST_NEW_PASSPHRASE"))
	if len(p) == 0 {
		if env.Prompt == nil {
			return nil, errors.New("keys passphrase: set UPTRUST_NEW_PASSPHRASE (no terminal to ask on)")
		}
		var err error
		if p, err = env.Prompt("New passphrase for offline keys: "); err != nil {
			return nil, err
		}
		again, err := env.Prompt("Repeat new passphrase: ")
		if err != nil {
			return nil, err
		}
		if string(again) != string(p) {
			return nil, errors.New("keys passphrase: the passphrases differ")
		}
	}
	if err := keys.CheckPassphrase(p); err != nil {
		return nil, fmt.Errorf("keys passphrase: new passphrase: %w", err)
	}
	return p, nil
}
