package postgres

import (
	"context"
	"fmt"

	"github.com/uptrust/uptrust/internal/store"
)

// This file holds the setting overrides (schema migration 6).

// Settings returns every setting override ordered by name.
func (r reader) Settings(ctx context.Context) ([]store.Setting, error) {
	return queryAll(ctx, r.q, "settings", `SELECT name, value, updated FROM settings ORDER BY name`, scanSetting)
}

// PutSetting creates or replaces a setting override.
func (t *txn) PutSetting(ctx context.Context, s store.Setting) error {
	what := "put setting " + s.Name
	if s.Name == "" || s.Value == "" {
		return fmt.Errorf("store/postgres: %s: name and value must not be empty", what)
	}
	updated, err := encodeTime(s.Updated)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	if _, err := t.exec(ctx, `INSERT INTO settings (name, value, updated) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated = excluded.updated`, s.Name, s.Value, updated); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// DeleteSetting removes a setting override, if there is one.
func (t *txn) DeleteSetting(ctx context.Context, name string) error {
	if _, err := t.exec(ctx, `DELETE FROM settings WHERE name = $1`, name); err != nil {
		return dbErr(ctx, "delete setting "+name, err)
	}
	return nil
}
