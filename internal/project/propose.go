package project

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/repo"
)

// RootChange is what a root proposal changes besides the version and the
// expiry. The zero value re-signs the root as it is.
type RootChange struct {
	// Rotate names holders whose root key is replaced by a new one,
	// generated when proposing and encrypted under the holder's passphrase.
	Rotate []string
	// Add names new key holders, or holders without a key in this root:
	// each gets a new root key under their own passphrase.
	Add []string
	// Remove names holders whose root key leaves the root. Their key still
	// counts towards the previous root's threshold.
	Remove []string
	// Threshold, when not 0, is the new root threshold.
	Threshold int
}

// plannedKey is a root key a proposal adds for a holder, replacing old
// ("" for a holder who had none).
type plannedKey struct{ holder, old string }

// ProposeRoot writes a proposal for the next root of repository name,
// signed by nobody yet, and returns its path. Every part of ch is checked
// before any key is generated; new keys are written beside the holder's
// current key file as ".next" and their ids recorded in uptrust.json. One
// proposal per repository may be pending.
func (p *Project) ProposeRoot(ctx context.Context, name string, ch RootChange) (string, error) {
	if len(p.Config.KeyHolders) == 0 {
		return "", errors.New("project: this project has no key holders (uptrust init --key-holders); its root keys share the project passphrase")
	}
	if name != deviceapi.RepoRelease && name != deviceapi.RepoFleet {
		return "", fmt.Errorf("project: unknown repository %q (want release or fleet)", name)
	}
	if pending, err := pendingFiles(p.Dir, name); err != nil {
		return "", err
	} else if len(pending) > 0 {
		return "", fmt.Errorf("project: a %s root change is pending already (%s): publish it, or delete it to start over", name, pending[0])
	}
	if err := p.settleAll(ctx); err != nil {
		return "", err
	}
	root, err := repo.LoadRoot(ctx, p.Store, name)
	if err != nil {
		return "", err
	}
	plan, remove, desc, err := p.planRootChange(name, root, ch)
	if err != nil {
		return "", err
	}
	added := map[string]*keys.Key{}
	for _, k := range plan {
		if added[k.holder], err = p.newHolderKey(name, k.holder, k.old); err != nil {
			return "", err
		}
	}
	change := func(r *metadata.RootType) error {
		for _, k := range plan {
			if k.old != "" {
				if err := r.RevokeKey(k.old, metadata.ROOT); err != nil {
					return err
				}
			}
			if err := r.AddKey(added[k.holder].TUFKey(), metadata.ROOT); err != nil {
				return err
			}
		}
		for _, id := range remove {
			if err := r.RevokeKey(id, metadata.ROOT); err != nil {
				return err
			}
		}
		if ch.Threshold != 0 {
			r.Roles[metadata.ROOT].Threshold = ch.Threshold
		}
		return nil
	}
	prev, next, err := repo.NextRoot(ctx, p.Store, name, p.Clock.Now(), p.Lifetimes(), change)
	if err != nil {
		return "", err
	}
	pr := &RootProposal{Format: proposalFormat, Repository: name, Version: next.Signed.Version, Change: desc, prev: prev, next: next}
	for _, h := range p.Config.KeyHolders {
		var ids []string
		for _, id := range h.KeyIDs {
			_, inPrev := rootKeys(prev)[id]
			_, inNext := rootKeys(next)[id]
			if inPrev || inNext {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			pr.Holders = append(pr.Holders, KeyHolder{Name: h.Name, KeyIDs: ids})
		}
	}
	if err := os.MkdirAll(pendingDir(p.Dir), 0o755); err != nil {
		return "", fmt.Errorf("project: %w", err)
	}
	path := ProposalPath(p.Dir, name, pr.Version)
	return path, pr.write(path)
}

// currentKey returns the id of holder's key among root's root keys, or "".
func currentKey(root *metadata.Metadata[metadata.RootType], h *KeyHolder) string {
	if h == nil {
		return ""
	}
	for _, id := range root.Signed.Roles[metadata.ROOT].KeyIDs {
		if slices.Contains(h.KeyIDs, id) {
			return id
		}
	}
	return ""
}

// planRootChange checks ch against root and the project's holders and
// returns the keys to generate, the key ids to remove and a description.
func (p *Project) planRootChange(name string, root *metadata.Metadata[metadata.RootType], ch RootChange) (plan []plannedKey, remove []string, desc string, err error) {
	seen := map[string]bool{}
	once := func(h string) error {
		if seen[h] {
			return fmt.Errorf("project: key holder %s named twice in one root change", h)
		}
		seen[h] = true
		return nil
	}
	notHolder := func(h string) error {
		return fmt.Errorf("project: %s root v%d lists no key of %q (holders with a key: %s)", name, root.Signed.Version, h, strings.Join(p.holdersIn(root), ", "))
	}
	var parts []string
	for _, h := range ch.Rotate {
		if err := once(h); err != nil {
			return nil, nil, "", err
		}
		id := currentKey(root, p.Config.holder(h))
		if id == "" {
			return nil, nil, "", notHolder(h)
		}
		plan = append(plan, plannedKey{h, id})
		parts = append(parts, "rotate the root key of "+h)
	}
	for _, h := range ch.Remove {
		if err := once(h); err != nil {
			return nil, nil, "", err
		}
		id := currentKey(root, p.Config.holder(h))
		if id == "" {
			return nil, nil, "", notHolder(h)
		}
		remove = append(remove, id)
		parts = append(parts, "remove key holder "+h)
	}
	for _, h := range ch.Add {
		if err := once(h); err != nil {
			return nil, nil, "", err
		}
		if err := checkHolderName(h); err != nil {
			return nil, nil, "", err
		}
		if currentKey(root, p.Config.holder(h)) != "" {
			return nil, nil, "", fmt.Errorf("project: %s holds a key of %s root v%d already (rotate it instead)", h, name, root.Signed.Version)
		}
		for _, other := range p.Config.KeyHolders {
			if other.Name != h && HolderEnv(other.Name) == HolderEnv(h) {
				return nil, nil, "", fmt.Errorf("project: key holders %q and %q would share the variable %s", other.Name, h, HolderEnv(h))
			}
		}
		plan = append(plan, plannedKey{h, ""})
		parts = append(parts, "add key holder "+h)
	}
	role := root.Signed.Roles[metadata.ROOT]
	n := len(role.KeyIDs) + len(ch.Add) - len(ch.Remove)
	threshold := role.Threshold
	if ch.Threshold != 0 {
		threshold = ch.Threshold
		parts = append(parts, fmt.Sprintf("threshold %d -> %d", role.Threshold, ch.Threshold))
	}
	if n < 1 || threshold < 1 || threshold > n {
		return nil, nil, "", fmt.Errorf("project: the new %s root would need %d of %d root keys (want a threshold of 1..%d; set it with --threshold)", name, threshold, n, max(n, 1))
	}
	if len(parts) == 0 {
		return nil, nil, "re-sign the root with a new expiry", nil
	}
	return plan, remove, strings.Join(parts, "; "), nil
}

// holdersIn names the holders with a key in root.
func (p *Project) holdersIn(root *metadata.Metadata[metadata.RootType]) []string {
	var out []string
	for i := range p.Config.KeyHolders {
		if currentKey(root, &p.Config.KeyHolders[i]) != "" {
			out = append(out, p.Config.KeyHolders[i].Name)
		}
	}
	return out
}

// newHolderKey generates holder's next root key of repository name,
// encrypted under the holder's passphrase, as <key file>.next, and records
// its id in uptrust.json (adding the holder if new). When the holder's
// current key file (key oldID) is on this machine, the passphrase must
// open it; otherwise it must open no other key file here.
func (p *Project) newHolderKey(name, holder, oldID string) (*keys.Key, error) {
	pass, err := p.keys.holderPassphrase(holder)
	if err != nil {
		return nil, err
	}
	if err := keys.CheckPassphrase(pass); err != nil {
		return nil, fmt.Errorf("project: key holder %s: %w", holder, err)
	}
	cur := HolderKeyPath(p.Dir, name, holder)
	if _, err := os.Stat(cur); err == nil && oldID != "" {
		k, err := keys.Load(cur, pass)
		if err != nil {
			return nil, fmt.Errorf("project: key holder %s: %w", holder, err)
		}
		if k.KeyID() != oldID {
			return nil, fmt.Errorf("project: %s holds key %s, but the %s root lists %s for %s", cur, shortID(k.KeyID()), name, shortID(oldID), holder)
		}
	} else if err := p.checkOwnPassphrase(holder, pass); err != nil {
		return nil, err
	}
	key, err := keys.Generate()
	if err != nil {
		return nil, err
	}
	// A .next left by a proposal that was deleted unpublished is replaced.
	if err := key.Save(cur+".next", pass); err != nil {
		return nil, fmt.Errorf("project: key holder %s: %w", holder, err)
	}
	h := p.Config.holder(holder)
	if h == nil {
		p.Config.KeyHolders = append(p.Config.KeyHolders, KeyHolder{Name: holder})
		h = &p.Config.KeyHolders[len(p.Config.KeyHolders)-1]
	}
	h.KeyIDs = append(h.KeyIDs, key.KeyID())
	if err := p.saveConfig(); err != nil {
		return nil, err
	}
	return key, nil
}

// syncRootConfig sets root_keys and root_threshold in uptrust.json to those
// of the latest roots when both repositories agree on them.
func (p *Project) syncRootConfig(ctx context.Context) error {
	var n, t []int
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		root, err := repo.LoadRoot(ctx, p.Store, name)
		if err != nil {
			return err
		}
		role := root.Signed.Roles[metadata.ROOT]
		n, t = append(n, len(role.KeyIDs)), append(t, role.Threshold)
	}
	if n[0] != n[1] || t[0] != t[1] || (n[0] == p.Config.RootKeys && t[0] == p.Config.RootThreshold) {
		return nil
	}
	p.Config.RootKeys, p.Config.RootThreshold = n[0], t[0]
	return p.saveConfig()
}
