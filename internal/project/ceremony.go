package project

// Key ceremony: root keys held by named people, each under their own
// passphrase, so that a k-of-n root is k secrets and not one.
//
// With Config.KeyHolders set, holder i holds root key i of both
// repositories, in keys/offline/<repo>-root-<holder>.key, encrypted under
// that holder's passphrase (UPTRUST_PASSPHRASE_<HOLDER> or a prompt naming
// them). No two holders, and no holder and the project passphrase, share a
// passphrase. Every other offline key stays under the project passphrase.
// A root change is a proposal file that the holders sign one at a time
// (proposal.go); it is published only when go-tuf finds the threshold of
// both the previous and the new root's keys.
//
// Choices: the proposal carries the root it replaces, so a holder signing
// a copy on their own machine is shown what changes computed from the two
// roots, not the proposer's description; signed copies are merged back by
// root status/publish, so holders can sign in parallel; a new key waits as
// <key>.next until its root is published, so an abandoned proposal never
// replaces a trusted key.
//
// uptrust.json records, per holder, every root key id the holder holds or
// has held; a holder removed from the roots stays listed. root_keys and
// root_threshold follow the latest roots when both repositories agree. The list is only ever appended to (a rotation adds the new key
// id before anything is published), so the holder of a key id is known at
// every moment, including after a crash half way through a rotation.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/repo"
)

// KeyHolder is a person who holds one root key of each repository.
type KeyHolder struct {
	Name string `json:"name"`
	// KeyIDs are the TUF ids of every root key this holder holds or has
	// held, in either repository. Only ever appended to.
	KeyIDs []string `json:"key_ids"`
}

// maxHolderName bounds a holder name, which appears in file names and in an
// environment variable's name.
const maxHolderName = 40

// HolderEnv is the environment variable that holds key holder name's
// passphrase: UPTRUST_PASSPHRASE_ and the name upper-cased, every
// character other than a letter or digit replaced by "_" ("ops-lead":
// UPTRUST_PASSPHRASE_OPS_LEAD).
func HolderEnv(name string) string {
	var b strings.Builder
	b.WriteString("UPTRUST_PASSPHRASE_")
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// checkHolderName accepts ASCII letters, digits, "-" and "_", starting with
// a letter or digit, at most maxHolderName characters.
func checkHolderName(name string) error {
	if name == "" || len(name) > maxHolderName {
		return fmt.Errorf("project: key holder name %q: want 1 to %d characters", name, maxHolderName)
	}
	for i, r := range name {
		ok := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return fmt.Errorf("project: key holder name %q: use letters, digits, - and _, starting with a letter or digit", name)
		}
	}
	return nil
}

// setHolders makes c a key ceremony configuration for holders with the
// given threshold (0: a majority of them). No holders leaves c unchanged,
// and then threshold must be 0.
func (c *Config) setHolders(holders []string, threshold int) error {
	if len(holders) == 0 {
		if threshold != 0 {
			return errors.New("project: a root threshold is set with --key-holders; without key holders the root is 2 of 3")
		}
		return nil
	}
	if threshold == 0 {
		threshold = len(holders)/2 + 1
	}
	c.RootKeys, c.RootThreshold = len(holders), threshold
	c.KeyHolders = nil
	for _, h := range holders {
		c.KeyHolders = append(c.KeyHolders, KeyHolder{Name: h})
	}
	return c.validateHolders()
}

