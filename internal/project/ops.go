package project

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// ProductSpec describes a new product.
type ProductSpec struct {
	Name     string
	Model    string
	Hardware []string
	// SupportUntil is the last day of support, YYYY-MM-DD.
	SupportUntil string
	Contact      string
	// Policy is the maker's update policy; nil means release.DefaultPolicy.
	Policy *release.Policy
}

// AddProduct creates the product's offline key and delegated role
// "products/<name>" (paths "<name>/*", terminating), signs the delegation
// with the top-level targets key and publishes the signed support
// declaration as the target "<name>/support.json".
func (p *Project) AddProduct(ctx context.Context, s ProductSpec) error {
	if err := release.ValidName("product", s.Name); err != nil {
		return err
	}
	if len(s.Hardware) == 0 {
		return errors.New("project: a product needs at least one hardware revision (--hardware)")
	}
	for _, h := range s.Hardware {
		if err := release.ValidName("hardware revision", h); err != nil {
			return err
		}
	}
	if s.Model == "" {
		s.Model = s.Name
	}
	now := p.Clock.Now().UTC()
	if s.Policy == nil {
		def := release.DefaultPolicy()
		s.Policy = &def
	}
	var past *supportPastError
	if err := checkSupportFuture(s.SupportUntil, now); err != nil && !errors.As(err, &past) {
		return err
	} else if err != nil {
		// A product whose support has ended may still need a late
		// security fix: say so, do not refuse.
		p.Warn(fmt.Sprintf("%v; devices will report that their support has ended", err))
	}
	sup := release.Support{Product: s.Name, Model: s.Model, Hardware: s.Hardware, Until: s.SupportUntil, Contact: s.Contact, Issued: now, Policy: s.Policy}
	if err := sup.Validate(); err != nil {
		return err
	}
	if _, err := p.Store.Product(ctx, s.Name); err == nil {
		return fmt.Errorf("project: product %q exists already", s.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	targetsKey, err := p.keys.load(offlineKey(deviceapi.RepoRelease + "-targets"))
	if err != nil {
		return err
	}
	online, err := p.keys.online(deviceapi.RepoRelease)
	if err != nil {
		return err
	}
	supBytes, _ := json.MarshalIndent(sup, "", "  ")
	supBlob, err := p.Blobs.Put(ctx, bytes.NewReader(supBytes), 0)
	if err != nil {
		return err
	}
	productKey, err := p.keys.create(productKey(s.Name))
	if err != nil {
		return err
	}
	role := repo.ProductRole(s.Name)
	life := p.Lifetimes()
	return p.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutProduct(ctx, store.Product{Name: s.Name, Model: s.Model, Hardware: s.Hardware, Created: now}); err != nil {
			return err
		}
		// Not the contact: it may name a person.
		if err := audit(ctx, tx, now, ActionProductAdd, s.Name, fmt.Sprintf("model %s; hardware %s; support until %s; %s",
			s.Model, strings.Join(s.Hardware, ","), s.SupportUntil, policyDetail(s.Policy))); err != nil {
			return err
		}
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.RoleTargets, now, life, func(t *metadata.TargetsType) error {
			if t.Delegations == nil {
				t.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
			}
			for _, r := range t.Delegations.Roles {
				if r.Name == role {
					return fmt.Errorf("project: delegation %s exists already", role)
				}
			}
			t.Delegations.Roles = append(t.Delegations.Roles, metadata.DelegatedRole{
				Name: role, Threshold: 1, Terminating: true, Paths: []string{s.Name + "/*"}, KeyIDs: []string{},
			})
			return t.AddKey(productKey.TUFKey(), role)
		}, targetsKey)
		if err != nil {
			return err
		}
		sum, _ := hex.DecodeString(supBlob.SHA256)
		_, err = repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, role, now, life, func(t *metadata.TargetsType) error {
			t.Targets[release.SupportTargetName(s.Name)] = repo.NewTarget(repo.TargetInfo{
				Path: release.SupportTargetName(s.Name), Length: supBlob.Size, SHA256: sum})
			return nil
		}, productKey)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, now, life, online.Snapshot, online.Timestamp)
	})
}

