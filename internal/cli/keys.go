package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrust/uptrust/internal/keys"
)

// cmdKeys runs "keys migrate" (rewrite offline keys still on the legacy
// scrypt KDF with Argon2id, same passphrase) and "keys passphrase"
// (re-encrypt every offline key under a new passphrase).
func cmdKeys(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || (args[0] != "migrate" && args[0] != "passphrase") {
		return usagef("keys: want migrate or passphrase")
	}
	fs, dir := flags(env, "keys "+args[0])
	holder := fs.String("holder", "", "re-encrypt only this root key holder's key files (keys passphrase)")
	if pos, err := parse(fs, args[1:]); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("keys %s takes no arguments", args[0])
	}
	if *holder != "" {
		if args[0] != "passphrase" {
			return usagef("keys migrate: --holder goes with keys passphrase")
		}
		return keysHolderPassphrase(ctx, env, *dir, *holder)
	}
	p, err := openProject(ctx, env, *dir)
	if err != nil {
		return err
	}
	defer p.Close()
	var newPass []byte
	if args[0] == "passphrase" {
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
