package project

import (
	"context"
	"errors"
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
// Entries name what changed (products, releases, repositories, key IDs,
// token names) and who did it: the name and role of the management API
// token used (see WithActor), or store.ActorCLI. Token names are chosen by
// the operator and are recorded as given, so a token named after a person
// puts that name in the log for the audit retention; uptrust token create
// asks for names of jobs or systems. Entries never hold a product's
// security contact, release notes, device data or a client address.
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
	ActionTokenCreate   = "token.create"
	ActionTokenRevoke   = "token.revoke"
)

// Actor is who performs the project operations called with a context: a
// management API token, or the local operator. Every audit entry written
// under the context names it.
type Actor struct {
	// Name is the token's name; "" or store.ActorCLI for the local
	// operator.
	Name string
	// Role is the token's role; "" for the local operator.
	Role string
	// RequestID identifies the API request; "" for the CLI.
	RequestID string
}

type actorKey struct{}

// WithActor returns ctx carrying a: the management API wraps each
// authenticated request's context with the token's name and role and the
// request id before calling project operations, so their audit entries
// say who acted. Without it, entries name store.ActorCLI.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor ctx carries, or the local operator.
func ActorFrom(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	if a.Name == "" {
		a.Name = store.ActorCLI
	}
	return a
}

// audit adds one entry to tx, by the actor ctx carries, with outcome ok.
func audit(ctx context.Context, tx store.Tx, now time.Time, action, object, detail string) error {
	return tx.AddAudit(ctx, auditEntry(ctx, now, action, object, store.OutcomeOK, detail))
}

func auditEntry(ctx context.Context, now time.Time, action, object, outcome, detail string) store.AuditEntry {
	a := ActorFrom(ctx)
	return store.AuditEntry{Time: now, Actor: a.Name, Role: a.Role, RequestID: a.RequestID,
		Action: action, Object: object, Outcome: outcome, Detail: detail}
}

// RecordAudit appends one entry by the actor ctx carries, in a store
// update of its own, for an action that changed nothing: outcome is
// store.OutcomeRefused (not permitted, bad input) or store.OutcomeFailed
// (permitted but it went wrong). Successful operations record themselves
// in the transaction of their change; do not record them again. detail
// must be written by uptrust (an error's message is fine), never copied
// from a request body.
func (p *Project) RecordAudit(ctx context.Context, action, object, outcome, detail string) error {
	if outcome != store.OutcomeRefused && outcome != store.OutcomeFailed {
		return fmt.Errorf("project: record audit %s: outcome %q: want %s or %s (successful changes record themselves)",
			action, outcome, store.OutcomeRefused, store.OutcomeFailed)
	}
	now := p.Clock.Now().UTC()
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		return tx.AddAudit(ctx, auditEntry(ctx, now, action, object, outcome, detail))
	})
	if err != nil {
		return fmt.Errorf("project: record audit %s: %w", action, err)
	}
	return nil
}

// Audit returns the stored audit log in sequence order.
func (p *Project) Audit(ctx context.Context) ([]store.AuditEntry, error) {
	return p.AuditQuery(ctx, store.AuditFilter{})
}

// AuditQuery returns the audit entries f selects (see store.AuditFilter;
// AfterSeq with Limit pages through the log).
func (p *Project) AuditQuery(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("project: audit log: negative limit %d", f.Limit)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, fmt.Errorf("project: audit log: until %s is not after since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	switch f.Outcome {
	case "", store.OutcomeOK, store.OutcomeRefused, store.OutcomeFailed:
	default:
		return nil, fmt.Errorf("project: audit log: outcome %q: want %s, %s or %s", f.Outcome, store.OutcomeOK, store.OutcomeRefused, store.OutcomeFailed)
	}
	es, err := p.Store.AuditQuery(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("project: audit log: %w", err)
	}
	return es, nil
}

// VerifyAudit checks the stored audit chain from its anchor to its head
// (see store.VerifyAudit). It reads the chain's ends before and after the
// entries and reads again when an append or purge came between, so a busy
// server does not report a break that is only a race.
func (p *Project) VerifyAudit(ctx context.Context) (store.AuditVerification, error) {
	for range 10 {
		before, err := p.Store.AuditChain(ctx)
		if err != nil {
			return store.AuditVerification{}, fmt.Errorf("project: verify audit: %w", err)
		}
		es, err := p.Store.Audit(ctx)
		if err != nil {
			return store.AuditVerification{}, fmt.Errorf("project: verify audit: %w", err)
		}
		after, err := p.Store.AuditChain(ctx)
		if err != nil {
			return store.AuditVerification{}, fmt.Errorf("project: verify audit: %w", err)
		}
		if before == after {
			return store.VerifyAudit(before, es), nil
		}
	}
	return store.AuditVerification{}, errors.New("project: verify audit: the log kept changing while it was read; try again")
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
