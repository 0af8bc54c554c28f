package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/repo"
)

// keyName identifies a key file: keys/<class>/<name>.key.
type keyName struct {
	offline bool
	name    string
}

func offlineKey(n string) keyName { return keyName{true, n} }
func onlineKey(n string) keyName  { return keyName{false, n} }

// ProductKeyName is the offline key file name of a product role.
func productKey(product string) keyName { return offlineKey("product-" + product) }

// keyring creates and loads key files, asking for the passphrase at most once.
type keyring struct {
	p       *Project
	mu      sync.Mutex
	pass    []byte
	passSet bool
	// holderPass caches the passphrases of root key holders by name.
	holderPass map[string][]byte
	cache      map[keyName]*keys.Key
}

func newKeyring(p *Project) *keyring {
	return &keyring{p: p, cache: map[keyName]*keys.Key{}, holderPass: map[string][]byte{}}
}

func (k *keyring) path(n keyName) string {
	class := "online"
	if n.offline {
		class = "offline"
	}
	return filepath.Join(k.p.Dir, "keys", class, n.name+".key")
}

func (k *keyring) passphrase() ([]byte, error) {
	if !k.passSet {
		pass, err := k.p.Passphrase()
		if err != nil {
			return nil, err
		}
		k.pass, k.passSet = pass, true
	}
	return k.pass, nil
}

// create generates and saves a new key. Offline keys are encrypted unless the
// project is a dev project.
func (k *keyring) create(n keyName) (repo.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	path := k.path(n)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("project: key %s exists already", path)
	}
	key, err := keys.Generate()
	if err != nil {
		return nil, err
	}
	var pass []byte
	if n.offline && !k.p.Config.Dev {
		if pass, err = k.passphrase(); err != nil {
			return nil, err
		}
		if len(pass) == 0 {
			return nil, errors.New("project: offline keys need a passphrase (set UPTRUST_PASSPHRASE)")
		}
	}
	if err := key.Save(path, pass); err != nil {
		return nil, err
	}
	k.cache[n] = key
	return key, nil
}

// load reads a key file.
func (k *keyring) load(n keyName) (repo.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.cache[n]; ok {
		return key, nil
	}
	path := k.path(n)
	enc, err := keys.IsEncrypted(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && n.offline {
			return nil, fmt.Errorf("project: offline key %s is not on this machine: run the command where the offline keys are (%w)", path, os.ErrNotExist)
		}
		return nil, fmt.Errorf("project: key %s: %w", path, err)
	}
	var pass []byte
	if enc {
		if pass, err = k.passphrase(); err != nil {
			return nil, err
		}
	}
	key, err := keys.Load(path, pass)
	if err != nil {
		return nil, fmt.Errorf("project: key %s: %w", path, err)
	}
	if enc {
		k.migrate(path, pass)
	}
	k.cache[n] = key
	return key, nil
}

// migrate rewrites a key file that uses a legacy KDF with Argon2id, now
// that its passphrase is known to open it. It never fails the load: a
// passphrase too weak to write a new file, or a write error, leaves the old
// file in place and is reported through Warn.
func (k *keyring) migrate(path string, pass []byte) {
	if _, err := keys.Migrate(path, pass); err != nil {
		k.p.Warn(fmt.Sprintf("%v; the key still works, give the offline keys a stronger passphrase with uptrust keys passphrase", err))
	}
}

// online returns the online keys of a repository.
func (k *keyring) online(name string) (repo.OnlineKeys, error) {
	var ok repo.OnlineKeys
	var err error
	if name == deviceapi.RepoFleet {
		if ok.Targets, err = k.load(onlineKey(name + "-targets")); err != nil {
			return ok, err
		}
	}
	if ok.Snapshot, err = k.load(onlineKey(name + "-snapshot")); err != nil {
		return ok, err
	}
	if ok.Timestamp, err = k.load(onlineKey(name + "-timestamp")); err != nil {
		return ok, err
	}
	return ok, nil
}

// rootSigners loads the root keys of a repository that are present.
func (k *keyring) rootSigners(name string) ([]repo.Signer, error) {
	var out []repo.Signer
	for i := 1; i <= k.p.Config.RootKeys; i++ {
		s, err := k.load(offlineKey(fmt.Sprintf("%s-root-%d", name, i)))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