// FleetCustom is the custom metadata of a fleet target.
type FleetCustom struct {
	Uptrust struct {
		Rollout rollout.Rule `json:"rollout"`
	} `json:"uptrust"`
}

// StartRollout offers a published release to the product's devices: the
// fleet repository's targets role lists the release's target with the same
// length and hashes and the rollout rule, replacing any earlier offer for
// the product. A managed product is refused with an error wrapping
// ErrManaged that names the wave flags (its rollouts are in waves:
// StartManagedRollout); nothing is written.
func (p *Project) StartRollout(ctx context.Context, product, version string, percent int) (store.Rollout, error) {
	if err := p.CheckProduct(ctx, product); err != nil {
		return store.Rollout{}, err
	}
	if pol, err := devicePolicy(ctx, p.Store, product); err != nil {
		return store.Rollout{}, fmt.Errorf("project: start rollout of %s %s: %w", product, version, err)
	} else if pol.Mode == store.ModeManaged {
		return store.Rollout{}, fmt.Errorf("project: start rollout of %s %s: %w: a percent rollout is for anonymous products; start a rollout in waves (uptrust rollout start with --waves, --max-failure, --min-success, --soak and optionally --select, --start, --window; POST /api/v1/managed-rollouts)", product, version, ErrManaged)
	}
	now := p.Clock.Now().UTC()
	ro := store.Rollout{Product: product, Version: version, Percent: percent, Start: now, Updated: now}
	detail := fmt.Sprintf("percent %d", percent)
	if old, err := p.Store.Rollout(ctx, product); err == nil {
		detail += fmt.Sprintf("; replaces the rollout of %s at %d%%", old.Version, old.Percent)
	}
	return ro, p.publishRollout(ctx, ro, ActionRolloutStart, detail, nil)
}

// ErrRolloutChanged is returned (wrapped) by ChangeRollout and
// ChangeRolloutIf when the rollout changed between their read and their
// write (another process, such as another server replica, changed it):
// nothing was written.
var ErrRolloutChanged = errors.New("project: the rollout changed meanwhile; read it again and retry")

// ChangeRollout changes the running rollout of a product.
func (p *Project) ChangeRollout(ctx context.Context, product string, change func(*store.Rollout)) (store.Rollout, error) {
	return p.ChangeRolloutIf(ctx, product, nil, change)
}

// ChangeRolloutIf changes the running rollout of a product if precond
// (when non-nil) accepts its current state; precond's error is returned
// as is. The change is written only if the rollout is still that state
// when the write commits (else ErrRolloutChanged), so that of concurrent
// changes made from the same state — through different server replicas
// too — exactly one wins.
func (p *Project) ChangeRolloutIf(ctx context.Context, product string, precond func(store.Rollout) error, change func(*store.Rollout)) (store.Rollout, error) {
	if err := p.CheckProduct(ctx, product); err != nil {
		return store.Rollout{}, err
	}
	ro, err := p.Store.Rollout(ctx, product)
	if err != nil {
		return ro, fmt.Errorf("project: rollout of %s: %w (start one with uptrust rollout start)", product, err)
	}
	if precond != nil {
		if err := precond(ro); err != nil {
			return ro, err
		}
	}
	old := ro
	change(&ro)
	ro.Updated = p.Clock.Now().UTC()
	return ro, p.publishRollout(ctx, ro, ActionRolloutChange, rolloutChange(old, ro), &old)
}

// sameRollout says whether a and b are the same state of a rollout.
func sameRollout(a, b store.Rollout) bool {
	return a.Product == b.Product && a.Version == b.Version && a.Percent == b.Percent && a.Halted == b.Halted &&
		a.Start.Equal(b.Start) && a.Updated.Equal(b.Updated)
}

