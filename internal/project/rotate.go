package project

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// RotateRootKey replaces root key number index (1-based) of repository
// name with a new key. The new root is signed by the threshold of the old
// root keys and by the new key set, so devices follow the rotation; the
// old key file is kept as <name>.key.retired. Snapshot and timestamp are
// re-signed so the repository stays consistent, and the device root files
// are rewritten for newly provisioned devices.
func (p *Project) RotateRootKey(ctx context.Context, name string, index int) error {
	if name != deviceapi.RepoRelease && name != deviceapi.RepoFleet {
		return fmt.Errorf("project: unknown repository %q (want release or fleet)", name)
	}
	if len(p.Config.KeyHolders) > 0 {
		return fmt.Errorf("project: the root keys of this project are held by %s: propose the rotation (uptrust root propose %s --rotate HOLDER) and have the holders sign it",
			strings.Join(p.Config.Holders(), ", "), name)
	}
	if index < 1 || index > p.Config.RootKeys {
		return fmt.Errorf("project: root key index %d out of range 1..%d", index, p.Config.RootKeys)
	}
	old, err := p.keys.rootSigners(name)
	if err != nil {
		return err
	}
	kn := offlineKey(fmt.Sprintf("%s-root-%d", name, index))
	oldKey, err := p.keys.load(kn)
	if err != nil {
		return err
	}
	// Load the online keys before touching the key file: failing after the
	// rename would leave an unpublished key in place of the trusted one.
	online, err := p.keys.online(name)
	if err != nil {
		return err
	}
	path := p.keys.path(kn)
	retired := path + ".retired"
	if err := os.Rename(path, retired); err != nil {
		return fmt.Errorf("project: retiring %s: %w", path, err)
	}
	p.keys.mu.Lock()
	delete(p.keys.cache, kn)
	p.keys.mu.Unlock()
	newKey, err := p.keys.create(kn)
	if err != nil {
		os.Rename(retired, path)
		return err
	}
	var signers []repo.Signer
	for _, s := range old {
		if s.KeyID() != oldKey.KeyID() {
			signers = append(signers, s)
		}
	}
	signers = append(signers, oldKey, newKey)
	now := p.Clock.Now()
	life := p.Lifetimes()
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		_, err := repo.UpdateRoot(ctx, tx, name, now, life, func(r *metadata.RootType) error {
			if err := r.RevokeKey(oldKey.KeyID(), repo.RoleRoot); err != nil {
				return err
			}
			return r.AddKey(newKey.TUFKey(), repo.RoleRoot)
		}, signers...)
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, now, ActionRootRotate, name, fmt.Sprintf("root key %d replaced: key %s retired, key %s added",
			index, oldKey.KeyID(), newKey.KeyID())); err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, name, now, life, online.Snapshot, online.Timestamp)
	})
	if err != nil {
		// Put the old key back; the new one was never published.
		os.Remove(path)
		os.Rename(retired, path)
		p.keys.mu.Lock()
		delete(p.keys.cache, kn) // the cached key is the unpublished one
		p.keys.mu.Unlock()
		return err
	}
	return p.WriteDeviceRoots(ctx)
}
