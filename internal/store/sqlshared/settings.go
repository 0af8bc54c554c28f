package sqlshared

import (
	"context"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// This file holds the setting overrides (schema migration 6).

// Settings returns every setting override ordered by name.
func Settings(ctx context.Context, db DB) ([]store.Setting, error) {
	return sqlrow.All(ctx, db, "settings", sqlrow.Setting, `SELECT name, value, updated FROM settings ORDER BY name`)
}

// PutSetting creates or replaces a setting override.
func PutSetting(ctx context.Context, db DB, s store.Setting) error {
	what := "put setting " + s.Name
	if s.Name == "" || s.Value == "" {
		return errorf(db, what, "name and value must not be empty")
	}
	updated, err := sqlrow.EncodeTime(s.Updated)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO settings (name, value, updated) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated = excluded.updated`, s.Name, s.Value, updated); err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// DeleteSetting removes a setting override, if there is one.
func DeleteSetting(ctx context.Context, db DB, name string) error {
	if _, err := db.Exec(ctx, `DELETE FROM settings WHERE name = $1`, name); err != nil {
		return db.Err(ctx, "delete setting "+name, err)
	}
	return nil
}