// validateHolders checks the key_holders field: valid, distinct names
// (also after mapping to their environment variables), one per root key,
// and not in a --dev project.
func (c *Config) validateHolders() error {
	if len(c.KeyHolders) == 0 {
		return nil
	}
	if c.Dev {
		return errors.New("project: key holders need encrypted keys; a --dev project has none")
	}
	// Holders removed from both roots stay listed, with their key ids.
	if len(c.KeyHolders) < c.RootKeys {
		return fmt.Errorf("project: %d key holders for %d root keys (want one holder per root key)", len(c.KeyHolders), c.RootKeys)
	}
	if c.RootThreshold < 1 || c.RootThreshold > c.RootKeys {
		return fmt.Errorf("project: root threshold %d with %d key holders (want 1..%d)", c.RootThreshold, c.RootKeys, c.RootKeys)
	}
	env := map[string]string{}
	for _, h := range c.KeyHolders {
		if err := checkHolderName(h.Name); err != nil {
			return err
		}
		if other, ok := env[HolderEnv(h.Name)]; ok {
			return fmt.Errorf("project: key holders %q and %q would share the variable %s; give them names that differ in letters or digits", other, h.Name, HolderEnv(h.Name))
		}
		env[HolderEnv(h.Name)] = h.Name
	}
	return nil
}

// Holders returns the key holders' names in configuration order.
func (c *Config) Holders() []string {
	var out []string
	for _, h := range c.KeyHolders {
		out = append(out, h.Name)
	}
	return out
}

// holder returns the key holder called name, or nil.
func (c *Config) holder(name string) *KeyHolder {
	for i := range c.KeyHolders {
		if c.KeyHolders[i].Name == name {
			return &c.KeyHolders[i]
		}
	}
	return nil
}

// holderOfKey returns the name of the holder who holds or held key id, or
// "".
func (c *Config) holderOfKey(id string) string {
	for _, h := range c.KeyHolders {
		if slices.Contains(h.KeyIDs, id) {
			return h.Name
		}
	}
	return ""
}

