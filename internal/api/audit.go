package api

import (
	"context"
	"fmt"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// ProjectAuditor records API actions in the project's audit log, one entry
// per action, beside the entry the project writes for the change itself.
// The entry names the token (its name and role), never a client address.
type ProjectAuditor struct{ P *project.Project }

// Record implements Auditor.
func (a ProjectAuditor) Record(ctx context.Context, r Record) error {
	detail := fmt.Sprintf("by %s (%s); outcome %s; request %s", r.Actor.Name, r.Actor.Role, r.Outcome, r.RequestID)
	if r.Detail != "" {
		detail += "; " + r.Detail
	}
	e := store.AuditEntry{Time: a.P.Clock.Now().UTC(), Action: r.Action, Object: r.Object, Detail: detail}
	if err := a.P.Store.Update(ctx, func(tx store.Tx) error { return tx.AddAudit(ctx, e) }); err != nil {
		return fmt.Errorf("api: audit %s: %w", r.Action, err)
	}
	return nil
}
