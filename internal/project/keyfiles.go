package project

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/uptrust/uptrust/internal/keys"
)

// ReencryptKeys rewrites every encrypted offline key file of the project
// (keys/offline/*.key; retired keys and key holders' root keys are left
// alone) with the current
// Argon2id parameters and returns the paths it rewrote. With newPass nil
// the passphrase stays the same and only files on a legacy KDF are
// rewritten; otherwise every file is re-encrypted under newPass, which must
// pass keys.CheckPassphrase.
//
// Each file is replaced atomically after its new copy verifies. A run that
// stops half way can be repeated with the same passphrases: files that
// already open with newPass are skipped.
func (p *Project) ReencryptKeys(newPass []byte) ([]string, error) {
	if p.Config.Dev {
		return nil, errors.New("project: a --dev project keeps its keys unencrypted; there is nothing to re-encrypt")
	}
	if newPass != nil {
		if err := keys.CheckPassphrase(newPass); err != nil {
			return nil, fmt.Errorf("project: new passphrase: %w", err)
		}
	}
	files, err := filepath.Glob(filepath.Join(p.Dir, "keys", "offline", "*.key"))
	if err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	sort.Strings(files)
	k := p.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	old, err := k.passphrase()
	if err != nil {
		return nil, err
	}
	var done []string
	for _, f := range files {
		if p.isHolderKeyFile(f) {
			continue // under its holder's passphrase: ReencryptHolderKeys
		}
		if enc, err := keys.IsEncrypted(f); err != nil {
			return done, fmt.Errorf("project: %w", err)
		} else if !enc {
			continue
		}
		if newPass == nil {
			migrated, err := keys.Migrate(f, old)
			if err != nil {
				return done, fmt.Errorf("project: %w", err)
			}
			if migrated {
				done = append(done, f)
			}
			continue
		}
		err := keys.Reencrypt(f, old, newPass)
		if errors.Is(err, keys.ErrWrongPassphrase) {
			// Re-encrypted by an earlier, interrupted run?
			if _, lerr := keys.Load(f, newPass); lerr == nil {
				migrated, merr := keys.Migrate(f, newPass)
				if merr != nil {
					return done, fmt.Errorf("project: %w", merr)
				}
				if migrated {
					done = append(done, f)
				}
				continue
			}
		}
		if err != nil {
			return done, fmt.Errorf("project: %w", err)
		}
		done = append(done, f)
	}
	if newPass != nil {
		k.pass = newPass
	}
	return done, nil
}
