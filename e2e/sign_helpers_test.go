package e2e

import (
	"context"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// key loads one of the project's key files, e.g. "offline/product-thermostat"
// (the tests' projects are --dev projects: keys are unencrypted).
func (w *world) key(path string) *keys.Key {
	w.t.Helper()
	k, err := keys.Load(filepath.Join(w.p.Dir, "keys", path+".key"), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return k
}

// signAsProduct publishes what a holder of the product key (and the online
// keys) could, bypassing the project's checks: rel, when not nil, as a
// release row, and targets in the product role; then a new snapshot and
// timestamp. The server reloads.
func (w *world) signAsProduct(rel *store.Release, targets ...*metadata.TargetFiles) {
	w.t.Helper()
	ctx := context.Background()
	pk := w.key("offline/product-" + product)
	sk, tk := w.key("online/release-snapshot"), w.key("online/release-timestamp")
	err := w.p.Store.Update(ctx, func(tx store.Tx) error {
		if rel != nil {
			if err := tx.AddRelease(ctx, *rel); err != nil {
				return err
			}
		}
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.ProductRole(product), time.Now(), w.p.Lifetimes(), func(tt *metadata.TargetsType) error {
			for _, t := range targets {
				tt.Targets[t.Path] = t
			}
			return nil
		}, pk)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, time.Now(), w.p.Lifetimes(), sk, tk)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.reload()
}
