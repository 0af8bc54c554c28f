package project

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
)

// Audit actions. Every project operation that changes what is published
// writes one entry in the same store transaction as the change, so the log
// holds an entry exactly for each change that was committed.
//
// Entries name what changed (products, releases, repositories, key IDs) and
// never hold personal data: not the operator's name, not a product's
// security contact, not release notes, not a client address.
const (
	ActionInit          = "project.init"
	ActionProductAdd    = "product.add"
	ActionSupportExtend = "support.extend"
	ActionPolicy        = "product.policy"
	ActionReleaseAdd    = "release.add"
	ActionRolloutStart  = "rollout.start"
	ActionRolloutChange = "rollout.change"
	ActionRootRotate    = "root.rotate"
	ActionPurge         = "retention.purge"
	ActionMarket        = "product.market"
	ActionAttest        = "compliance.attest"
	ActionWithdraw      = "compliance.withdraw"
)

// audit adds one entry to tx.
func audit(ctx context.Context, tx store.Tx, now time.Time, action, object, detail string) error {
	return tx.AddAudit(ctx, store.AuditEntry{Time: now, Action: action, Object: object, Detail: detail})
}

// Audit returns the audit log, oldest first.
func (p *Project) Audit(ctx context.Context) ([]store.AuditEntry, error) {
	es, err := p.Store.Audit(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: audit log: %w", err)
	}
	return es, nil
}

func policyDetail(pol *release.Policy) string {
	if pol == nil {
		return "default policy"
	}
	kinds := make([]string, len(pol.AutoInstall))
	for i, k := range pol.AutoInstall {
		kinds[i] = string(k)
	}
	auto := strings.Join(kinds, ",")
	if auto == "" {
		auto = "none"
	}
	return fmt.Sprintf("auto-install %s; owners may postpone up to %d days", auto, pol.MaxPostponeDays)
}

// rolloutChange describes how a rollout changed, such as "percent 10 -> 50".
func rolloutChange(old, next store.Rollout) string {
	var parts []string
	if old.Version != next.Version {
		parts = append(parts, fmt.Sprintf("version %s -> %s", old.Version, next.Version))
	}
	if old.Percent != next.Percent {
		parts = append(parts, fmt.Sprintf("percent %d -> %d", old.Percent, next.Percent))
	}
	if old.Halted != next.Halted {
		if next.Halted {
			parts = append(parts, "halted")
		} else {
			parts = append(parts, "resumed")
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("re-published unchanged (percent %d, halted %v)", next.Percent, next.Halted)
	}
	return strings.Join(parts, "; ")
}
