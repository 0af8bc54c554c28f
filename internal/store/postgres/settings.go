package postgres

import (
	"context"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// The setting overrides (schema migration 6) are in internal/store/sqlshared.

// Settings returns every setting override ordered by name.
func (r reader) Settings(ctx context.Context) ([]store.Setting, error) {
	return sqlshared.Settings(ctx, db{q: r.q})
}

// PutSetting creates or replaces a setting override.
func (t *txn) PutSetting(ctx context.Context, s store.Setting) error {
	return sqlshared.PutSetting(ctx, db{q: t.q, tx: t}, s)
}

// DeleteSetting removes a setting override, if there is one.
func (t *txn) DeleteSetting(ctx context.Context, name string) error {
	return sqlshared.DeleteSetting(ctx, db{q: t.q, tx: t}, name)
}