// saveConfig writes uptrust.json atomically.
func (p *Project) saveConfig() error {
	b, err := json.MarshalIndent(p.Config, "", "  ")
	if err != nil {
		return fmt.Errorf("project: encoding uptrust.json: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(p.Dir, "uptrust.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	return nil
}

// HolderKeyPath is the key file of holder's root key of repository name in
// project directory dir. A rotation not yet published keeps the new key
// beside it, in the same name with ".next" appended.
func HolderKeyPath(dir, name, holder string) string {
	return filepath.Join(dir, "keys", "offline", name+"-root-"+holder+".key")
}

// HolderKeyFiles returns the key files of holder for repository name that
// exist in dir: the current key and, during a rotation, the new one.
func HolderKeyFiles(dir, name, holder string) []string {
	var out []string
	cur := HolderKeyPath(dir, name, holder)
	for _, f := range []string{cur, cur + ".next"} {
		if _, err := os.Stat(f); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// isHolderKeyFile reports whether path is a key holder's root key file.
func (p *Project) isHolderKeyFile(path string) bool {
	for _, h := range p.Config.KeyHolders {
		for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
			if filepath.Base(path) == filepath.Base(HolderKeyPath(p.Dir, name, h.Name)) {
				return true
			}
		}
	}
	return false
}

// holderPassphrases asks every holder for their passphrase and refuses a
// weak one, one shared by two holders, or one equal to the project
// passphrase: any of these would let fewer secrets than the threshold sign
// a root.
func holderPassphrases(holders []KeyHolder, project []byte, get func(string) ([]byte, error)) (map[string][]byte, error) {
	out := map[string][]byte{}
	owner := map[string]string{}
	for _, h := range holders {
		pass, err := get(h.Name)
		if err != nil {
			return nil, err
		}
		if len(pass) == 0 {
			return nil, fmt.Errorf("project: key holder %s gave no passphrase (set %s)", h.Name, HolderEnv(h.Name))
		}
		if err := keys.CheckPassphrase(pass); err != nil {
			return nil, fmt.Errorf("project: key holder %s: %w", h.Name, err)
		}
		if string(pass) == string(project) {
			return nil, fmt.Errorf("project: key holder %s: the passphrase is the project passphrase (UPTRUST_PASSPHRASE); each holder needs a secret of their own", h.Name)
		}
		if other, ok := owner[string(pass)]; ok {
			return nil, fmt.Errorf("project: key holders %s and %s gave the same passphrase; each root key needs its own secret, or the threshold is one secret", other, h.Name)
		}
		owner[string(pass)] = h.Name
		out[h.Name] = pass
	}
	return out, nil
}

// holderPassphrase returns holder's passphrase, asking at most once.
func (k *keyring) holderPassphrase(holder string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pass, ok := k.holderPass[holder]; ok {
		return pass, nil
	}
	pass, err := k.p.HolderPassphrase(holder)
	if err != nil {
		return nil, err
	}
	if len(pass) == 0 {
		return nil, fmt.Errorf("project: key holder %s gave no passphrase (set %s)", holder, HolderEnv(holder))
	}
	k.holderPass[holder] = pass
	return pass, nil
}

// createHolder generates holder's root key of repository name, encrypted
// under the holder's passphrase.
func (k *keyring) createHolder(name, holder string) (repo.Signer, error) {
	pass, err := k.holderPassphrase(holder)
	if err != nil {
		return nil, err
	}
	path := HolderKeyPath(k.p.Dir, name, holder)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("project: key %s exists already", path)
	}
	key, err := keys.Generate()
	if err != nil {
		return nil, err
	}
	if err := key.Save(path, pass); err != nil {
		return nil, fmt.Errorf("project: key holder %s: %w", holder, err)
	}
	return key, nil
}

// checkOwnPassphrase refuses pass for holder when it opens a key file that
// is not holder's: another holder's root key or a key under the project
// passphrase. Only key files on this machine can be tried.
func (p *Project) checkOwnPassphrase(holder string, pass []byte) error {
	try := []string{filepath.Join(p.Dir, "keys", "offline", deviceapi.RepoRelease+"-targets.key")}
	for _, h := range p.Config.KeyHolders {
		if h.Name != holder {
			try = append(try, HolderKeyFiles(p.Dir, deviceapi.RepoRelease, h.Name)...)
		}
	}
	for _, f := range try {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if _, err := keys.Load(f, pass); err == nil {
			return fmt.Errorf("project: key holder %s: the passphrase also opens %s; each holder needs a secret of their own", holder, f)
		}
	}
	return nil
}

// ReencryptHolderKeys re-encrypts key holder's root key files on this
// machine (both repositories, and a rotation's new key) from the
// passphrase old to newPass and returns the paths rewritten. newPass must
// pass keys.CheckPassphrase and must not open any other key file of the
// project. Other holders' keys and the project passphrase are untouched.
// A run that stops half way can be repeated: files that already open with
// newPass are skipped.
func (p *Project) ReencryptHolderKeys(holder string, old, newPass []byte) ([]string, error) {
	if p.Config.holder(holder) == nil {
		return nil, fmt.Errorf("project: %q is not a key holder (holders: %s)", holder, strings.Join(p.Config.Holders(), ", "))
	}
	if err := keys.CheckPassphrase(newPass); err != nil {
		return nil, fmt.Errorf("project: key holder %s: new passphrase: %w", holder, err)
	}
	var files []string
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		files = append(files, HolderKeyFiles(p.Dir, name, holder)...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("project: no root key file of key holder %s in %s", holder, filepath.Join(p.Dir, "keys", "offline"))
	}
	if err := p.checkOwnPassphrase(holder, newPass); err != nil {
		return nil, err
	}
	var done []string
	for _, f := range files {
		err := keys.Reencrypt(f, old, newPass)
		if errors.Is(err, keys.ErrWrongPassphrase) {
			if _, lerr := keys.Load(f, newPass); lerr == nil {
				continue // done by an earlier, interrupted run
			}
		}
		if err != nil {
			return done, fmt.Errorf("project: key holder %s: %w", holder, err)
		}
		done = append(done, f)
	}
	p.keys.mu.Lock()
	p.keys.holderPass[holder] = newPass
	p.keys.mu.Unlock()
	return done, nil
}
