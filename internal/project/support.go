package project

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

// Support returns the product's current signed support declaration.
func (p *Project) Support(ctx context.Context, product string) (*release.Support, error) {
	if err := p.CheckProduct(ctx, product); err != nil {
		return nil, err
	}
	return p.supportIn(ctx, p.Store, product)
}

// ExtendSupport publishes a new support declaration ending on until. A
// declaration that ends earlier than the published one is refused
// (release.ErrSupportShortened): support periods can be extended, never
// shortened.
func (p *Project) ExtendSupport(ctx context.Context, product, until string) (*release.Support, error) {
	return p.reissueSupport(ctx, product, ActionSupportExtend, func(s *release.Support) (string, error) {
		if err := checkSupportFuture(until, p.Clock.Now()); err != nil {
			return "", err
		}
		detail := fmt.Sprintf("support until %s (was %s)", until, s.Until)
		s.Until = until
		return detail, nil
	})
}

// SetPolicy publishes the product's declaration with a new maker's policy.
func (p *Project) SetPolicy(ctx context.Context, product string, pol release.Policy) (*release.Support, error) {
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	return p.reissueSupport(ctx, product, ActionPolicy, func(s *release.Support) (string, error) {
		s.Policy = &pol
		return policyDetail(&pol), nil
	})
}

// supportPastError is a support end date that has passed.
type supportPastError struct{ until, today string }

func (e *supportPastError) Error() string {
	return fmt.Sprintf("project: support until %s is in the past (today is %s); give the date support really ends", e.until, e.today)
}

// checkSupportFuture refuses a support end date that has passed
// (a *supportPastError): devices would be told at once that their support has
// ended. ExtendSupport refuses it; AddProduct warns.
func checkSupportFuture(until string, now time.Time) error {
	d, err := release.ParseDate(until)
	if err != nil {
		return err
	}
	today := now.UTC().Format(time.DateOnly)
	if d.Format(time.DateOnly) < today {
		return &supportPastError{until, today}
	}
	return nil
}

// reissueSupport publishes the product's declaration as changed by change,
// which returns the audit detail; the audit entry records action.
func (p *Project) reissueSupport(ctx context.Context, product, action string, change func(*release.Support) (string, error)) (*release.Support, error) {
	prev, err := p.Support(ctx, product)
	if err != nil {
		return nil, err
	}
	next := *prev
	detail, err := change(&next)
	if err != nil {
		return nil, err
	}
	next.Issued = p.Clock.Now().UTC().Truncate(time.Second)
	if err := next.Validate(); err != nil {
		return nil, err
	}
	if err := release.CheckExtension(prev, &next); err != nil {
		return nil, err
	}
	productKey, err := p.keys.load(productKey(product))
	if err != nil {
		return nil, err
	}
	online, err := p.keys.online(deviceapi.RepoRelease)
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(next, "", "  ")
	info, err := p.Blobs.Put(ctx, bytes.NewReader(b), 0)
	if err != nil {
		return nil, err
	}
	sum, _ := hex.DecodeString(info.SHA256)
	now := p.Clock.Now().UTC()
	life := p.Lifetimes()
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		_, err := repo.UpdateTargets(ctx, tx, deviceapi.RepoRelease, repo.ProductRole(product), now, life, func(t *metadata.TargetsType) error {
			t.Targets[release.SupportTargetName(product)] = repo.NewTarget(repo.TargetInfo{Path: release.SupportTargetName(product), Length: info.Size, SHA256: sum})
			return nil
		}, productKey)
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, now, action, product, detail); err != nil {
			return err
		}
		return repo.RefreshSnapshot(ctx, tx, deviceapi.RepoRelease, now, life, online.Snapshot, online.Timestamp)
	})
	if err != nil {
		return nil, err
	}
	return &next, nil
}
