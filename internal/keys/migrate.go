package keys

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/uptrust/uptrust/internal/atomicfile"
)

// NeedsMigration reports whether the key file at path is encrypted with a
// KDF weaker than new files get (the legacy scrypt N=2^15, or Argon2id below
// the current parameters).
func NeedsMigration(path string) (bool, error) {
	f, err := readFile(path)
	if err != nil {
		return false, err
	}
	return f.Encrypted && f.KDF != nil && f.KDF.outdated(), nil
}

// Migrate re-encrypts the key file at path with Argon2id under the same
// passphrase if NeedsMigration says so, and reports whether it did. The
// passphrase must decrypt the file and pass CheckPassphrase.
//
// The old file stays in place until the new one is durable and verified: the
// new file is written and fsynced beside it, loaded back with the passphrase
// and compared by key id, and only then renamed over the old one, so a crash
// at any point leaves a file that opens with the passphrase.
func Migrate(path string, passphrase []byte) (bool, error) {
	need, err := NeedsMigration(path)
	if err != nil || !need {
		return false, err
	}
	if err := CheckPassphrase(passphrase); err != nil {
		return false, fmt.Errorf("keys: %s not migrated to argon2id: %w", path, err)
	}
	k, err := Load(path, passphrase)
	if err != nil {
		return false, err
	}
	tmp := path + ".migrating"
	defer os.Remove(tmp)
	if err := k.Save(tmp, passphrase); err != nil {
		return false, err
	}
	check, err := Load(tmp, passphrase)
	if err != nil {
		return false, fmt.Errorf("keys: migrated copy of %s does not open: %w", path, err)
	}
	if check.KeyID() != k.KeyID() {
		return false, fmt.Errorf("keys: migrated copy of %s holds key %s, want %s", path, check.KeyID(), k.KeyID())
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("keys: migrate %s: %w", path, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return false, fmt.Errorf("keys: migrate %s: %w", path, err)
	}
	return true, nil
}
