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
// passphrase must decrypt the file and pass CheckPassphrase; otherwise the
// file is left as it was.
func Migrate(path string, passphrase []byte) (bool, error) {
	need, err := NeedsMigration(path)
	if err != nil || !need {
		return false, err
	}
	if err := CheckPassphrase(passphrase); err != nil {
		return false, fmt.Errorf("keys: %s not migrated to argon2id: %w", path, err)
	}
	if err := Reencrypt(path, passphrase, passphrase); err != nil {
		return false, err
	}
	return true, nil
}

// Reencrypt rewrites the encrypted key file at path, which old opens, under
// newPass with the current Argon2id parameters. newPass must pass
// CheckPassphrase.
//
// The old file stays in place until the new one is durable and verified: the
// new file is written and fsynced beside it, loaded back with newPass and
// compared by key id, and only then renamed over the old one, so a crash at
// any point leaves a file that opens with one of the two passphrases.
func Reencrypt(path string, old, newPass []byte) error {
	if err := CheckPassphrase(newPass); err != nil {
		return fmt.Errorf("keys: %s not re-encrypted: %w", path, err)
	}
	if enc, err := IsEncrypted(path); err != nil {
		return err
	} else if !enc {
		return fmt.Errorf("keys: %s is not encrypted; only encrypted key files are re-encrypted", path)
	}
	k, err := Load(path, old)
	if err != nil {
		return err
	}
	tmp := path + ".reencrypting"
	defer os.Remove(tmp)
	if err := k.Save(tmp, newPass); err != nil {
		return err
	}
	check, err := Load(tmp, newPass)
	if err != nil {
		return fmt.Errorf("keys: re-encrypted copy of %s does not open: %w", path, err)
	}
	if check.KeyID() != k.KeyID() {
		return fmt.Errorf("keys: re-encrypted copy of %s holds key %s, want %s", path, check.KeyID(), k.KeyID())
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keys: re-encrypt %s: %w", path, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("keys: re-encrypt %s: %w", path, err)
	}
	return nil
}