// publishRollout stores ro, publishes it in the fleet repository and
// records action with detail in the audit log, in one transaction. When
// expect is non-nil the stored rollout must still be *expect in that
// transaction, else nothing is written (ErrRolloutChanged).
func (p *Project) publishRollout(ctx context.Context, ro store.Rollout, action, detail string, expect *store.Rollout) error {
	rule := rollout.Rule{Percent: ro.Percent, Halted: ro.Halted, Start: ro.Start}
	if err := rule.Validate(); err != nil {
		return err
	}
	rel, err := p.Store.Release(ctx, ro.Product, ro.Version)
	if err != nil {
		return fmt.Errorf("project: release %s %s: %w", ro.Product, ro.Version, err)
	}
	online, err := p.keys.online(deviceapi.RepoFleet)
	if err != nil {
		return err
	}
	var fc FleetCustom
	fc.Uptrust.Rollout = rule
	custom, _ := json.Marshal(fc)
	offered := []store.Release{rel}
	companions, err := p.securityOnlyCompanions(ctx, rel)
	if err != nil {
		return err
	}
	offered = append(offered, companions...)
	// The deltas of the offered releases, listed with the release
	// repository's length and hashes so that both repositories agree.
	var deltas []release.Delta
	for _, r := range offered {
		m, err := manifestOf(r)
		if err != nil {
			return err
		}
		deltas = append(deltas, m.Deltas...)
	}
	now := p.Clock.Now().UTC()
	life := p.Lifetimes()
	return p.Store.Update(ctx, func(tx store.Tx) error {
		if expect != nil {
			// Updates are serial (across replicas too), so this read sees
			// every change committed before this one.
			cur, err := tx.Rollout(ctx, ro.Product)
			if err != nil {
				return fmt.Errorf("project: rollout of %s: %w", ro.Product, err)
			}
			if !sameRollout(cur, *expect) {
				return fmt.Errorf("%w (rollout of %s)", ErrRolloutChanged, ro.Product)
			}
		}
		if err := tx.PutRollout(ctx, ro); err != nil {
			return err
		}
		if ro.Percent == 100 && !ro.Halted {
			// The first time each offered release reaches every device
			// is kept: the compliance report measures delivery by it.
			for _, r := range offered {
				if err := tx.CompleteRollout(ctx, store.RolloutCompletion{Product: r.Product, Version: r.Version, Reached: now}); err != nil {
					return err
				}
			}
		}
		if err := audit(ctx, tx, now, action, ro.Product+"/"+ro.Version, detail); err != nil {
			return err
		}
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoFleet, repo.RoleTargets, now, life, func(t *metadata.TargetsType) error {
			for path := range t.Targets {
				if strings.HasPrefix(path, ro.Product+"/") {
					delete(t.Targets, path)
				}
			}
			for _, r := range offered {
				sum, _ := hex.DecodeString(r.SHA256)
				t.Targets[r.Target] = repo.NewTarget(repo.TargetInfo{Path: r.Target, Length: r.Length, SHA256: sum, Custom: custom})
			}
			for _, d := range deltas {
				dsum, _ := hex.DecodeString(d.SHA256)
				t.Targets[d.Target] = repo.NewTarget(repo.TargetInfo{Path: d.Target, Length: d.Length, SHA256: dsum})
			}
			return nil
		}, online.Targets)
		if err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoFleet, now, life, online.Snapshot, online.Timestamp)
	})
}

// securityOnlyCompanions returns the security-only builds published for a
// feature release; a rollout offers them next to it, for devices whose
// owners have not consented to the feature build.
func (p *Project) securityOnlyCompanions(ctx context.Context, rel store.Release) ([]store.Release, error) {
	rels, err := p.Store.Releases(ctx, rel.Product)
	if err != nil {
		return nil, err
	}
	var out []store.Release
	for _, r := range rels {
		m, err := manifestOf(r)
		if err != nil {
			return nil, err
		}
		if m.SecurityOnlyOf == rel.Version {
			out = append(out, r)
		}
	}
	return out, nil
}
